from cmr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FewShotMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEW_SHOT_METHOD_UNSPECIFIED: _ClassVar[FewShotMethod]
    FEW_SHOT_METHOD_PROTOTYPE: _ClassVar[FewShotMethod]
    FEW_SHOT_METHOD_LOGISTIC: _ClassVar[FewShotMethod]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PARQUET: _ClassVar[ExportFormat]
FEW_SHOT_METHOD_UNSPECIFIED: FewShotMethod
FEW_SHOT_METHOD_PROTOTYPE: FewShotMethod
FEW_SHOT_METHOD_LOGISTIC: FewShotMethod
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_PARQUET: ExportFormat

class ExamRecord(_message.Message):
    __slots__ = ("study_key", "study_date", "study_year", "vendor", "field_strength_t", "views", "impression", "labels", "model_version", "measurements")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    STUDY_YEAR_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_STRENGTH_T_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    study_date: str
    study_year: int
    vendor: str
    field_strength_t: float
    views: _containers.RepeatedScalarFieldContainer[str]
    impression: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    measurements: _common_pb2.CardiacMeasurements
    def __init__(self, study_key: _Optional[str] = ..., study_date: _Optional[str] = ..., study_year: _Optional[int] = ..., vendor: _Optional[str] = ..., field_strength_t: _Optional[float] = ..., views: _Optional[_Iterable[str]] = ..., impression: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ...) -> None: ...

class SearchFilter(_message.Message):
    __slots__ = ("vendors", "field_strengths_t", "date_from", "date_to", "views_all", "labels_all", "labels_none", "measurements")
    VENDORS_FIELD_NUMBER: _ClassVar[int]
    FIELD_STRENGTHS_T_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    VIEWS_ALL_FIELD_NUMBER: _ClassVar[int]
    LABELS_ALL_FIELD_NUMBER: _ClassVar[int]
    LABELS_NONE_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    vendors: _containers.RepeatedScalarFieldContainer[str]
    field_strengths_t: _containers.RepeatedScalarFieldContainer[float]
    date_from: str
    date_to: str
    views_all: _containers.RepeatedScalarFieldContainer[str]
    labels_all: _containers.RepeatedScalarFieldContainer[str]
    labels_none: _containers.RepeatedScalarFieldContainer[str]
    measurements: _containers.RepeatedCompositeFieldContainer[_common_pb2.MeasurementRange]
    def __init__(self, vendors: _Optional[_Iterable[str]] = ..., field_strengths_t: _Optional[_Iterable[float]] = ..., date_from: _Optional[str] = ..., date_to: _Optional[str] = ..., views_all: _Optional[_Iterable[str]] = ..., labels_all: _Optional[_Iterable[str]] = ..., labels_none: _Optional[_Iterable[str]] = ..., measurements: _Optional[_Iterable[_Union[_common_pb2.MeasurementRange, _Mapping]]] = ...) -> None: ...

class MatchShare(_message.Message):
    __slots__ = ("part", "kind", "contribution", "share")
    PART_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    part: str
    kind: str
    contribution: float
    share: float
    def __init__(self, part: _Optional[str] = ..., kind: _Optional[str] = ..., contribution: _Optional[float] = ..., share: _Optional[float] = ...) -> None: ...

class ExamHit(_message.Message):
    __slots__ = ("exam", "score", "why")
    EXAM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    exam: ExamRecord
    score: float
    why: _containers.RepeatedCompositeFieldContainer[MatchShare]
    def __init__(self, exam: _Optional[_Union[ExamRecord, _Mapping]] = ..., score: _Optional[float] = ..., why: _Optional[_Iterable[_Union[MatchShare, _Mapping]]] = ...) -> None: ...

class ReportHit(_message.Message):
    __slots__ = ("study_key", "impression", "score")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    impression: str
    score: float
    def __init__(self, study_key: _Optional[str] = ..., impression: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SearchByTextRequest(_message.Message):
    __slots__ = ("query", "top_k", "offset", "filter")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    offset: int
    filter: SearchFilter
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., offset: _Optional[int] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ...) -> None: ...

