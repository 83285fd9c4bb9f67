"""A nearly full index disk: the embedded store refuses writes with DiskFullError (an ENOSPC OSError naming the
folder, which the services answer as RESOURCE_EXHAUSTED) instead of letting the engine die of SIGBUS; reads go
on, and writes resume once space is back. (The real full filesystem: tests/integration/crash/test_disk_full.py.)"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from cmr.rpc.errors import status_of
from cmr.rpc.keys import point_id
from search_svc.store import DiskFullError, EdgeStore, ExamPayload, VectorPoint


def _points(start: int, n: int) -> list[VectorPoint]:
    rng = np.random.default_rng(start)
    return [VectorPoint(point_id("%032x" % i), rng.normal(size=8).astype(np.float32),
                        ExamPayload(study_key="%032x" % i, vendor="siemens", model_version="m@1"))
            for i in range(start, start + n)]


def test_writes_are_refused_while_space_is_short_and_resume_after(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    free = {"bytes": 10 * 2**30}
    with EdgeStore(tmp_path, min_free_mb=64) as store:
        monkeypatch.setattr(store, "free_bytes", lambda: free["bytes"])
        store.ensure_collection("exams", 8)
        store.upsert("exams", _points(1, 5))
        free["bytes"] = 10 * 2**20  # the disk filled up (something else wrote to it)
        with pytest.raises(DiskFullError, match=f"10 MB free under {tmp_path}") as info:
            store.upsert("exams", _points(6, 2))
        with pytest.raises(DiskFullError):
            store.delete("exams", [point_id("%032x" % 1)])
        with pytest.raises(DiskFullError):
            store.ensure_collection("reports", 8)
        assert store.count("exams") == 5  # nothing half-written, reads go on
        assert len(store.search("exams", np.ones(8, np.float32), 3)) == 3
        assert status_of(info.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        free["bytes"] = 10 * 2**30  # space is back
        store.upsert("exams", _points(6, 2))
        assert store.count("exams") == 7


def test_no_threshold_means_no_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EdgeStore(tmp_path) as store:
        monkeypatch.setattr(store, "free_bytes", lambda: 0)
        store.ensure_collection("exams", 8)
        assert store.upsert("exams", _points(1, 2)) == 2
