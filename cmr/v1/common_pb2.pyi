from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbeddingPart(_message.Message):
    __slots__ = ("name", "kind", "vector")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    vector: Vector
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "embed_dim", "triton_model", "triton_model_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBED_DIM_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    embed_dim: int
    triton_model: str
    triton_model_version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., embed_dim: _Optional[int] = ..., triton_model: _Optional[str] = ..., triton_model_version: _Optional[str] = ...) -> None: ...

class StudyRef(_message.Message):
    __slots__ = ("path", "uri")
    PATH_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    path: str
    uri: str
    def __init__(self, path: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class StudyQuery(_message.Message):
    __slots__ = ("study_key", "embedding", "ref")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    embedding: Vector
    ref: StudyRef
    def __init__(self, study_key: _Optional[str] = ..., embedding: _Optional[_Union[Vector, _Mapping]] = ..., ref: _Optional[_Union[StudyRef, _Mapping]] = ...) -> None: ...

class ExamTensor(_message.Message):
    __slots__ = ("frames", "height", "width", "pixels", "mask", "spec_id")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    SPEC_ID_FIELD_NUMBER: _ClassVar[int]
    frames: int
    height: int
    width: int
    pixels: bytes
    mask: bytes
    spec_id: str
    def __init__(self, frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., pixels: _Optional[bytes] = ..., mask: _Optional[bytes] = ..., spec_id: _Optional[str] = ...) -> None: ...

class SeriesSummary(_message.Message):
    __slots__ = ("key", "kind", "view", "slices", "phases", "rows", "cols", "description", "scanner")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCANNER_FIELD_NUMBER: _ClassVar[int]
    key: str
    kind: str
    view: str
    slices: int
    phases: int
    rows: int
    cols: int
    description: str
    scanner: str
    def __init__(self, key: _Optional[str] = ..., kind: _Optional[str] = ..., view: _Optional[str] = ..., slices: _Optional[int] = ..., phases: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., description: _Optional[str] = ..., scanner: _Optional[str] = ...) -> None: ...

class SkippedFile(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class HeaderQuirk(_message.Message):
    __slots__ = ("message", "count", "files", "example")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    message: str
    count: int
    files: int
    example: str
    def __init__(self, message: _Optional[str] = ..., count: _Optional[int] = ..., files: _Optional[int] = ..., example: _Optional[str] = ...) -> None: ...

class LoaderReport(_message.Message):
    __slots__ = ("study_instance_uid", "manufacturer", "scanner_model", "field_strength_t", "study_date", "n_files", "series", "slots_present", "slots_missing", "skipped", "warnings", "header_quirks")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    SCANNER_MODEL_FIELD_NUMBER: _ClassVar[int]
    FIELD_STRENGTH_T_FIELD_NUMBER: _ClassVar[int]
    STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    N_FILES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_PRESENT_FIELD_NUMBER: _ClassVar[int]
    SLOTS_MISSING_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    HEADER_QUIRKS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    manufacturer: str
    scanner_model: str
    field_strength_t: float
    study_date: str
    n_files: int
    series: _containers.RepeatedCompositeFieldContainer[SeriesSummary]
    slots_present: _containers.RepeatedScalarFieldContainer[str]
    slots_missing: _containers.RepeatedScalarFieldContainer[str]
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedFile]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    header_quirks: _containers.RepeatedCompositeFieldContainer[HeaderQuirk]
    def __init__(self, study_instance_uid: _Optional[str] = ..., manufacturer: _Optional[str] = ..., scanner_model: _Optional[str] = ..., field_strength_t: _Optional[float] = ..., study_date: _Optional[str] = ..., n_files: _Optional[int] = ..., series: _Optional[_Iterable[_Union[SeriesSummary, _Mapping]]] = ..., slots_present: _Optional[_Iterable[str]] = ..., slots_missing: _Optional[_Iterable[str]] = ..., skipped: _Optional[_Iterable[_Union[SkippedFile, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., header_quirks: _Optional[_Iterable[_Union[HeaderQuirk, _Mapping]]] = ...) -> None: ...

class FindingScore(_message.Message):
    __slots__ = ("finding", "display", "kind", "probability", "raw_score")
    FINDING_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    finding: str
    display: str
    kind: str
    probability: float
    raw_score: float
    def __init__(self, finding: _Optional[str] = ..., display: _Optional[str] = ..., kind: _Optional[str] = ..., probability: _Optional[float] = ..., raw_score: _Optional[float] = ...) -> None: ...

class CardiacMeasurements(_message.Message):
    __slots__ = ("lvef_pct", "lvedv_ml", "lvesv_ml", "lvsv_ml", "lv_mass_g", "rvef_pct", "rvedv_ml", "rvesv_ml", "lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2", "rvesvi_ml_m2", "bsa_m2", "quality", "quality_reasons", "unavailable", "ed_phase", "es_phase", "lv_volume_curve_ml", "model")
    class UnavailableEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LVEF_PCT_FIELD_NUMBER: _ClassVar[int]
    LVEDV_ML_FIELD_NUMBER: _ClassVar[int]
    LVESV_ML_FIELD_NUMBER: _ClassVar[int]
    LVSV_ML_FIELD_NUMBER: _ClassVar[int]
    LV_MASS_G_FIELD_NUMBER: _ClassVar[int]
    RVEF_PCT_FIELD_NUMBER: _ClassVar[int]
    RVEDV_ML_FIELD_NUMBER: _ClassVar[int]
    RVESV_ML_FIELD_NUMBER: _ClassVar[int]
    LVEDVI_ML_M2_FIELD_NUMBER: _ClassVar[int]
    LVESVI_ML_M2_FIELD_NUMBER: _ClassVar[int]
    LV_MASS_INDEX_G_M2_FIELD_NUMBER: _ClassVar[int]
    RVEDVI_ML_M2_FIELD_NUMBER: _ClassVar[int]
    RVESVI_ML_M2_FIELD_NUMBER: _ClassVar[int]
    BSA_M2_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_REASONS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ED_PHASE_FIELD_NUMBER: _ClassVar[int]
    ES_PHASE_FIELD_NUMBER: _ClassVar[int]
    LV_VOLUME_CURVE_ML_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    lvef_pct: float
    lvedv_ml: float
    lvesv_ml: float
    lvsv_ml: float
    lv_mass_g: float
    rvef_pct: float
    rvedv_ml: float
    rvesv_ml: float
    lvedvi_ml_m2: float
    lvesvi_ml_m2: float
    lv_mass_index_g_m2: float
    rvedvi_ml_m2: float
    rvesvi_ml_m2: float
    bsa_m2: float
    quality: str
    quality_reasons: _containers.RepeatedScalarFieldContainer[str]
    unavailable: _containers.ScalarMap[str, str]
    ed_phase: int
    es_phase: int
    lv_volume_curve_ml: _containers.RepeatedScalarFieldContainer[float]
    model: str
    def __init__(self, lvef_pct: _Optional[float] = ..., lvedv_ml: _Optional[float] = ..., lvesv_ml: _Optional[float] = ..., lvsv_ml: _Optional[float] = ..., lv_mass_g: _Optional[float] = ..., rvef_pct: _Optional[float] = ..., rvedv_ml: _Optional[float] = ..., rvesv_ml: _Optional[float] = ..., lvedvi_ml_m2: _Optional[float] = ..., lvesvi_ml_m2: _Optional[float] = ..., lv_mass_index_g_m2: _Optional[float] = ..., rvedvi_ml_m2: _Optional[float] = ..., rvesvi_ml_m2: _Optional[float] = ..., bsa_m2: _Optional[float] = ..., quality: _Optional[str] = ..., quality_reasons: _Optional[_Iterable[str]] = ..., unavailable: _Optional[_Mapping[str, str]] = ..., ed_phase: _Optional[int] = ..., es_phase: _Optional[int] = ..., lv_volume_curve_ml: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ...) -> None: ...

class MeasurementRange(_message.Message):
    __slots__ = ("measure", "min", "max")
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    measure: str
    min: float
    max: float
    def __init__(self, measure: _Optional[str] = ..., min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...
