from cmr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DraftMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRAFT_MODE_UNSPECIFIED: _ClassVar[DraftMode]
    DRAFT_MODE_RETRIEVAL: _ClassVar[DraftMode]
    DRAFT_MODE_CONSENSUS: _ClassVar[DraftMode]
    DRAFT_MODE_TARGET: _ClassVar[DraftMode]

class DecodingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECODING_STRATEGY_UNSPECIFIED: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_GREEDY: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_BEAM: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_SAMPLE: _ClassVar[DecodingStrategy]
DRAFT_MODE_UNSPECIFIED: DraftMode
DRAFT_MODE_RETRIEVAL: DraftMode
DRAFT_MODE_CONSENSUS: DraftMode
DRAFT_MODE_TARGET: DraftMode
DECODING_STRATEGY_UNSPECIFIED: DecodingStrategy
DECODING_STRATEGY_GREEDY: DecodingStrategy
DECODING_STRATEGY_BEAM: DecodingStrategy
DECODING_STRATEGY_SAMPLE: DecodingStrategy

class DecodingOptions(_message.Message):
    __slots__ = ("strategy", "beam_width", "temperature", "max_sentences", "max_tokens", "seed", "neighbours")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    strategy: DecodingStrategy
    beam_width: int
    temperature: float
    max_sentences: int
    max_tokens: int
    seed: int
    neighbours: int
    def __init__(self, strategy: _Optional[_Union[DecodingStrategy, str]] = ..., beam_width: _Optional[int] = ..., temperature: _Optional[float] = ..., max_sentences: _Optional[int] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., neighbours: _Optional[int] = ...) -> None: ...

class GenerateReportRequest(_message.Message):
    __slots__ = ("study", "mode", "decoding", "measurements")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    study: _common_pb2.StudyQuery
    mode: DraftMode
    decoding: DecodingOptions
    measurements: _common_pb2.CardiacMeasurements
    def __init__(self, study: _Optional[_Union[_common_pb2.StudyQuery, _Mapping]] = ..., mode: _Optional[_Union[DraftMode, str]] = ..., decoding: _Optional[_Union[DecodingOptions, _Mapping]] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ...) -> None: ...

class NumberChange(_message.Message):
    __slots__ = ("measure", "action", "before", "after", "reason")
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    measure: str
    action: str
    before: str
    after: str
    reason: str
    def __init__(self, measure: _Optional[str] = ..., action: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportSentence(_message.Message):
    __slots__ = ("index", "text", "findings", "source_study_keys", "last", "model", "grounding", "review", "kind", "measurements", "measurements_source", "measurements_note", "dropped")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STUDY_KEYS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_NOTE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    source_study_keys: _containers.RepeatedScalarFieldContainer[str]
    last: bool
    model: _common_pb2.ModelInfo
    grounding: _containers.RepeatedCompositeFieldContainer[NumberChange]
    review: _containers.RepeatedScalarFieldContainer[str]
    kind: str
    measurements: _common_pb2.CardiacMeasurements
    measurements_source: str
    measurements_note: str
    dropped: _containers.RepeatedCompositeFieldContainer[NumberChange]
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ..., source_study_keys: _Optional[_Iterable[str]] = ..., last: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., grounding: _Optional[_Iterable[_Union[NumberChange, _Mapping]]] = ..., review: _Optional[_Iterable[str]] = ..., kind: _Optional[str] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ..., measurements_source: _Optional[str] = ..., measurements_note: _Optional[str] = ..., dropped: _Optional[_Iterable[_Union[NumberChange, _Mapping]]] = ...) -> None: ...
