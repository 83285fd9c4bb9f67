from cmr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CollectionSummary(_message.Message):
    __slots__ = ("name", "points", "dim", "model_versions", "content_sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    points: int
    dim: int
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    content_sha256: str
    def __init__(self, name: _Optional[str] = ..., points: _Optional[int] = ..., dim: _Optional[int] = ..., model_versions: _Optional[_Iterable[str]] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("dest",)
    DEST_FIELD_NUMBER: _ClassVar[int]
    dest: str
    def __init__(self, dest: _Optional[str] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("path", "manifest_json", "collections", "write_pause_s", "seconds", "bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    WRITE_PAUSE_S_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    manifest_json: str
    collections: _containers.RepeatedCompositeFieldContainer[CollectionSummary]
    write_pause_s: float
    seconds: float
    bytes: int
    def __init__(self, path: _Optional[str] = ..., manifest_json: _Optional[str] = ..., collections: _Optional[_Iterable[_Union[CollectionSummary, _Mapping]]] = ..., write_pause_s: _Optional[float] = ..., seconds: _Optional[float] = ..., bytes: _Optional[int] = ...) -> None: ...

class VerifyBackupRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class VerifyBackupResponse(_message.Message):
    __slots__ = ("ok", "problems", "manifest_json")
    OK_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    manifest_json: str
    def __init__(self, ok: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("name", "model_version", "dim", "exams_collection", "reports_collection", "created_at", "active", "previous", "exams", "reports", "checkpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    EXAMS_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    REPORTS_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    EXAMS_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_version: str
    dim: int
    exams_collection: str
    reports_collection: str
    created_at: str
    active: bool
    previous: bool
    exams: int
    reports: int
    checkpoint: str
    def __init__(self, name: _Optional[str] = ..., model_version: _Optional[str] = ..., dim: _Optional[int] = ..., exams_collection: _Optional[str] = ..., reports_collection: _Optional[str] = ..., created_at: _Optional[str] = ..., active: _Optional[bool] = ..., previous: _Optional[bool] = ..., exams: _Optional[int] = ..., reports: _Optional[int] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class ListGenerationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGenerationsResponse(_message.Message):
    __slots__ = ("generations", "active", "previous", "backend")
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    generations: _containers.RepeatedCompositeFieldContainer[Generation]
    active: str
    previous: str
    backend: str
    def __init__(self, generations: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ..., active: _Optional[str] = ..., previous: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class StartUpgradeRequest(_message.Message):
    __slots__ = ("model_version", "dim", "checkpoint")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    dim: int
    checkpoint: str
    def __init__(self, model_version: _Optional[str] = ..., dim: _Optional[int] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class ListArchiveRequest(_message.Message):
    __slots__ = ("generation", "page_token", "page_size", "keys_only")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    KEYS_ONLY_FIELD_NUMBER: _ClassVar[int]
    generation: str
    page_token: str
    page_size: int
    keys_only: bool
    def __init__(self, generation: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., keys_only: _Optional[bool] = ...) -> None: ...

class ArchiveEntry(_message.Message):
    __slots__ = ("study_key", "impression")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    impression: str
    def __init__(self, study_key: _Optional[str] = ..., impression: _Optional[str] = ...) -> None: ...

class ListArchiveResponse(_message.Message):
    __slots__ = ("entries", "next_page_token", "generation")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ArchiveEntry]
    next_page_token: str
    generation: str
    def __init__(self, entries: _Optional[_Iterable[_Union[ArchiveEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., generation: _Optional[str] = ...) -> None: ...

class ReembeddedStudy(_message.Message):
    __slots__ = ("study_key", "image_embedding", "report_embedding", "parts")
    STUDY_KEY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    REPORT_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    study_key: str
    image_embedding: _containers.RepeatedScalarFieldContainer[float]
    report_embedding: _containers.RepeatedScalarFieldContainer[float]
    parts: _containers.RepeatedCompositeFieldContainer[_common_pb2.EmbeddingPart]
    def __init__(self, study_key: _Optional[str] = ..., image_embedding: _Optional[_Iterable[float]] = ..., report_embedding: _Optional[_Iterable[float]] = ..., parts: _Optional[_Iterable[_Union[_common_pb2.EmbeddingPart, _Mapping]]] = ...) -> None: ...

class WriteGenerationRequest(_message.Message):
    __slots__ = ("generation", "model_version", "studies", "source")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    generation: str
    model_version: str
    studies: _containers.RepeatedCompositeFieldContainer[ReembeddedStudy]
    source: str
    def __init__(self, generation: _Optional[str] = ..., model_version: _Optional[str] = ..., studies: _Optional[_Iterable[_Union[ReembeddedStudy, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class WriteGenerationResponse(_message.Message):
    __slots__ = ("written", "missing_keys")
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    MISSING_KEYS_FIELD_NUMBER: _ClassVar[int]
    written: int
    missing_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, written: _Optional[int] = ..., missing_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class SwitchRequest(_message.Message):
    __slots__ = ("generation", "force")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    generation: str
    force: bool
    def __init__(self, generation: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class SwitchResponse(_message.Message):
    __slots__ = ("active", "previous", "missing")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    active: str
    previous: str
    missing: int
    def __init__(self, active: _Optional[str] = ..., previous: _Optional[str] = ..., missing: _Optional[int] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DropGenerationRequest(_message.Message):
    __slots__ = ("generation", "force")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    generation: str
    force: bool
    def __init__(self, generation: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DropGenerationResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: bool
    def __init__(self, dropped: _Optional[bool] = ...) -> None: ...
