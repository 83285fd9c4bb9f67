"""bench/text_path.py with stand-in runtimes (the real ones are compared by the benchmark itself): the query
stream repeats what it says it repeats, the chosen runtime is the fastest one that passes equality, the cache
run counts its hits, and the report and plot are written."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench import text_path as tp


class Fake:
    """A runtime that takes `ms` per call and returns a fixed vector per text, nudged by `noise`."""

    def __init__(self, runtime: str, ms: float, noise: float = 0.0) -> None:
        self.runtime, self.version, self.ms, self.noise = runtime, "m@1", ms, noise
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        time.sleep(self.ms / 1e3)
        rows = [np.random.default_rng(sum(map(ord, t))).standard_normal(8) + self.noise * np.ones(8) for t in texts]
        x = np.asarray(rows, np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_query_stream_repeats_its_share_and_is_reproducible() -> None:
    a, b = tp.query_stream(2000, seed=3, repeat_share=0.6), tp.query_stream(2000, seed=3, repeat_share=0.6)
    assert a == b
    common = set(tp.UI_EXAMPLES) | set(tp.prompt_texts())
    share = sum(q in common for q in a) / len(a)
    assert 0.55 < share < 0.65
    assert all(q not in common for q in tp.query_stream(200, repeat_share=0.0))
    assert len(set(tp.query_stream(200, repeat_share=0.0))) == 200


def test_choose_the_fastest_runtime_that_passes() -> None:
    lat = [tp.Latency("torch", 10, 20, 10, 5), tp.Latency("onnx-fp32", 4, 8, 4, 5), tp.Latency("onnx-int8", 2, 4, 2, 5)]
    eq = [tp.Equality("torch", 1, 1, 9, max_auroc_delta=0.0), tp.Equality("onnx-fp32", 0.99999, 1, 9, max_auroc_delta=0.0),
          tp.Equality("onnx-int8", 0.995, 0.997, 9, max_auroc_delta=0.03)]
    assert tp.choose(lat, eq) == "onnx-fp32"  # int8 moved an AUROC by 0.03
    eq[2].max_auroc_delta = 0.004
    assert tp.choose(lat, eq) == "onnx-int8"
    eq[1].min_cosine, eq[2].max_auroc_delta = 0.999, 0.01
    assert tp.choose(lat, eq) == "torch"


def test_latency_equality_cache_and_report(tmp_path: Path) -> None:
    runtimes = {"torch": Fake("torch", 3.0), "onnx-fp32": Fake("onnx-fp32", 1.0),
                "onnx-int8": Fake("onnx-int8", 0.5, noise=0.05)}
    lat = tp.latencies(runtimes, tp.query_stream(20, repeat_share=0.0), warmup=2)
    by = {x.runtime: x for x in lat}
    assert all(x.n == 20 and x.p50_ms <= x.p99_ms for x in lat)  # (no timing asserted: the machine is shared)
    assert by["onnx-int8"].speedup_p50 == pytest.approx(by["torch"].p50_ms / by["onnx-int8"].p50_ms)
    assert by["torch"].speedup_p99 == 1.0
    eq = tp.equality(runtimes, ["a", "bb", "ccc"], None, [])
    assert {e.runtime: e.min_cosine for e in eq}["onnx-fp32"] > 0.9999 > {e.runtime: e.min_cosine for e in eq}["onnx-int8"]
    fp32 = Fake("onnx-fp32", 0.0)
    run = tp.cache_run(fp32, 400, capacity=64, repeat_share=0.6)
    assert run.queries == 400 and 0.3 < run.hit_rate < 0.6 and run.distinct < 400
    assert fp32.calls == 400 + round(400 * (1 - run.hit_rate))  # the uncached pass plus the cache's misses
    result = tp.TextPathResult("now", "test machine", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], True, 1, "m@1", lat, eq,
                               None, 0, run, tp.choose(lat, eq))
    md = tp.write(result, tmp_path)
    text = md.read_text()
    assert "load average 1.0" in text and "assumption" in text and f"**{result.chosen}**" in text
    assert (tmp_path / "text_path.png").stat().st_size > 0 and (tmp_path / "text_path.json").exists()
