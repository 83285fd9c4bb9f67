"""The search benchmark's machinery: the stand-in mixture, the data set on disk, exact ground truth, recall,
the target checks and the report (on small, made-up numbers; the benchmark itself runs for an hour)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bench.search as bench


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> bench.Dataset:
    rng = np.random.default_rng(0)
    mix = bench.generated_mixture(rng)
    return bench.write_dataset(mix, 3000, tmp_path_factory.mktemp("bench"), rng)


def test_generated_mixture_gives_unit_vectors_and_styles() -> None:
    mix = bench.generated_mixture(np.random.default_rng(1))
    vectors, styles = mix.sample(500, np.random.default_rng(2))
    assert vectors.shape == (500, bench.DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert styles.min() >= 0 and styles.max() < len(mix.styles)
    assert ("siemens", 1.5) in mix.styles  # the benchmark filter can match


def test_ground_truth_is_the_exact_top_k(dataset: bench.Dataset) -> None:
    size = 2500  # a prefix of the 3000 rows written
    best, best_filtered, selectivity = bench.ground_truth(dataset, size)
    vectors = bench.read_rows(dataset.vectors, 0, size)
    queries = np.load(dataset.queries)
    mask = bench.filter_mask(np.load(dataset.meta), size)
    scores = queries[:20] @ vectors.T
    np.testing.assert_array_equal(best[:20], np.argsort(-scores, axis=1, kind="stable")[:, : bench.TOP_K])
    filtered = np.where(mask, scores, -np.inf)
    np.testing.assert_array_equal(best_filtered[:20], np.argsort(-filtered, axis=1, kind="stable")[:, : bench.TOP_K])
    assert selectivity == pytest.approx(mask.mean()) and 0.0 < selectivity < 1.0
    assert mask[best_filtered].all()


def test_payloads_match_the_filter_rule(dataset: bench.Dataset) -> None:
    meta = dict(np.load(dataset.meta))
    impressions = json.loads(dataset.impressions.read_text())
    mask = bench.filter_mask(meta, 200)
    for row in range(200):
        p = bench.exam_payload(row, meta, impressions)
        assert mask[row] == (p.vendor == "siemens" and p.field_strength_t == 1.5)
        assert "cine_sax" in p.views


def test_recall() -> None:
    assert bench.recall([["a", "b"]], [["b", "c"]]) == pytest.approx(0.1)  # 1 of the top 10
    assert bench.recall([list("abcdefghij")], [list("jihgfedcba")]) == 1.0


def _result(engine: str, size: int, p99: float, recall: float) -> dict:
    run = {"queries": 10, "p50_ms": p99 / 2, "p99_ms": p99, "mean_ms": p99 / 2, "qps": 1000 / p99, "recall": recall}
    runs = {f: {"1": run, "8": run} for f in ("unfiltered", "filtered")}
    sweep = ([{"knob": "hnsw_ef", "value": ef, "filter": f, **run, "recall": min(1.0, recall + ef / 1000)}
              for ef in (32, 128) for f in ("unfiltered", "filtered")] if engine.startswith("edge") else [])
    return {"engine": engine, "size": size, "build_s": 1.0, "upsert_s": 0.5, "optimize_s": 0.5, "memory_mb": 10.0,
            "build_peak_mb": 20.0, "disk_mb": 5.0, "segments": 1, "runs": runs, "sweep": sweep}


def test_targets_and_report(tmp_path: Path) -> None:
    results = [_result("numpy", 100_000, 30.0, 1.0), _result("edge", 100_000, 2.0, 1.0),
               _result("client-local", 100_000, 900.0, 1.0), _result("edge", 1_000_000, 4.0, 0.99),
               _result("edge-int8", 1_000_000, 3.0, 0.90)]
    targets = bench.evaluate_targets(results, [100_000, 1_000_000])
    met = {t["target"].split(":")[0]: t["met"] for t in targets}
    assert met["edge at 1M"] is True  # p99 4 ms, recall 0.99
    assert met["edge-int8 at 1M"] is False  # recall 0.90
    assert met["edge at 100k"] is True  # 450x lower p99 than local mode
    peer = _result("hnswlib", 1_000_000, 1.0, 0.99) | {"upsert_s": None, "disk_mb": None, "segments": "-"}
    peer["sweep"] = [{**s, "knob": "hnsw_ef"} for s in _result("edge", 1, 1.0, 0.99)["sweep"]]
    results.append(peer)
    report = {"date": "2026-01-01", "quick": False, "machine": bench.machine(), "sizes": [100_000, 1_000_000],
              "source": {"kind": "generated", "description": "generated", "details": {}},
              "selectivity": {"100000": 0.2, "1000000": 0.2}, "results": results}
    path = tmp_path / "search.json"
    path.write_text(json.dumps(report))
    bench.render(path)
    text = path.with_suffix(".md").read_text()
    assert "| 1,000,000 | edge | 1.0 |" in text and "**not met**" in text
    assert "| 1,000,000 | hnswlib | 1.0 |" in text and "hnswlib on the same vectors" in text
    assert path.with_suffix(".png").stat().st_size > 10_000


@pytest.mark.parametrize("engine", bench.PEER_ENGINES)
def test_peer_engines_find_the_exact_neighbours_and_honour_the_filter(dataset: bench.Dataset, engine: str) -> None:
    size = 2000
    gt_all, gt_filtered, _ = bench.ground_truth(dataset, size)
    np.savez(dataset.truth(size), all=gt_all, filtered=gt_filtered)
    result = bench.peer_worker(engine, dataset, size)
    assert result["runs"]["unfiltered"]["1"]["recall"] >= 0.9  # HNSW at m 16, ef 64 over 2k points
    assert result["runs"]["filtered"]["1"]["recall"] >= 0.9
    assert {s["value"] for s in result["sweep"]} == set(bench.EF_SWEEP)
    peer = bench.make_peer(engine, bench.DIM, 16, 100, size)
    peer.add(bench.read_rows(dataset.vectors, 0, size))
    mask = bench.filter_mask(np.load(dataset.meta), size)
    rows = peer.search(np.load(dataset.queries)[0], bench.TOP_K, 64, mask)
    assert len(rows) == bench.TOP_K and mask[rows].all()  # only rows passing the filter come back
