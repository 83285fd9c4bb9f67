"""The query-embedding LRU cache: rows come back in order from cache or one compute call, keys separate model
versions and runtimes, whitespace does not make a new key, the oldest entry goes first, capacity 0 keeps
nothing, and the counters count every lookup."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.model.query_cache import QueryEmbeddingCache, normalise_query


class Counting:
    """A stand-in model: each text's vector is fixed by its normalised text; records every batch it gets."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([np.random.default_rng(abs(hash(normalise_query(t))) % 2**32).standard_normal(4)
                         .astype(np.float32) for t in texts])


def test_hits_misses_and_order() -> None:
    cache, model = QueryEmbeddingCache(8), Counting()
    first = cache.encode("m@1", "onnx-int8", ["a b", "c"], model)
    again = cache.encode("m@1", "onnx-int8", ["c", " a   b ", "d"], model)
    assert model.calls == [["a b", "c"], ["d"]]  # only the new text is computed
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    c = cache.counts()
    assert (c.hits, c.misses, c.size, c.capacity) == (2, 3, 3, 8) and c.hit_rate == pytest.approx(0.4)
    again[0][:] = 0.0  # a caller changing its result does not change what the cache holds
    assert np.array_equal(cache.encode("m@1", "onnx-int8", ["c"], model)[0], first[1])


def test_keys_separate_versions_and_runtimes() -> None:
    cache, model = QueryEmbeddingCache(8), Counting()
    for version, runtime in (("m@1", "torch"), ("m@1", "onnx-fp32"), ("m@2", "torch"), ("m@1", "torch")):
        cache.encode(version, runtime, ["x"], model)
    assert len(model.calls) == 3 and cache.counts().hits == 1


def test_least_recently_used_goes_first_and_zero_keeps_nothing() -> None:
    cache, model = QueryEmbeddingCache(2), Counting()
    for t in ("a", "b", "a", "c"):  # "a" was used after "b": "b" is evicted by "c"
        cache.encode("v", "r", [t], model)
    model.calls.clear()
    cache.encode("v", "r", ["a", "c", "b"], model)
    assert model.calls == [["b"]] and cache.counts().size == 2
    off, model = QueryEmbeddingCache(0), Counting()
    off.encode("v", "r", ["a"], model)
    off.encode("v", "r", ["a"], model)
    assert len(model.calls) == 2 and off.counts().size == 0 and off.counts().hits == 0
    with pytest.raises(ValueError, match=">= 0"):
        QueryEmbeddingCache(-1)
