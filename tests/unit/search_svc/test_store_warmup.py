"""Warm-up of the Edge shard's mapped files: every file is read once, missing folders and closed stores are no
error (warm-up only saves time), and the base store (a server) reads nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from cmr.rpc.keys import study_key
from search_svc.store import EdgeStore, QdrantStore, VectorPoint
from search_svc.store.schema import ExamPayload
from search_svc.store.warmup import start_warm_up, warm_files


def _points(n: int) -> list[VectorPoint]:
    rng = np.random.default_rng(0)
    return [VectorPoint.for_exam(ExamPayload(study_key=study_key(f"2.25.{i + 1}", "s"), vendor="ge",
                                             model_version="m"), rng.standard_normal(16))
            for i in range(n)]


def _bytes_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_warm_files_reads_every_file_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.bin").write_bytes(b"1" * 3_000_000)  # more than one read chunk
    (tmp_path / "a" / "b" / "y.bin").write_bytes(b"2" * 10)
    assert warm_files(tmp_path) == 3_000_010
    assert warm_files(tmp_path / "missing") == 0


def test_edge_store_warms_its_shard(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("exams", 16)
        store.upsert("exams", _points(50))
        store.flush()
        read = store.warm_up("exams")
        assert read > 0 and read == _bytes_under(tmp_path / "exams" / "shard")
        assert len(store.search("exams", np.ones(16), 5)) == 5  # the store serves on after it


def test_background_warm_up_survives_a_closed_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection("exams", 16)
    store.close()
    with caplog.at_level(logging.INFO, logger="search_svc.store.warmup"):
        start_warm_up(store, ["exams", "exams"]).join(timeout=30)
    assert "warm-up of collection 'exams' skipped" in caplog.text
    assert "warm-up read 0 MB" in caplog.text


def test_a_server_store_has_nothing_to_warm() -> None:
    with QdrantStore.local(None) as store:
        store.ensure_collection("exams", 16)
        assert store.warm_up("exams") == 0
