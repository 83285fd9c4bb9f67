"""The scale-out engine: qdrant-client against a Qdrant server or cluster (`QdrantStore.connect`).

The same class also drives qdrant-client's local mode (`QdrantStore.local`, in memory or in a folder), which
implements the server's API in pure Python: CI runs the congruence tests against it in place of a server.
Local mode is brute force (no HNSW, no payload indexes: it warns above 20,000 points) and not thread-safe,
so calls to it are serialised here; the server client is thread-safe and calls to it run concurrently.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from search_svc.store.base import (
    UNSTORED_ON_READ,
    CollectionInfo,
    CollectionNotFoundError,
    DimensionMismatchError,
    IndexParams,
    Quantization,
    ScoredHit,
    StoredRecord,
    StoreError,
    VectorPoint,
    VectorStore,
    as_vector,
    check_collection_name,
    check_dim,
    check_hnsw_ef,
    check_ids,
    check_point_id,
    check_scroll_limit,
    check_top_k,
    plain_vector,
    to_vector,
)
from search_svc.store.filters import to_client_filter
from search_svc.store.locks import ReadWriteLock
from search_svc.store.schema import PAYLOAD_INDEXES, ExamFilter, IndexKind

UPSERT_BATCH = 256  # points per request: a few MB of JSON/protobuf at 512-d
INT8_QUANTILE = 0.99

_INDEX_TYPES: Mapping[IndexKind, qm.PayloadSchemaType] = {
    IndexKind.KEYWORD: qm.PayloadSchemaType.KEYWORD,
    IndexKind.INTEGER: qm.PayloadSchemaType.INTEGER,
    IndexKind.FLOAT: qm.PayloadSchemaType.FLOAT,
    IndexKind.DATETIME: qm.PayloadSchemaType.DATETIME,
}


def _with_payload(with_parts: bool) -> bool | qm.PayloadSelectorExclude:
    return True if with_parts else qm.PayloadSelectorExclude(exclude=list(UNSTORED_ON_READ))


@dataclass(frozen=True)
class _Shape:
    dim: int
    quantization: Quantization


class QdrantStore(VectorStore):
    """Collections in a Qdrant server/cluster, or in qdrant-client's local mode."""

    def __init__(self, client: QdrantClient, params: IndexParams | None = None, *, local: bool,
                 shard_number: int | None = None, replication_factor: int | None = None) -> None:
        """Prefer `connect` or `local`. shard_number/replication_factor apply to collections created on a
        cluster (None = the server's defaults)."""
        self.client = client
        self.params = params or IndexParams()
        self.local = local
        self.backend = "client-local" if local else "qdrant-server"
        self._shard_number = shard_number
        self._replication_factor = replication_factor
        self._shapes: dict[str, _Shape] = {}  # per collection, read once: dimension and quantization
        self._lock = ReadWriteLock()
        self._serial: threading.Lock | None = threading.Lock() if local else None
        self._closed = False

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, params: IndexParams | None = None, *,
                prefer_grpc: bool = False, timeout_s: int | None = None, **cluster: Any) -> QdrantStore:
        """A store on a Qdrant server or cluster at `url` (e.g. http://qdrant:6333)."""
        if not url:
            raise ValueError("a Qdrant URL is required (settings.qdrant_url), e.g. http://localhost:6333")
        client = QdrantClient(url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout_s)
        return cls(client, params, local=False, **cluster)

    @classmethod
    def local(cls, path: str | Path | None = None, params: IndexParams | None = None) -> QdrantStore:
        """qdrant-client local mode: in memory (path None) or persisted in a folder."""
        if path is None:
            client = QdrantClient(location=":memory:")
        else:
            Path(path).mkdir(parents=True, exist_ok=True)
            # Its SQLite file is opened by one thread by default; our lock serialises the calls instead.
            client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
        return cls(client, params, local=True)

    def __repr__(self) -> str:
        return f"QdrantStore(backend={self.backend!r})"

    # --- collections ----------------------------------------------------------------------------------------
    def ensure_collection(self, name: str, dim: int,
                          payload_indexes: Mapping[str, IndexKind] = PAYLOAD_INDEXES) -> CollectionInfo:
        check_collection_name(name)
        check_dim(dim)
        with self._lock.write(), self._serialised():
            self._check_open()
            if not self.client.collection_exists(name):
                self.client.create_collection(
                    name,
                    vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                    hnsw_config=qm.HnswConfigDiff(m=self.params.hnsw_m,
                                                  ef_construct=self.params.hnsw_ef_construct),
                    quantization_config=_quantization_config(self.params.quantization),
                    shard_number=self._shard_number, replication_factor=self._replication_factor,
                )
            shape = self._read_shape(name)
            if shape.dim != dim:
                raise DimensionMismatchError(f"collection {name!r} holds {shape.dim}-d vectors; asked for "
                                             f"{dim}-d (drop it or use another collection name)")
            present = set(self.client.get_collection(name).payload_schema or {})
            with warnings.catch_warnings():
                # Local mode says payload indexes have no effect there; filters still work (by scanning).
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for field, kind in payload_indexes.items():
                    if field not in present:
                        schema = _INDEX_TYPES[IndexKind(kind)]
                        self.client.create_payload_index(name, field, schema, wait=True)
            return self._info(name)

    def collection_exists(self, name: str) -> bool:
        check_collection_name(name)
        with self._lock.read(), self._serialised():
            self._check_open()
            return bool(self.client.collection_exists(name))

    def list_collections(self) -> list[str]:
        with self._lock.read(), self._serialised():
            self._check_open()
            return sorted(c.name for c in self.client.get_collections().collections)

    def drop_collection(self, name: str) -> bool:
        check_collection_name(name)
        with self._lock.write(), self._serialised():
            self._check_open()
            self._shapes.pop(name, None)
            if not self.client.collection_exists(name):
                return False
            return bool(self.client.delete_collection(name))

    def collection_info(self, name: str) -> CollectionInfo:
        with self._using(name):
            return self._info(name)

    # --- writes ---------------------------------------------------------------------------------------------
    def upsert(self, collection: str, points: Iterable[VectorPoint]) -> int:
        written = 0
        with self._using(collection) as shape:
            iterator = iter(points)
            while batch := list(islice(iterator, UPSERT_BATCH)):
                structs = []
                for p in batch:
                    if not isinstance(p, VectorPoint):
                        raise TypeError(f"upsert takes VectorPoint objects, got {type(p).__name__}")
                    if p.vector.shape[0] != shape.dim:
                        raise DimensionMismatchError(
                            f"vector of point {p.id} has {p.vector.shape[0]} dimensions; "
                            f"collection {collection!r} holds {shape.dim}-d vectors")
                    structs.append(qm.PointStruct(id=p.id, vector=p.vector.tolist(),
                                                  payload=p.payload.to_dict()))
                self.client.upsert(collection, points=structs, wait=True)
                written += len(batch)
        return written

    def delete(self, collection: str, ids: Iterable[str]) -> int:
        wanted = check_ids(ids)
        if not wanted:
            return 0
        with self._using(collection):
            existing = [str(r.id) for r in self.client.retrieve(collection, wanted, with_payload=False)]
            if existing:
                self.client.delete(collection, points_selector=qm.PointIdsList(points=existing), wait=True)
            return len(existing)

    def optimize(self, collection: str) -> bool:
        """Nothing to run: a server indexes in the background, and local mode has no index."""
        with self._using(collection):
            return False

    # --- reads ----------------------------------------------------------------------------------------------
    def get(self, collection: str, ids: Iterable[str], *, with_vectors: bool = False,
            with_parts: bool = False) -> list[StoredRecord]:
        wanted = check_ids(ids)
        if not wanted:
            return []
        with self._using(collection):
            found = {str(r.id): r for r in self.client.retrieve(collection, wanted,
                                                                 with_payload=_with_payload(with_parts),
                                                                 with_vectors=with_vectors)}
        return [self._record(found[i], with_vectors) for i in wanted if i in found]

    def search(self, collection: str, vector: ArrayLike, top_k: int, filter: ExamFilter | None = None, *,
               offset: int = 0, exact: bool = False, hnsw_ef: int | None = None,
               with_vectors: bool = False, with_parts: bool = False) -> list[ScoredHit]:
        check_top_k(top_k, offset)
        check_hnsw_ef(hnsw_ef)
        with self._using(collection) as shape:
            query = as_vector(vector, what="query vector", dim=shape.dim)
            # Local mode is always exact and warns about search parameters it ignores.
            params = None if self.local else self._search_params(shape, top_k + offset, exact, hnsw_ef)
            found = self.client.query_points(
                collection, query=query.tolist(), limit=top_k, offset=offset or None,
                query_filter=to_client_filter(filter), search_params=params,
                with_payload=_with_payload(with_parts), with_vectors=with_vectors).points
        return [ScoredHit(str(p.id), float(p.score), self.payload_from_engine(p.payload, p.id),
                          to_vector(plain_vector(p.vector)) if with_vectors else None) for p in found]

    def scroll(self, collection: str, filter: ExamFilter | None = None, limit: int = 256,
               offset_token: str | None = None, *, with_vectors: bool = False, with_parts: bool = False,
               ) -> tuple[list[StoredRecord], str | None]:
        check_scroll_limit(limit)
        start = None if offset_token is None else check_point_id(offset_token)
        with self._using(collection):
            records, next_id = self.client.scroll(
                collection, scroll_filter=to_client_filter(filter), limit=limit, offset=start,
                with_payload=_with_payload(with_parts), with_vectors=with_vectors)
        return [self._record(r, with_vectors) for r in records], None if next_id is None else str(next_id)

    def count(self, collection: str, filter: ExamFilter | None = None) -> int:
        with self._using(collection):
            return int(self.client.count(collection, count_filter=to_client_filter(filter), exact=True).count)

    def facet(self, collection: str, key: str, limit: int = 100) -> dict[str, int]:
        with self._using(collection):
            found = self.client.facet(collection, key, limit=limit, exact=True)
        return {str(h.value): int(h.count) for h in found.hits}

    # --- aliases (a server's atomic switch between collections) ----------------------------------------------
    def set_aliases(self, targets: Mapping[str, str]) -> None:
        """Point each alias at its collection in one request: Qdrant applies the whole list atomically, so a
        reader never sees one alias moved and another not."""
        with self._lock.read(), self._serialised():
            self._check_open()
            existing = {a.alias_name for a in self.client.get_aliases().aliases}
            ops: list[Any] = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a))
                              for a in targets if a in existing]
            ops += [qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=c, alias_name=a))
                    for a, c in targets.items()]
            self.client.update_collection_aliases(change_aliases_operations=ops)

    def aliases(self) -> dict[str, str]:
        with self._lock.read(), self._serialised():
            self._check_open()
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    # --- lifecycle ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Writes are acknowledged with wait=True (server) or persisted as they happen (local mode)."""
        self._check_open()

    def close(self) -> None:
        with self._lock.write(), self._serialised():
            if self._closed:
                return
            self._closed = True
            self.client.close()

    # --- internals ------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

    def _serialised(self) -> contextlib.AbstractContextManager[Any]:
        return self._serial if self._serial is not None else contextlib.nullcontext()

    @contextmanager
    def _using(self, name: str) -> Iterator[_Shape]:
        check_collection_name(name)
        with self._lock.read(), self._serialised():
            self._check_open()
            shape = self._shapes.get(name)
            if shape is None:
                if not self.client.collection_exists(name):
                    raise CollectionNotFoundError(name)
                shape = self._read_shape(name)
            yield shape

    def _search_params(self, shape: _Shape, candidates: int, exact: bool,
                       hnsw_ef: int | None) -> qm.SearchParams:
        quantization = None
        if shape.quantization is not Quantization.NONE:
            # exact=True must mean exact: skip the int8 copy entirely rather than rescoring from it.
            quantization = qm.QuantizationSearchParams(
                ignore=exact, rescore=True, oversampling=self.params.quantization_oversampling)
        return qm.SearchParams(hnsw_ef=max(hnsw_ef or self.params.hnsw_ef_search, candidates), exact=exact,
                               quantization=quantization)

    def _read_shape(self, name: str) -> _Shape:
        config = self.client.get_collection(name).config
        vectors = config.params.vectors
        if not isinstance(vectors, qm.VectorParams):
            raise StoreError(f"collection {name!r} uses named vectors; "
                             f"this store reads one unnamed dense vector")
        quantized = vectors.quantization_config is not None or config.quantization_config is not None
        shape = _Shape(int(vectors.size), Quantization.INT8 if quantized else Quantization.NONE)
        self._shapes[name] = shape
        return shape

    def _info(self, name: str) -> CollectionInfo:
        info = self.client.get_collection(name)
        shape = self._shapes.get(name) or self._read_shape(name)
        return CollectionInfo(
            name=name, backend=self.backend, dim=shape.dim, points=int(info.points_count or 0),
            indexed_vectors=int(info.indexed_vectors_count or 0), segments=int(info.segments_count or 0),
            quantization=shape.quantization,
            payload_indexes={k: str(getattr(v.data_type, "value", v.data_type)).lower()
                             for k, v in sorted((info.payload_schema or {}).items())},
        )

    def _record(self, record: Any, with_vectors: bool) -> StoredRecord:
        return StoredRecord(str(record.id), self.payload_from_engine(record.payload, record.id),
                            to_vector(plain_vector(record.vector)) if with_vectors else None)


def _quantization_config(quantization: Quantization) -> qm.ScalarQuantization | None:
    if quantization is Quantization.NONE:
        return None
    return qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(
        type=qm.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True))
