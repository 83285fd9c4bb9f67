import datetime

from cmr.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NewExam(_message.Message):
    __slots__ = ("event_id", "study", "report_text", "labels", "source", "published_at", "source_metadata")
    class SourceMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    REPORT_TEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_METADATA_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    study: _common_pb2.StudyRef
    report_text: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    source: str
    published_at: _timestamp_pb2.Timestamp
    source_metadata: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., study: _Optional[_Union[_common_pb2.StudyRef, _Mapping]] = ..., report_text: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EmbeddingCreated(_message.Message):
    __slots__ = ("event_id", "study_key", "model", "exam_point_id", "image_embedding", "finding_scores", "views", "created_at", "source_event_id", "measurements")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EXAM_POINT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    FINDING_SCORES_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    study_key: str
    model: _common_pb2.ModelInfo
    exam_point_id: str
    image_embedding: _common_pb2.Vector
    finding_scores: _containers.RepeatedCompositeFieldContainer[_common_pb2.FindingScore]
    views: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    source_event_id: str
    measurements: _common_pb2.CardiacMeasurements
    def __init__(self, event_id: _Optional[str] = ..., study_key: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., exam_point_id: _Optional[str] = ..., image_embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., finding_scores: _Optional[_Iterable[_Union[_common_pb2.FindingScore, _Mapping]]] = ..., views: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_event_id: _Optional[str] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("original_key", "original_value", "original_topic", "partition", "offset", "stage", "reason", "error_type", "attempts", "failed_at")
    ORIGINAL_KEY_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    original_key: bytes
    original_value: bytes
    original_topic: str
    partition: int
    offset: int
    stage: str
    reason: str
    error_type: str
    attempts: int
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, original_key: _Optional[bytes] = ..., original_value: _Optional[bytes] = ..., original_topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., stage: _Optional[str] = ..., reason: _Optional[str] = ..., error_type: _Optional[str] = ..., attempts: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
