"""The search service fsyncs the embedded index's write-ahead log on a timer (a bound on what a power cut can
take) without the engine's GIL-holding flush, and a failing sync (a full disk) neither stops the timer nor the
service."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_svc.flusher import PeriodicSync
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

    def sync_if_written(self) -> bool:
        self.calls += 1
        if self.calls >= 3:
            self.reached.set()
        if self.calls <= self.fail_first:
            raise OSError(28, "No space left on device")
        return True


def test_syncs_repeatedly_until_stopped() -> None:
    store = _Store()
    flusher = PeriodicSync(store, 0.01)  # type: ignore[arg-type]
    flusher.start()
    assert store.reached.wait(10)
    flusher.stop()
    calls = store.calls
    assert not flusher.is_alive() and flusher.syncs == calls
    assert store.calls == calls  # nothing after stop()


def test_a_failing_sync_is_retried(caplog: Any) -> None:
    store = _Store(fail_first=2)
    flusher = PeriodicSync(store, 0.01)  # type: ignore[arg-type]
    flusher.start()
    assert store.reached.wait(10)
    flusher.stop()
    assert flusher.syncs == store.calls - 2
    assert "index log sync failed" in caplog.text


def test_edge_store_syncs_the_log_only_after_writes_and_without_the_engine_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    with EdgeStore(tmp_path) as store:
        store.ensure_collection("exams", 4)
        assert not store.sync_if_written()  # creating a collection is not a write to sync
        store.upsert("exams", _points())
        coll = store._collections["exams"]
        flushes: list[int] = []
        monkeypatch.setattr(coll, "shard", _CountingShard(coll.shard, flushes))
        monkeypatch.setattr(os, "fsync", fsync)
        assert store.sync_if_written() and not store.sync_if_written()
        wal = tmp_path / "exams" / coll.shard_dir / "wal"
        logs = sorted(str(p) for p in wal.iterdir() if p.is_file())
        assert logs and set(synced) == {*logs, str(wal)}  # every log file and the folder (renamed segments)
        assert flushes == []  # not the engine's flush: that one holds the GIL
        synced.clear()
        store.delete("exams", [point_id(KEYS[0])])
        assert store.sync_if_written() and synced
        assert flushes == []
    with EdgeStore(tmp_path) as again:  # what was synced is there after a reopen
        assert again.count("exams") == len(KEYS) - 1


class _CountingShard:
    def __init__(self, shard: Any, flushes: list[int]) -> None:
        self._shard, self._flushes = shard, flushes

    def flush(self) -> None:
        self._flushes.append(1)
        self._shard.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0"):
        PeriodicSync(_Store(), 0)  # type: ignore[arg-type]


def test_a_shard_swapped_in_by_a_background_build_is_synced_at_the_next_tick(tmp_path: Path) -> None:
    from search_svc.store.live_index import build_in_child

    with EdgeStore(tmp_path) as store:
        store.ensure_collection("exams", 4)
        store.upsert("exams", _points())
        assert store.sync_if_written() and not store.sync_if_written()
        copy = store.begin_build("exams")
        build_in_child(copy, nice=0)
        store.finish_build("exams", copy)
        # the writes replayed onto the copy live in its own log, which no sync has covered yet
        assert store.sync_if_written() and not store.sync_if_written()
