"""The vector store interface of the search service: one contract, two engines (Qdrant Edge in-process,
qdrant-client for a server or cluster) that must answer every call the same way.

Points carry a typed `ExamPayload` (never a free dict), so nothing identifying can reach the index by
accident, and every read filter is an `ExamFilter`, translated by each engine in `filters.py`.
Vectors are compared by cosine similarity; engines store them L2-normalised.

An exam point's embedding parts (`ExamPayload.parts`, ~10 KB) come back only from reads that ask for them
(`with_parts=True`): a search of ten hits can afford them, a scroll over the whole index (cohorts, few-shot,
backups of a million points) should not decode them for nothing.
"""

from __future__ import annotations

import errno
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cmr.rpc.keys import point_id
from search_svc.store.schema import PARTS_KEY, PAYLOAD_INDEXES, ExamFilter, ExamPayload, IndexKind

MAX_TOP_K = 1000  # a page of results, not an export: cohorts page through `scroll` instead
MAX_OFFSET = 10_000  # deep offsets cost top_k + offset candidates per query; page with scroll past this
MAX_SCROLL_LIMIT = 10_000
MAX_DIM = 65_536  # Qdrant's own limit on a dense vector
_COLLECTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # also a safe folder name for the Edge engine


class StoreError(Exception):
    """Base of the errors the store raises on purpose."""


class DiskFullError(StoreError, OSError):
    """A write refused because the store's disk is (nearly) full: reads go on, and writes work again once space
    is back. An OSError with errno ENOSPC, so a service answers RESOURCE_EXHAUSTED (cmr.rpc.errors)."""

    def __init__(self, message: str) -> None:
        OSError.__init__(self, errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


class CollectionNotFoundError(StoreError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} does not exist; "
                         f"create it with ensure_collection({name!r}, dim)")
        self.name = name


class DimensionMismatchError(StoreError, ValueError):
    """A vector (or a collection asked for again) whose dimension differs from the collection's."""


class Quantization(str, Enum):
    """How the HNSW search scores candidates before rescoring with the original float32 vectors."""

    NONE = "none"
    INT8 = "int8"  # scalar quantization: 4x less memory for the scored copy, rescored with float32


@dataclass(frozen=True)
class IndexParams:
    """Vector index parameters shared by both engines (the server takes the same names)."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef_search: int = 64
    quantization: Quantization = Quantization.NONE
    # int8 candidates rescored with float32 per result. Embeddings of one model sit close together
    # (nearest neighbours at cosine ~0.995), so int8 alone cannot rank them: see docs/benchmarks/search.md.
    quantization_oversampling: float = 8.0

    def __post_init__(self) -> None:
        if not 4 <= self.hnsw_m <= 128:
            raise ValueError(f"hnsw_m must be in 4..128, got {self.hnsw_m}")
        if not 8 <= self.hnsw_ef_construct <= 1024:
            raise ValueError(f"hnsw_ef_construct must be in 8..1024, got {self.hnsw_ef_construct}")
        if not 8 <= self.hnsw_ef_search <= 4096:
            raise ValueError(f"hnsw_ef_search must be in 8..4096, got {self.hnsw_ef_search}")
        if not 1.0 <= self.quantization_oversampling <= 64.0:
            raise ValueError(f"quantization_oversampling must be in 1..64, "
                             f"got {self.quantization_oversampling}")
        object.__setattr__(self, "quantization", Quantization(self.quantization))


@dataclass(frozen=True)
class VectorPoint:
    """One point to upsert: a UUID id, a vector and the exam's de-identified payload."""

    id: str
    vector: NDArray[np.float32]
    payload: ExamPayload

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", check_point_id(self.id))
        object.__setattr__(self, "vector", as_vector(self.vector, what=f"vector of point {self.id}"))
        if not isinstance(self.payload, ExamPayload):
            raise TypeError(f"payload of point {self.id} must be an ExamPayload, "
                            f"got {type(self.payload).__name__}")
        if self.payload.parts is not None:  # parts belong to their vector: checked here, for both engines
            self.payload.parts.check_sums_to(self.vector)

    @classmethod
    def for_exam(cls, payload: ExamPayload, vector: ArrayLike) -> VectorPoint:
        """The point of one exam: its id derives from the study key, so re-ingesting overwrites it."""
        return cls(point_id(payload.study_key), np.asarray(vector, dtype=np.float32), payload)


