"""bench/index_sync.py: a phase probes searches while it upserts and makes the index durable its way (the
engine flush or the log sync, never both), and the report shows every phase."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.index_sync as bench


class _Client:
    def __init__(self) -> None:
        self.searches = 0
        self.upserts: list[Any] = []

    def search_text(self, query: str, top_k: int) -> list[Any]:
        self.searches += 1
        return []

    def upsert(self, exams: list[Any]) -> None:
        self.upserts += exams


class _Store:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def flush(self) -> None:
        self.calls.append("flush")

    def sync_wal(self) -> int:
        self.calls.append("sync")
        return 1


@pytest.mark.parametrize("mode", bench.MODES)
def test_a_phase_probes_upserts_and_makes_durable_its_way(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "UPSERT_EVERY_S", 0.1)
    monkeypatch.setattr(bench, "DURABLE_EVERY_S", 0.2)
    monkeypatch.setattr(bench, "_hogs", lambda n: [])
    monkeypatch.setattr(bench, "HOGS_SETTLE_S", 0.0)
    monkeypatch.setattr(bench, "_upsert", lambda i, version, rng: i)
    client, store, next_id = _Client(), _Store(), [100]
    phase = bench.run_phase(client, store, mode, 0, 0.7, "m@1", next_id, np.random.default_rng(0))
    assert phase.mode == mode and phase.requests == client.searches > 5
    assert client.upserts[:2] == [100, 101] and next_id[0] == 100 + len(client.upserts) >= 103
    expected = {"none": set(), "flush": {"flush"}, "sync": {"sync"}}[mode]
    assert set(store.calls) == expected and len(phase.durable_ms) == len(store.calls)
    assert (len(store.calls) >= 2) == (mode != "none")


def test_the_report_has_a_row_per_phase(tmp_path: Path) -> None:
    phases = [bench.Phase(m, h, 100, 5.0, 9.0, 1400.0 if m == "flush" and h else 12.0,
                          [(8.2, 1400.0)] if m == "flush" and h else [], [] if m == "none" else [900.0])
              for h in (0, 2) for m in bench.MODES]
    md = bench.write(phases, 20000, 40, 2, [0.5, 0.4, 0.3], tmp_path).read_text()
    rows = [r for r in md.splitlines() if r.startswith(("| none", "| flush", "| sync"))]
    assert len(rows) == 6 and rows[4] == "| flush | 2 | 100 | 5.0 | 9.0 | 1400 | 1 | 900 |"
    data = json.loads((tmp_path / "index_sync.json").read_text())
    assert [p["mode"] for p in data["phases"]] == list(bench.MODES) * 2 and data["points"] == 20000
