from cmr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileChunk(_message.Message):
    __slots__ = ("file_name", "data")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    data: bytes
    def __init__(self, file_name: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class EncodeStudyRequest(_message.Message):
    __slots__ = ("ref", "chunk")
    REF_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.StudyRef
    chunk: FileChunk
    def __init__(self, ref: _Optional[_Union[_common_pb2.StudyRef, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class EncodeStudyResponse(_message.Message):
    __slots__ = ("embedding", "model", "study", "measurements", "parts")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    embedding: _common_pb2.Vector
    model: _common_pb2.ModelInfo
    study: _common_pb2.LoaderReport
    measurements: _common_pb2.CardiacMeasurements
    parts: _containers.RepeatedCompositeFieldContainer[_common_pb2.EmbeddingPart]
    def __init__(self, embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., study: _Optional[_Union[_common_pb2.LoaderReport, _Mapping]] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ..., parts: _Optional[_Iterable[_Union[_common_pb2.EmbeddingPart, _Mapping]]] = ...) -> None: ...

class EncodeExamRequest(_message.Message):
    __slots__ = ("exam", "measurements")
    class MeasurementsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EXAM_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    exam: _common_pb2.ExamTensor
    measurements: _containers.ScalarMap[str, float]
    def __init__(self, exam: _Optional[_Union[_common_pb2.ExamTensor, _Mapping]] = ..., measurements: _Optional[_Mapping[str, float]] = ...) -> None: ...

class EncodeExamResponse(_message.Message):
    __slots__ = ("embedding", "model", "parts")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    embedding: _common_pb2.Vector
    model: _common_pb2.ModelInfo
    parts: _containers.RepeatedCompositeFieldContainer[_common_pb2.EmbeddingPart]
    def __init__(self, embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., parts: _Optional[_Iterable[_Union[_common_pb2.EmbeddingPart, _Mapping]]] = ...) -> None: ...

class EncodeTextRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EncodeTextResponse(_message.Message):
    __slots__ = ("embeddings", "model")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Vector]
    model: _common_pb2.ModelInfo
    def __init__(self, embeddings: _Optional[_Iterable[_Union[_common_pb2.Vector, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model", "spec_id", "exam_spec_json", "max_batch_size", "dynamic_batching", "max_upload_bytes", "max_texts_per_request", "max_text_chars", "device", "measurement_tokens", "parts")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SPEC_ID_FIELD_NUMBER: _ClassVar[int]
    EXAM_SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_BATCHING_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelInfo
    spec_id: str
    exam_spec_json: str
    max_batch_size: int
    dynamic_batching: bool
    max_upload_bytes: int
    max_texts_per_request: int
    max_text_chars: int
    device: str
    measurement_tokens: _containers.RepeatedScalarFieldContainer[str]
    parts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., spec_id: _Optional[str] = ..., exam_spec_json: _Optional[str] = ..., max_batch_size: _Optional[int] = ..., dynamic_batching: _Optional[bool] = ..., max_upload_bytes: _Optional[int] = ..., max_texts_per_request: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., device: _Optional[str] = ..., measurement_tokens: _Optional[_Iterable[str]] = ..., parts: _Optional[_Iterable[str]] = ...) -> None: ...