@dataclass(frozen=True)
class StoredRecord:
    """A point read back by `get` or `scroll`; `vector` (normalised) only when asked for."""

    id: str
    payload: ExamPayload
    vector: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class ScoredHit:
    """A search result: cosine similarity in [-1, 1], best first."""

    id: str
    score: float
    payload: ExamPayload
    vector: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    backend: str
    dim: int
    points: int
    indexed_vectors: int  # points already in an HNSW graph; the rest are searched by brute force
    segments: int
    quantization: Quantization
    payload_indexes: dict[str, str] = field(default_factory=dict)  # field -> index type, engine's report


def check_point_id(value: object) -> str:
    """A point id is a UUID; returned in canonical lower-case form so both engines agree on it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValueError(f"point id must be a UUID string (see cmr.rpc.keys.point_id), got {value!r}")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION_NAME.match(name):
        raise ValueError(f"collection name must match {_COLLECTION_NAME.pattern} (lower-case letters, "
                         f"digits, '_' or '-', starting with a letter), got {name!r}")
    return name


def check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ValueError(f"vector dimension must be an integer in 1..{MAX_DIM}, got {dim!r}")
    return dim


def as_vector(value: ArrayLike, *, what: str = "vector", dim: int | None = None) -> NDArray[np.float32]:
    """A finite, non-zero 1-D float32 vector (a zero vector has no cosine direction)."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of floats, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise DimensionMismatchError(f"{what} has {arr.shape[0]} dimensions; "
                                     f"the collection holds {dim}-d vectors")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    if not float(np.dot(arr, arr)) > 0.0:
        raise ValueError(f"{what} is all zeros: cosine similarity is undefined for it")
    if not float(np.dot(arr, arr)) < np.inf:  # would normalise to zeros and be stored as such (found by fuzzing)
        raise ValueError(f"{what} is too large to normalise (its squared norm overflows float32)")
    return arr


def check_hnsw_ef(hnsw_ef: int | None) -> None:
    if hnsw_ef is None:
        return
    if isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, int) or not 1 <= hnsw_ef <= 4096:
        raise ValueError(f"hnsw_ef must be an integer in 1..4096, got {hnsw_ef!r}")


