"""`cmr bench search` end to end at its smallest size: every engine's build and serve worker processes on a few
hundred generated vectors, the report, its table and plot (the path, not the speed: the committed run uses 100k
and 1M points)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.search as bench


@pytest.mark.slow
def test_every_engine_at_the_smallest_size(tmp_path: Path) -> None:
    report = bench.run(out_dir=tmp_path / "out", data_root=tmp_path / "no-studies", work_dir=tmp_path, sizes=[400])
    engines = {r["engine"] for r in report["results"]}
    assert engines == set(bench.ENGINES)
    for r in report["results"]:
        assert r["size"] == 400 and r["runs"]["unfiltered"]["1"]["queries"] > 0, r
        assert 0.0 <= r["runs"]["unfiltered"]["1"]["recall"] <= 1.0
    numpy_exact = next(r for r in report["results"] if r["engine"] == "numpy")
    assert numpy_exact["runs"]["unfiltered"]["1"]["recall"] == 1.0  # exact search is its own ground truth
    saved = json.loads((tmp_path / "out" / "search.json").read_text())
    assert saved["sizes"] == [400]
    assert (tmp_path / "out" / "search.md").read_text().count("| 400 |") >= len(bench.ENGINES)
    assert (tmp_path / "out" / "search.png").stat().st_size > 0
