"""The search service flushes the embedded index on a timer (a bound on what a power cut can take), and a
failing flush (a full disk) neither stops the timer nor the service."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_svc.flusher import PeriodicFlush
from cmr.rpc.keys import point_id
from search_svc.store import EdgeStore, ExamPayload, VectorPoint

KEYS = ["%032x" % i for i in range(1, 4)]


def _points() -> list[VectorPoint]:
    return [VectorPoint(point_id(k), np.full(4, i + 1.0, np.float32) + np.arange(4, dtype=np.float32),
                        ExamPayload(study_key=k, vendor="siemens", model_version="m@1")) for i, k in enumerate(KEYS)]


class _Store:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.reached = threading.Event()

    def flush_if_written(self) -> bool:
        self.calls += 1
        if self.calls >= 3:
            self.reached.set()
        if self.calls <= self.fail_first:
            raise OSError(28, "No space left on device")
        return True


def test_flushes_repeatedly_until_stopped() -> None:
    store = _Store()
    flusher = PeriodicFlush(store, 0.01)  # type: ignore[arg-type]
    flusher.start()
    assert store.reached.wait(10)
    flusher.stop()
    calls = store.calls
    assert not flusher.is_alive() and flusher.flushes == calls
    assert store.calls == calls  # nothing after stop()


def test_a_failing_flush_is_retried(caplog: Any) -> None:
    store = _Store(fail_first=2)
    flusher = PeriodicFlush(store, 0.01)  # type: ignore[arg-type]
    flusher.start()
    assert store.reached.wait(10)
    flusher.stop()
    assert flusher.flushes == store.calls - 2
    assert "index flush failed" in caplog.text


def test_edge_store_flushes_only_after_writes(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("exams", 4)
        assert not store.flush_if_written()  # creating a collection is not a write to flush
        store.upsert("exams", _points())
        assert store.flush_if_written() and not store.flush_if_written()
        store.delete("exams", [point_id(KEYS[0])])
        assert store.flush_if_written()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0"):
        PeriodicFlush(_Store(), 0)  # type: ignore[arg-type]