def check_top_k(top_k: int, offset: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be an integer in 1..{MAX_TOP_K}, got {top_k!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset must be an integer in 0..{MAX_OFFSET}, got {offset!r} "
                         f"(page with scroll beyond)")


def check_scroll_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SCROLL_LIMIT:
        raise ValueError(f"scroll limit must be an integer in 1..{MAX_SCROLL_LIMIT}, got {limit!r}")


def check_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of point ids, not one string")
    return list(dict.fromkeys(check_point_id(i) for i in ids))  # de-duplicated, order kept


def to_vector(values: Sequence[float] | None) -> NDArray[np.float32] | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


UNSTORED_ON_READ: tuple[str, ...] = (PARTS_KEY,)  # payload keys a read leaves out unless it asks for them


def plain_vector(vector: Any) -> Any:
    """The default (unnamed) dense vector out of the forms engines return it in (a list, or {"": list})."""
    return vector.get("") if isinstance(vector, dict) else vector


class VectorStore(ABC):
    """A set of named collections of exam points. Thread-safe; use as a context manager or call close()."""

    backend: str = "abstract"

    # --- collections ----------------------------------------------------------------------------------------
    @abstractmethod
    def ensure_collection(self, name: str, dim: int,
                          payload_indexes: Mapping[str, IndexKind] = PAYLOAD_INDEXES) -> CollectionInfo:
        """Create the collection (cosine distance) with its payload indexes, or check an existing one.

        Idempotent: an existing collection of the same dimension is kept (missing payload indexes are added);
        another dimension raises DimensionMismatchError.
        """

    @abstractmethod
    def collection_exists(self, name: str) -> bool: ...

    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def drop_collection(self, name: str) -> bool:
        """Delete a collection and its data; False when it did not exist."""

    @abstractmethod
    def collection_info(self, name: str) -> CollectionInfo: ...

    # --- writes ---------------------------------------------------------------------------------------------
    @abstractmethod
    def upsert(self, collection: str, points: Iterable[VectorPoint]) -> int:
        """Insert or overwrite (same id) points; returns how many were written."""

    @abstractmethod
    def delete(self, collection: str, ids: Iterable[str]) -> int:
        """Delete points by id; returns how many of them existed."""

    @abstractmethod
    def optimize(self, collection: str) -> bool:
        """Build the vector index over points written since the last build; True if there was work.

        Search is correct without it (un-indexed points are searched exactly), only slower.
        """

    # --- reads ----------------------------------------------------------------------------------------------
    # Every read leaves the payload's embedding parts out (payload.parts None) unless with_parts=True.
    @abstractmethod
    def get(self, collection: str, ids: Iterable[str], *, with_vectors: bool = False,
            with_parts: bool = False) -> list[StoredRecord]:
        """The points that exist among `ids`, in the order asked; missing ids are left out."""

    @abstractmethod
    def search(self, collection: str, vector: ArrayLike, top_k: int, filter: ExamFilter | None = None, *,
               offset: int = 0, exact: bool = False, hnsw_ef: int | None = None,
               with_vectors: bool = False, with_parts: bool = False) -> list[ScoredHit]:
        """Nearest points by cosine similarity, best first. exact=True bypasses HNSW and quantization;
        hnsw_ef (candidates kept while walking the graph) overrides the store's default for this query."""

    @abstractmethod
    def scroll(self, collection: str, filter: ExamFilter | None = None, limit: int = 256,
               offset_token: str | None = None, *, with_vectors: bool = False, with_parts: bool = False,
               ) -> tuple[list[StoredRecord], str | None]:
        """One page of the points matching `filter` in id order, and the token of the next page (None at
        the end). Pass the token back unchanged; a full pass visits every point once."""

    @abstractmethod
    def count(self, collection: str, filter: ExamFilter | None = None) -> int:
        """Exact number of points matching `filter`."""

    @abstractmethod
    def facet(self, collection: str, key: str, limit: int = 100) -> dict[str, int]:
        """The distinct values of an indexed keyword payload field with their exact point counts (at most
        `limit` values, the most frequent first), read from the field's index rather than by a scan."""

    def warm_up(self, collection: str) -> int:
        """Bring the collection's files into the page cache, so the first requests do not fault them in one
        page at a time; returns the bytes read. A no-op (0) for engines that keep nothing in local files."""
        return 0

    # --- lifecycle ------------------------------------------------------------------------------------------
    @abstractmethod
    def flush(self) -> None:
        """Make every acknowledged write durable on disk (no-op where the engine does it already)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the engine; further calls raise StoreError. Safe to call twice."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- helpers shared by the engines ----------------------------------------------------------------------
    # True where only this code writes the engine's data (Edge's own files): reads then skip re-checking each
    # payload field (ExamPayload.from_stored). A server may hold points other clients wrote: checked in full.
    trusted_payloads: bool = False

    @classmethod
    def payload_from_engine(cls, payload: Mapping[str, Any] | None, point: object) -> ExamPayload:
        if payload is None:
            raise StoreError(f"point {point} came back without its payload")
        return ExamPayload.from_stored(payload) if cls.trusted_payloads else ExamPayload.from_dict(payload)