class SearchByTextResponse(_message.Message):
    __slots__ = ("hits", "model")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[ExamHit]
    model: _common_pb2.ModelInfo
    def __init__(self, hits: _Optional[_Iterable[_Union[ExamHit, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class SearchByStudyRequest(_message.Message):
    __slots__ = ("study", "top_k", "filter", "include_self")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SELF_FIELD_NUMBER: _ClassVar[int]
    study: _common_pb2.StudyQuery
    top_k: int
    filter: SearchFilter
    include_self: bool
    def __init__(self, study: _Optional[_Union[_common_pb2.StudyQuery, _Mapping]] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., include_self: _Optional[bool] = ...) -> None: ...

class SearchByStudyResponse(_message.Message):
    __slots__ = ("similar_exams", "nearest_reports", "model")
    SIMILAR_EXAMS_FIELD_NUMBER: _ClassVar[int]
    NEAREST_REPORTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    similar_exams: _containers.RepeatedCompositeFieldContainer[ExamHit]
    nearest_reports: _containers.RepeatedCompositeFieldContainer[ReportHit]
    model: _common_pb2.ModelInfo
    def __init__(self, similar_exams: _Optional[_Iterable[_Union[ExamHit, _Mapping]]] = ..., nearest_reports: _Optional[_Iterable[_Union[ReportHit, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class ZeroShotRequest(_message.Message):
    __slots__ = ("study", "findings")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    study: _common_pb2.StudyQuery
    findings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, study: _Optional[_Union[_common_pb2.StudyQuery, _Mapping]] = ..., findings: _Optional[_Iterable[str]] = ...) -> None: ...

class ZeroShotResponse(_message.Message):
    __slots__ = ("scores", "calibration", "model")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[_common_pb2.FindingScore]
    calibration: str
    model: _common_pb2.ModelInfo
    def __init__(self, scores: _Optional[_Iterable[_Union[_common_pb2.FindingScore, _Mapping]]] = ..., calibration: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class FewShotRequest(_message.Message):
    __slots__ = ("positive_keys", "negative_keys", "method", "study", "whole_index", "top_k", "filter")
    POSITIVE_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_KEYS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    WHOLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    positive_keys: _containers.RepeatedScalarFieldContainer[str]
    negative_keys: _containers.RepeatedScalarFieldContainer[str]
    method: FewShotMethod
    study: _common_pb2.StudyQuery
    whole_index: bool
    top_k: int
    filter: SearchFilter
    def __init__(self, positive_keys: _Optional[_Iterable[str]] = ..., negative_keys: _Optional[_Iterable[str]] = ..., method: _Optional[_Union[FewShotMethod, str]] = ..., study: _Optional[_Union[_common_pb2.StudyQuery, _Mapping]] = ..., whole_index: _Optional[bool] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ...) -> None: ...

class FewShotResponse(_message.Message):
    __slots__ = ("probability", "ranked", "method", "model")
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RANKED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    probability: float
    ranked: _containers.RepeatedCompositeFieldContainer[ExamHit]
    method: str
    model: _common_pb2.ModelInfo
    def __init__(self, probability: _Optional[float] = ..., ranked: _Optional[_Iterable[_Union[ExamHit, _Mapping]]] = ..., method: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class BuildCohortRequest(_message.Message):
    __slots__ = ("all_of", "any_of", "none_of", "filter", "threshold", "page_size", "page_token")
    ALL_OF_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    NONE_OF_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    all_of: _containers.RepeatedScalarFieldContainer[str]
    any_of: _containers.RepeatedScalarFieldContainer[str]
    none_of: _containers.RepeatedScalarFieldContainer[str]
    filter: SearchFilter
    threshold: float
    page_size: int
    page_token: str
    def __init__(self, all_of: _Optional[_Iterable[str]] = ..., any_of: _Optional[_Iterable[str]] = ..., none_of: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., threshold: _Optional[float] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class CohortMember(_message.Message):
    __slots__ = ("exam", "score", "phrase_scores")
    class PhraseScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EXAM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PHRASE_SCORES_FIELD_NUMBER: _ClassVar[int]
    exam: ExamRecord
    score: float
    phrase_scores: _containers.ScalarMap[str, float]
    def __init__(self, exam: _Optional[_Union[ExamRecord, _Mapping]] = ..., score: _Optional[float] = ..., phrase_scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CohortPage(_message.Message):
    __slots__ = ("members", "total", "next_page_token", "model")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[CohortMember]
    total: int
    next_page_token: str
    model: _common_pb2.ModelInfo
    def __init__(self, members: _Optional[_Iterable[_Union[CohortMember, _Mapping]]] = ..., total: _Optional[int] = ..., next_page_token: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class ExportCohortRequest(_message.Message):
    __slots__ = ("cohort", "format")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    cohort: BuildCohortRequest
    format: ExportFormat
    def __init__(self, cohort: _Optional[_Union[BuildCohortRequest, _Mapping]] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("data", "file_name", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    file_name: str
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., file_name: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class ExamUpsert(_message.Message):
    __slots__ = ("study_instance_uid", "image_embedding", "report_embedding", "impression", "study_date", "vendor", "field_strength_t", "views", "labels", "model_version", "measurements", "parts")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    REPORT_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_FIELD_NUMBER: _ClassVar[int]
    STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_STRENGTH_T_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    image_embedding: _common_pb2.Vector
    report_embedding: _common_pb2.Vector
    impression: str
    study_date: str
    vendor: str
    field_strength_t: float
    views: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    measurements: _common_pb2.CardiacMeasurements
    parts: _containers.RepeatedCompositeFieldContainer[_common_pb2.EmbeddingPart]
    def __init__(self, study_instance_uid: _Optional[str] = ..., image_embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., report_embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., impression: _Optional[str] = ..., study_date: _Optional[str] = ..., vendor: _Optional[str] = ..., field_strength_t: _Optional[float] = ..., views: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., measurements: _Optional[_Union[_common_pb2.CardiacMeasurements, _Mapping]] = ..., parts: _Optional[_Iterable[_Union[_common_pb2.EmbeddingPart, _Mapping]]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("exams",)
    EXAMS_FIELD_NUMBER: _ClassVar[int]
    exams: _containers.RepeatedCompositeFieldContainer[ExamUpsert]
    def __init__(self, exams: _Optional[_Iterable[_Union[ExamUpsert, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("study_keys", "created", "updated")
    STUDY_KEYS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    study_keys: _containers.RepeatedScalarFieldContainer[str]
    created: int
    updated: int
    def __init__(self, study_keys: _Optional[_Iterable[str]] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("study_keys",)
    STUDY_KEYS_FIELD_NUMBER: _ClassVar[int]
    study_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, study_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("study_key", "with_vector")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    with_vector: bool
    def __init__(self, study_key: _Optional[str] = ..., with_vector: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("exam", "image_embedding")
    EXAM_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    exam: ExamRecord
    image_embedding: _common_pb2.Vector
    def __init__(self, exam: _Optional[_Union[ExamRecord, _Mapping]] = ..., image_embedding: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("exams", "reports", "backend", "by_vendor", "model_versions", "model", "index", "query_cache")
    class ByVendorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EXAMS_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BY_VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERY_CACHE_FIELD_NUMBER: _ClassVar[int]
    exams: int
    reports: int
    backend: str
    by_vendor: _containers.ScalarMap[str, int]
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    model: _common_pb2.ModelInfo
    index: _containers.RepeatedCompositeFieldContainer[IndexState]
    query_cache: QueryCacheStats
    def __init__(self, exams: _Optional[int] = ..., reports: _Optional[int] = ..., backend: _Optional[str] = ..., by_vendor: _Optional[_Mapping[str, int]] = ..., model_versions: _Optional[_Iterable[str]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., index: _Optional[_Iterable[_Union[IndexState, _Mapping]]] = ..., query_cache: _Optional[_Union[QueryCacheStats, _Mapping]] = ...) -> None: ...

class IndexState(_message.Message):
    __slots__ = ("collection", "points", "unindexed", "building", "builds", "last_build_s", "last_build_finished_unix", "last_error")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    UNINDEXED_FIELD_NUMBER: _ClassVar[int]
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    BUILDS_FIELD_NUMBER: _ClassVar[int]
    LAST_BUILD_S_FIELD_NUMBER: _ClassVar[int]
    LAST_BUILD_FINISHED_UNIX_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: int
    unindexed: int
    building: bool
    builds: int
    last_build_s: float
    last_build_finished_unix: float
    last_error: str
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[int] = ..., unindexed: _Optional[int] = ..., building: _Optional[bool] = ..., builds: _Optional[int] = ..., last_build_s: _Optional[float] = ..., last_build_finished_unix: _Optional[float] = ..., last_error: _Optional[str] = ...) -> None: ...

class QueryCacheStats(_message.Message):
    __slots__ = ("runtime", "hits", "misses", "size", "capacity")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    runtime: str
    hits: int
    misses: int
    size: int
    capacity: int
    def __init__(self, runtime: _Optional[str] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., size: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...
