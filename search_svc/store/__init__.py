"""The search service's vector store: exam and report embeddings in Qdrant.

    with open_store() as store:                       # settings decide: Qdrant server, or Edge on disk
        store.ensure_collection(EXAMS, dim=512)
        store.upsert(EXAMS, [VectorPoint.for_exam(payload, vector)])
        hits = store.search(EXAMS, query, top_k=10, filter=ExamFilter(vendors=("siemens",)))

Engines: `EdgeStore` (Qdrant Edge, in-process, the default) and `QdrantStore` (qdrant-client: a server or
cluster, or its local mode). Both pass the same congruence tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cmr.config import Settings, get_settings
from search_svc.store.base import (
    CollectionInfo,
    CollectionNotFoundError,
    DimensionMismatchError,
    DiskFullError,
    IndexParams,
    Quantization,
    ScoredHit,
    StoredRecord,
    StoreError,
    VectorPoint,
    VectorStore,
)
from search_svc.store.edge import EdgeStore
from search_svc.store.remote import QdrantStore
from search_svc.store.schema import (
    COLLECTIONS,
    EXAMS,
    PAYLOAD_INDEXES,
    REPORTS,
    VENDORS,
    ExamFilter,
    ExamMeasurements,
    ExamPayload,
    MeasureRange,
    StoredParts,
    normalise_vendor,
)

Backend = Literal["edge", "remote", "client-local"]
BACKENDS: tuple[str, ...] = ("edge", "remote", "client-local")


def index_params(settings: Settings, quantization: Quantization | str = Quantization.NONE) -> IndexParams:
    return IndexParams(hnsw_m=settings.hnsw_m, hnsw_ef_construct=settings.hnsw_ef_construct,
                       hnsw_ef_search=settings.hnsw_ef_search, quantization=Quantization(quantization))


def open_store(settings: Settings | None = None, *, backend: Backend | None = None,
               path: str | Path | None = None, quantization: Quantization | str = Quantization.NONE,
               ) -> VectorStore:
    """The store the settings describe: a Qdrant server when `qdrant_url` is set, else Qdrant Edge in
    `index_dir` (default <data_dir>/index).

    backend overrides the choice: "edge" (folder `path` or index_dir), "remote" (qdrant_url), or
    "client-local" (qdrant-client local mode in folder `path`, in memory when path is None).
    quantization applies to collections this store creates ("none" or "int8").
    """
    settings = settings or get_settings()
    chosen = backend or ("remote" if settings.qdrant_url else "edge")
    params = index_params(settings, quantization)
    if chosen == "edge":
        root = Path(path) if path is not None else (settings.index_dir or settings.data_dir / "index")
        return EdgeStore(root, params, min_free_mb=settings.index_min_free_mb)
    if chosen == "remote":
        if not settings.qdrant_url:
            raise ValueError("backend 'remote' needs a Qdrant URL: set CMR_QDRANT_URL (settings.qdrant_url)")
        return QdrantStore.connect(settings.qdrant_url, settings.qdrant_api_key, params)
    if chosen == "client-local":
        return QdrantStore.local(path, params)
    raise ValueError(f"unknown store backend {chosen!r}; use one of {BACKENDS}")


__all__ = [
    "BACKENDS",
    "COLLECTIONS",
    "EXAMS",
    "PAYLOAD_INDEXES",
    "REPORTS",
    "VENDORS",
    "CollectionInfo",
    "CollectionNotFoundError",
    "DimensionMismatchError",
    "DiskFullError",
    "EdgeStore",
    "ExamFilter",
    "ExamMeasurements",
    "ExamPayload",
    "MeasureRange",
    "IndexParams",
    "QdrantStore",
    "Quantization",
    "ScoredHit",
    "StoreError",
    "StoredParts",
    "StoredRecord",
    "VectorPoint",
    "VectorStore",
    "index_params",
    "normalise_vendor",
    "open_store",
]
