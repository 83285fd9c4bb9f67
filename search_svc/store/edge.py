"""The embedded engine: Qdrant Edge (qdrant-edge-py), Qdrant's own storage and HNSW running in-process.

Layout: one EdgeShard per collection, `<root>/<collection>/shard/`, beside
`<root>/<collection>/collection.json` (dimension, quantization), so a collection can be checked before its
shard is opened.

What the engine does and does not do (qdrant-edge-py 0.9, checked by hand and in the tests):
- There are no background optimizers: points land in a plain (appendable) segment and stay there until
  `optimize()` builds the HNSW graph. Search is right either way (plain segments are searched exactly and
  merged with the HNSW results), only slower on a large un-indexed tail. Call `optimize()` after a bulk load.
- `EdgeShard.optimize()` holds the Python GIL while it builds (17 s for 20k x 256-d here): every other
  Python thread of the process stalls meanwhile. Run it at quiet times, never from a request handler.
- Searches, updates and reads are safe from many threads (the shard locks internally) and release the GIL;
  the store only guards the shard's lifecycle (open/close/drop) with a readers-writer lock.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import qdrant_edge as edge
from numpy.typing import ArrayLike

from cmr.durable import fsync_path
from search_svc.store.base import (
    UNSTORED_ON_READ,
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
from search_svc.store.filters import to_edge_filter
from search_svc.store.locks import ReadWriteLock
from search_svc.store.schema import PAYLOAD_INDEXES, ExamFilter, IndexKind
from search_svc.store.warmup import warm_files

log = logging.getLogger(__name__)

META_FILE = "collection.json"
META_FORMAT = "cmr-search-edge-collection/1"
SHARD_DIR = "shard"
BUILD_PREFIX = "shard-"  # shard copies of background builds; the one in use is named in collection.json
FINAL_REPLAY_OPS = 8  # journaled writes replayed with searches paused, at the swap (each is one upsert batch)
UPSERT_BATCH = 512  # points per engine update: bounds the Python-side copy of a bulk load
FULL_SCAN_THRESHOLD_KB = 10_000  # Qdrant default: a filter leaving fewer KB of vectors scans exactly
INT8_QUANTILE = 0.99  # clip the top 1% of |values| when fitting the int8 range (Qdrant's recommendation)

_INDEX_TYPES: Mapping[IndexKind, edge.PayloadSchemaType] = {
    IndexKind.KEYWORD: edge.PayloadSchemaType.Keyword,
    IndexKind.INTEGER: edge.PayloadSchemaType.Integer,
    IndexKind.FLOAT: edge.PayloadSchemaType.Float,
    IndexKind.DATETIME: edge.PayloadSchemaType.Datetime,
}


def _with_payload(with_parts: bool) -> bool | edge.PayloadSelector:
    return True if with_parts else edge.PayloadSelector.Exclude(list(UNSTORED_ON_READ))


@dataclass
class _Collection:
    name: str
    dim: int
    quantization: Quantization
    shard: edge.EdgeShard
    shard_dir: str = SHARD_DIR  # a background build puts its copy in place under another name (live_index.py)
    journal: list[Any] | None = None  # writes since a background build copied the shard, replayed onto the copy
    write_lock: threading.Lock = field(default_factory=threading.Lock)  # orders writes against that copy


class EdgeStore(VectorStore):
    """Collections as Qdrant Edge shards under one folder."""

    backend = "edge"
    trusted_payloads = True  # only EdgeStore writes its shards, from checked ExamPayloads

    def __init__(self, root: str | Path, params: IndexParams | None = None, *,
                 indexing_threshold_kb: int | None = None, max_search_threads: int | None = None,
                 min_free_mb: float = 0) -> None:
        """root: the store folder (created if missing). params: HNSW/quantization of collections this store
        creates; an existing collection keeps what it was created with. indexing_threshold_kb: segments
        smaller than this stay plain (exact) even after optimize(); None = the engine's default (about
        10 MB of vectors). max_search_threads: the engine's search pool; None = one per CPU.
        min_free_mb: writes are refused (DiskFullError) while the store's disk has less free space than this.
        Why: the engine writes through memory maps, and a write that finds the disk full kills the process with
        SIGBUS (it then cannot even reopen until space returns); 0 = no check."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.params = params or IndexParams()
        if indexing_threshold_kb is not None and indexing_threshold_kb < 1:
            raise ValueError(f"indexing_threshold_kb must be >= 1, got {indexing_threshold_kb}")
        if max_search_threads is not None and max_search_threads < 1:
            raise ValueError(f"max_search_threads must be >= 1, got {max_search_threads}")
        self._indexing_threshold_kb = indexing_threshold_kb
        self._max_search_threads = max_search_threads
        self._collections: dict[str, _Collection] = {}
        self._lock = ReadWriteLock()
        self._closed = False
        self._unsynced = 0  # writes since the last WAL sync (sync_if_written skips an idle store)
        self._min_free_bytes = int(min_free_mb * 1024 * 1024)

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.root)!r})"

    # --- collections ----------------------------------------------------------------------------------------
    def ensure_collection(self, name: str, dim: int,
                          payload_indexes: Mapping[str, IndexKind] = PAYLOAD_INDEXES) -> CollectionInfo:
        check_collection_name(name)
        check_dim(dim)
        with self._lock.write():
            self._check_open()
            if name not in self._collections and not (self.root / name / META_FILE).is_file():
                self._check_space(f"creating collection {name!r}")
            coll = self._collections.get(name) or self._load(name) or self._create(name, dim)
            if coll.dim != dim:
                raise DimensionMismatchError(f"collection {name!r} holds {coll.dim}-d vectors; asked for "
                                             f"{dim}-d (drop it or use another collection name)")
            present = set(coll.shard.info().payload_schema)
            for field, kind in payload_indexes.items():
                if field not in present:
                    schema = _INDEX_TYPES[IndexKind(kind)]
                    self._apply(coll, edge.UpdateOperation.create_field_index(field, schema))
            return self._info(coll)

    def collection_exists(self, name: str) -> bool:
        check_collection_name(name)
        self._check_open()
        return name in self._collections or (self.root / name / META_FILE).is_file()

    def list_collections(self) -> list[str]:
        self._check_open()
        on_disk = {p.parent.name for p in self.root.glob(f"*/{META_FILE}")}
        return sorted(on_disk | set(self._collections))

    def drop_collection(self, name: str) -> bool:
        check_collection_name(name)
        with self._lock.write():
            self._check_open()
            coll = self._collections.pop(name, None)
            if coll is not None:
                coll.shard.close()
            folder = self.root / name
            if not (folder / META_FILE).is_file():
                return coll is not None
            shutil.rmtree(folder)
            return True

    def collection_info(self, name: str) -> CollectionInfo:
        with self._using(name) as coll:
            return self._info(coll)

    # --- writes ---------------------------------------------------------------------------------------------
    def upsert(self, collection: str, points: Iterable[VectorPoint]) -> int:
        written = 0
        with self._using(collection) as coll:
            iterator = iter(points)
            while batch := list(islice(iterator, UPSERT_BATCH)):
                self._check_space("upsert")
                engine_points = []
                for p in batch:
                    if not isinstance(p, VectorPoint):
                        raise TypeError(f"upsert takes VectorPoint objects, got {type(p).__name__}")
                    if p.vector.shape[0] != coll.dim:
                        raise DimensionMismatchError(
                            f"vector of point {p.id} has {p.vector.shape[0]} dimensions; "
                            f"collection {collection!r} holds {coll.dim}-d vectors")
                    engine_points.append(edge.Point(p.id, p.vector.tolist(), p.payload.to_dict()))
                self._apply(coll, edge.UpdateOperation.upsert_points(engine_points))
                written += len(batch)
                self._unsynced += 1
        return written

    def delete(self, collection: str, ids: Iterable[str]) -> int:
        wanted = check_ids(ids)
        if not wanted:
            return 0
        with self._using(collection) as coll:
            existing = [str(r.id) for r in coll.shard.retrieve(wanted, with_payload=False, with_vector=False)]
            if existing:
                self._check_space("delete")  # a delete is a WAL record too
                self._apply(coll, edge.UpdateOperation.delete_points(existing))
                self._unsynced += 1
            return len(existing)

    def optimize(self, collection: str) -> bool:
        with self._using(collection) as coll:
            self._check_space("building the index")
            return bool(coll.shard.optimize())

    # --- reads ----------------------------------------------------------------------------------------------
    def get(self, collection: str, ids: Iterable[str], *, with_vectors: bool = False,
            with_parts: bool = False) -> list[StoredRecord]:
        wanted = check_ids(ids)
        if not wanted:
            return []
        with self._using(collection) as coll:
            records = coll.shard.retrieve(wanted, with_payload=_with_payload(with_parts),
                                          with_vector=with_vectors)
        found = {str(r.id): r for r in records}
        return [self._record(found[i], with_vectors) for i in wanted if i in found]

    def search(self, collection: str, vector: ArrayLike, top_k: int, filter: ExamFilter | None = None, *,
               offset: int = 0, exact: bool = False, hnsw_ef: int | None = None,
               with_vectors: bool = False, with_parts: bool = False) -> list[ScoredHit]:
        check_top_k(top_k, offset)
        check_hnsw_ef(hnsw_ef)
        with self._using(collection) as coll:
            query = as_vector(vector, what="query vector", dim=coll.dim)
            quantization = None
            if coll.quantization is not Quantization.NONE:
                # exact=True must mean exact: skip the int8 copy entirely rather than rescoring from it.
                quantization = edge.QuantizationSearchParams(
                    ignore=exact, rescore=True, oversampling=self.params.quantization_oversampling)
            ef = max(hnsw_ef or self.params.hnsw_ef_search, top_k + offset)
            params = edge.SearchParams(hnsw_ef=ef, exact=exact, quantization=quantization)
            request = edge.SearchRequest(query=edge.Query.Nearest(query.tolist()), limit=top_k, offset=offset,
                                         filter=to_edge_filter(filter), params=params,
                                         with_payload=_with_payload(with_parts), with_vector=with_vectors)
            found = coll.shard.search(request)
        return [ScoredHit(str(p.id), float(p.score), self.payload_from_engine(p.payload, p.id),
                          to_vector(plain_vector(p.vector)) if with_vectors else None) for p in found]

    def scroll(self, collection: str, filter: ExamFilter | None = None, limit: int = 256,
               offset_token: str | None = None, *, with_vectors: bool = False, with_parts: bool = False,
               ) -> tuple[list[StoredRecord], str | None]:
        check_scroll_limit(limit)
        start = None if offset_token is None else check_point_id(offset_token)
        with self._using(collection) as coll:
            records, next_id = coll.shard.scroll(edge.ScrollRequest(
                offset=start, limit=limit, filter=to_edge_filter(filter),
                with_payload=_with_payload(with_parts), with_vector=with_vectors))
        return [self._record(r, with_vectors) for r in records], None if next_id is None else str(next_id)

    def count(self, collection: str, filter: ExamFilter | None = None) -> int:
        with self._using(collection) as coll:
            return int(coll.shard.count(edge.CountRequest(exact=True, filter=to_edge_filter(filter))))

    def facet(self, collection: str, key: str, limit: int = 100) -> dict[str, int]:
        with self._using(collection) as coll:
            found = coll.shard.facet(edge.FacetRequest(key, limit=limit, exact=True))
        return {str(h.value): int(h.count) for h in found.hits}

    def warm_up(self, collection: str) -> int:
        with self._using(collection) as coll:
            folder = self.root / coll.name / coll.shard_dir
        return warm_files(folder)  # outside the lock: reading takes seconds at 1M points, and drops may go on

    # --- lifecycle ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock.read():
            self._check_open()
            for coll in list(self._collections.values()):
                coll.shard.flush()

    def sync_wal(self) -> int:
        """fsync every collection's write-ahead log (its files and folder): acknowledged writes then survive a
        power cut, as after flush(), but without flush()'s stall. flush() writes the segments back inside the
        engine, holding the GIL for the whole call (0.05-0.2 s at 20k points on an idle machine, 0.6-1.4 s with
        the cores busy: every request of the service waits); os.fsync releases the GIL, so searches go on. The
        segments stay as they were: a restart replays the log onto them (flush() still runs at close, before a
        backup and before a background build). Returns the files synced."""
        with self._lock.read():
            self._check_open()
            self._unsynced = 0  # before: a write landing during the sync keeps the store marked
            folders = [self.root / c.name / c.shard_dir / "wal" for c in self._collections.values()]
        synced = 0
        for folder in folders:  # outside the lock: writes go on (they append to the log being synced)
            try:
                files = sorted(p for p in folder.iterdir() if p.is_file())
            except FileNotFoundError:  # a background build swapped the shard meanwhile (and marked its new log)
                continue
            for path in [*files, folder]:
                synced += fsync_path(path, missing_ok=True)
        return synced

    def sync_if_written(self) -> bool:
        """sync_wal() when anything was written since the last one."""
        if not self._unsynced:
            return False
        self.sync_wal()
        return True

    def close(self) -> None:
        with self._lock.write():
            if self._closed:
                return
            self._closed = True
            for coll in self._collections.values():
                coll.shard.flush()
                coll.shard.close()
            self._collections.clear()

    # --- background index builds (the protocol of search_svc/store/live_index.py) ---------------------------
    def begin_build(self, collection: str) -> Path:
        """Copy the collection's shard to a new folder for another process to build its HNSW graph in, and
        journal the writes made from now on. Writes wait during the copy (searches do not); returns the copy."""
        with self._using(collection) as coll, coll.write_lock:
            if coll.journal is not None:
                raise StoreError(f"a background build of collection {collection!r} is already running")
            # No flush first: it holds the GIL (0.5 s at 20k points). With no write in flight the files are
            # what a crash would leave, which the engine recovers from (it replays its write-ahead log).
            copy = self.root / coll.name / f"{BUILD_PREFIX}{uuid.uuid4().hex[:12]}"
            shutil.copytree(self.root / coll.name / coll.shard_dir, copy)
            coll.journal = []
        return copy

    def finish_build(self, collection: str, built: Path) -> int:
        """Put the built copy in place of the collection's shard: open it, replay the writes journaled since
        begin_build (in rounds while writes go on, the last few with searches paused), record it as the
        collection's shard and remove the old one. Returns the number of operations replayed."""
        shard = edge.EdgeShard.load(str(built), self._runtime_config())
        replayed = 0
        try:
            with self._using(collection) as coll:
                while True:  # catch up without blocking anyone; writes keep arriving meanwhile
                    with coll.write_lock:
                        ops, coll.journal = coll.journal or [], []
                    for op in ops:
                        shard.update(op)
                    replayed += len(ops)
                    if len(ops) <= FINAL_REPLAY_OPS:
                        break
            with self._lock.write():  # no search or write in flight: the swap itself
                self._check_open()
                coll = self._collections.get(collection)
                if coll is None:
                    raise CollectionNotFoundError(collection)
                for op in coll.journal or []:
                    shard.update(op)
                replayed += len(coll.journal or [])
                # No flush of the copy here (it holds the GIL): the replayed writes are in its write-ahead log,
                # which the next sync_wal() makes durable (a log synced in the old folder is not this one).
                _write_meta(self.root / collection, {"shard_dir": built.name})
                old, old_dir = coll.shard, self.root / collection / coll.shard_dir
                coll.shard, coll.shard_dir, coll.journal = shard, built.name, None
                self._unsynced += 1
        except BaseException:
            if self._collections.get(collection) is None or self._collections[collection].shard is not shard:
                shard.close()
                self.abort_build(collection, built)
            raise
        old.close()  # after the lock: no call can reach it any more (closing holds the GIL, 0.4 s at 20k)
        shutil.rmtree(old_dir, ignore_errors=True)
        return replayed

    def abort_build(self, collection: str, built: Path) -> None:
        """Stop journaling for a build that failed, and remove its copy."""
        coll = self._collections.get(collection)
        if coll is not None:
            with coll.write_lock:
                coll.journal = None
        shutil.rmtree(built, ignore_errors=True)

    # --- internals ------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    @property
    def min_free_bytes(self) -> int:
        """The free space writes must leave on the store's disk (0: no check)."""
        return self._min_free_bytes

    def _check_space(self, what: str) -> None:
        if self._min_free_bytes <= 0:
            return
        free = self.free_bytes()
        if free < self._min_free_bytes:
            raise DiskFullError(f"the index disk is full: {free / 2**20:.0f} MB free under {self.root}, writes need "
                                f"{self._min_free_bytes / 2**20:.0f} MB ({what} refused; searches go on). Free space "
                                "there or grow the disk; writes resume by themselves (CMR_INDEX_MIN_FREE_MB)")

    @contextmanager
    def _using(self, name: str) -> Iterator[_Collection]:
        """The open collection, held open (read lock) for the duration of one call."""
        check_collection_name(name)
        if name not in self._collections:
            with self._lock.write():  # first use of a collection created by an earlier process
                self._check_open()
                if name not in self._collections and self._load(name) is None:
                    raise CollectionNotFoundError(name)
        with self._lock.read():
            self._check_open()
            coll = self._collections.get(name)
            if coll is None:  # dropped by another thread in between
                raise CollectionNotFoundError(name)
            yield coll

    def _apply(self, coll: _Collection, operation: edge.UpdateOperation) -> None:
        with coll.write_lock:
            coll.shard.update(operation)
            if coll.journal is not None:
                coll.journal.append(operation)

    def _runtime_config(self) -> edge.EdgeConfig | None:
        if self._max_search_threads is None:
            return None
        return edge.EdgeConfig(max_search_threads=self._max_search_threads)

    def _load(self, name: str) -> _Collection | None:
        """Open a collection that exists on disk (write lock held); None when there is none."""
        folder = self.root / name
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != META_FORMAT:
            raise StoreError(f"{meta_path} is not a collection of this store (format {meta.get('format')!r})")
        dim, quantization = int(meta["dim"]), Quantization(meta["quantization"])
        shard_dir = folder / meta.get("shard_dir", SHARD_DIR)
        _remove_unfinished_builds(folder, shard_dir.name)
        if (shard_dir / "edge_config.json").is_file():
            shard = edge.EdgeShard.load(str(shard_dir), self._runtime_config())
        else:  # the process stopped between writing the metadata and creating the shard
            shard = edge.EdgeShard.create(str(shard_dir), self._create_config(dim, quantization))
        if quantization is not self.params.quantization:
            log.info("collection %r keeps quantization %s it was created with (store asks for %s)",
                     name, quantization.value, self.params.quantization.value)
        coll = _Collection(name, dim, quantization, shard, shard_dir.name)
        self._collections[name] = coll
        return coll

    def _create(self, name: str, dim: int) -> _Collection:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        quantization = self.params.quantization
        meta = {"format": META_FORMAT, "dim": dim, "distance": "cosine", "quantization": quantization.value,
                "hnsw_m": self.params.hnsw_m, "hnsw_ef_construct": self.params.hnsw_ef_construct}
        tmp = folder / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder / META_FILE)  # metadata first: a half-created collection is completed on load
        shard = edge.EdgeShard.create(str(folder / SHARD_DIR), self._create_config(dim, quantization))
        coll = _Collection(name, dim, quantization, shard)
        self._collections[name] = coll
        return coll

    def _create_config(self, dim: int, quantization: Quantization) -> edge.EdgeConfig:
        quantization_config = None
        if quantization is Quantization.INT8:
            quantization_config = edge.ScalarQuantizationConfig(
                type=edge.ScalarType.Int8, quantile=INT8_QUANTILE, always_ram=True)
        optimizers = (None if self._indexing_threshold_kb is None
                      else edge.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb))
        return edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=dim, distance=edge.Distance.Cosine),
            hnsw_config=edge.HnswIndexConfig(m=self.params.hnsw_m, ef_construct=self.params.hnsw_ef_construct,
                                             full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
            quantization_config=quantization_config,
            optimizers=optimizers,
            max_search_threads=self._max_search_threads,
        )

    def _info(self, coll: _Collection) -> CollectionInfo:
        info = coll.shard.info()
        return CollectionInfo(
            name=coll.name, backend=self.backend, dim=coll.dim, points=int(info.points_count),
            indexed_vectors=int(info.indexed_vectors_count), segments=int(info.segments_count),
            quantization=coll.quantization,
            payload_indexes={k: _index_name(v.data_type) for k, v in sorted(info.payload_schema.items())},
        )

    def _record(self, record: Any, with_vectors: bool) -> StoredRecord:
        return StoredRecord(str(record.id), self.payload_from_engine(record.payload, record.id),
                            to_vector(plain_vector(record.vector)) if with_vectors else None)


def _write_meta(folder: Path, changes: Mapping[str, Any]) -> None:
    """Update collection.json atomically (a crash leaves the old or the new, never half of one)."""
    meta = json.loads((folder / META_FILE).read_text()) | dict(changes)
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / META_FILE)


def _remove_unfinished_builds(folder: Path, current: str) -> None:
    """Copies of a build the process did not finish (it stopped meanwhile): the shard in use is `current`."""
    for path in folder.glob(f"{BUILD_PREFIX}*"):
        if path.name != current and path.is_dir():
            log.info("removing %s, left by an unfinished background index build", path)
            shutil.rmtree(path, ignore_errors=True)
        elif path.name != current:
            path.unlink(missing_ok=True)


def _index_name(schema_type: edge.PayloadSchemaType) -> str:
    return str(schema_type).rsplit(".", 1)[-1].lower()  # PayloadSchemaType.Keyword -> "keyword"
