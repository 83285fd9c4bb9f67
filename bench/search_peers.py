"""The in-process HNSW libraries a user might pick instead of Qdrant Edge, behind one small interface, so the
search benchmarks (bench/search.py, bench/store_overhead.py) measure them on the same vectors and queries.

- FAISS `IndexHNSWFlat` (faiss-cpu), inner product on unit vectors (= cosine); a filter is an
  `IDSelectorBitmap` checked while walking the graph, as Qdrant checks its payload filter.
- hnswlib (`ip` space); a filter is a Python callable the library calls per candidate (its only filter form).

Both build with the same graph settings as the store (m, ef_construct) and take hnsw_ef per query. They hold
vectors and row numbers only: no payloads, no persistence, which is what the comparison with Edge is about.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import NDArray

PEER_ENGINES: tuple[str, ...] = ("faiss-hnsw", "hnswlib")


class PeerIndex(ABC):
    """An HNSW index over rows 0..n-1 of a unit-vector matrix; search answers row numbers, best first."""

    name: str = "abstract"

    @abstractmethod
    def add(self, vectors: NDArray[np.float32]) -> None:
        """Append rows (their row numbers continue from the rows added before)."""

    @abstractmethod
    def search(self, query: NDArray[np.float32], top_k: int, hnsw_ef: int,
               allowed: NDArray[np.bool_] | None = None) -> list[int]:
        """The top_k rows by inner product; `allowed` (one bool per row) restricts them to a subset."""


class FaissHnsw(PeerIndex):
    name = "faiss-hnsw"

    def __init__(self, dim: int, m: int, ef_construct: int, threads: int | None = None) -> None:
        import faiss

        if threads is not None:
            faiss.omp_set_num_threads(threads)
        self._faiss = faiss
        self._index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = ef_construct
        self._bitmaps: dict[int, Any] = {}  # id(allowed) -> selector: built once per filter, not per query

    def add(self, vectors: NDArray[np.float32]) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def _selector(self, allowed: NDArray[np.bool_]) -> Any:
        key = id(allowed)
        if key not in self._bitmaps:
            bits = np.packbits(allowed.astype(np.uint8), bitorder="little")
            self._bitmaps[key] = (self._faiss.IDSelectorBitmap(len(allowed), self._faiss.swig_ptr(bits)), bits,
                                  allowed)  # keep the bits (and the mask, so its id stays unique) alive
        return self._bitmaps[key][0]

    def search(self, query: NDArray[np.float32], top_k: int, hnsw_ef: int,
               allowed: NDArray[np.bool_] | None = None) -> list[int]:
        params = self._faiss.SearchParametersHNSW()
        params.efSearch = max(hnsw_ef, top_k)
        if allowed is not None:
            params.sel = self._selector(allowed)
        _, rows = self._index.search(query.reshape(1, -1).astype(np.float32, copy=False), top_k, params=params)
        return [int(r) for r in rows[0] if r >= 0]


class Hnswlib(PeerIndex):
    name = "hnswlib"

    def __init__(self, dim: int, m: int, ef_construct: int, capacity: int, threads: int = -1) -> None:
        import hnswlib

        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=capacity, M=m, ef_construction=ef_construct)
        self._threads = threads
        self._count = 0

    def add(self, vectors: NDArray[np.float32]) -> None:
        rows = np.arange(self._count, self._count + len(vectors))
        self._index.add_items(vectors, rows, num_threads=self._threads)
        self._count += len(vectors)

    def search(self, query: NDArray[np.float32], top_k: int, hnsw_ef: int,
               allowed: NDArray[np.bool_] | None = None) -> list[int]:
        self._index.set_ef(max(hnsw_ef, top_k))
        keep = None if allowed is None else (lambda row: bool(allowed[row]))
        rows, _ = self._index.knn_query(query, k=top_k, num_threads=1, filter=keep)
        return [int(r) for r in rows[0]]


def make_peer(engine: str, dim: int, m: int, ef_construct: int, capacity: int) -> PeerIndex:
    """A new, empty index of one of PEER_ENGINES (the build uses every core, as Edge's optimize does)."""
    if engine == "faiss-hnsw":
        return FaissHnsw(dim, m, ef_construct)
    if engine == "hnswlib":
        return Hnswlib(dim, m, ef_construct, capacity)
    raise ValueError(f"unknown peer engine {engine!r}; one of {PEER_ENGINES}")
