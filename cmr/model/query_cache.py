"""A bounded LRU cache of query embeddings with hit/miss counters.

Keyed by (model version, runtime, normalised text): a vector is only ever reused for the model and runtime
that made it. Normalisation collapses whitespace only, which a BERT WordPiece tokenizer ignores anyway; case
is kept (a cased backbone tells "MR" from "mr")."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def normalise_query(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class CacheCounts:
    hits: int
    misses: int
    size: int
    capacity: int

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0


class QueryEmbeddingCache:
    """Thread-safe; capacity 0 turns it off (every lookup a miss, nothing kept)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, str], NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, version: str, runtime: str, texts: list[str],
               compute: Callable[[list[str]], NDArray[np.float32]]) -> NDArray[np.float32]:
        """Rows for `texts`: cached ones from the cache, the others computed in one `compute` call and kept."""
        keys = [(version, runtime, normalise_query(t)) for t in texts]
        found: dict[int, NDArray[np.float32]] = {}
        with self._lock:
            for i, k in enumerate(keys):
                v = self._items.get(k)
                if v is not None:
                    self._items.move_to_end(k)
                    found[i] = v
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        todo = [i for i in range(len(keys)) if i not in found]
        if todo:
            made = np.asarray(compute([texts[i] for i in todo]), np.float32)
            for row, i in enumerate(todo):
                found[i] = made[row]
            self._keep([(keys[i], found[i]) for i in todo])
        return np.stack([found[i] for i in range(len(keys))])

    def _keep(self, items: list[tuple[tuple[str, str, str], NDArray[np.float32]]]) -> None:
        if not self.capacity:
            return
        with self._lock:
            for k, v in items:
                v = v.copy()
                v.setflags(write=False)  # callers share the row: nobody may change it in place
                self._items[k] = v
                self._items.move_to_end(k)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def counts(self) -> CacheCounts:
        with self._lock:
            return CacheCounts(self.hits, self.misses, len(self._items), self.capacity)
