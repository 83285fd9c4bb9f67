"""A backup or a generation switch on a full disk (found by `cmr bench crash`'s disk phase, bench/crash_disk.py):
a backup is refused before it copies anything when the disk cannot take it (the trial open of a copy that runs
out of space killed the whole service with SIGBUS), a backup that fails half-way (ENOSPC) removes its
`.partial` copy at once instead of holding the space until the next start, and a generation table write that
fails leaves the old table and no temporary file."""

from __future__ import annotations

import errno
from pathlib import Path

import grpc
import numpy as np
import pytest

from cmr.rpc.errors import status_of
from cmr.rpc.keys import point_id
from search_svc.admin import backup as backup_mod
from search_svc.admin import generations as generations_mod
from search_svc.admin.backup import BACKUP_SPACE_FACTOR, allocated_bytes, backup_edge, check_backup_space
from search_svc.admin.generations import TABLE_FILE, load_table
from search_svc.admin.router import IndexRouter
from search_svc.store import DiskFullError, EdgeStore, ExamPayload, VectorPoint


def _router(store: EdgeStore, index: Path) -> IndexRouter:
    router = IndexRouter(store, "secret", index / TABLE_FILE, model_version="m@1", dim=4)
    keys = ["%032x" % i for i in range(1, 6)]
    router.active().index.write_points(
        [VectorPoint(point_id(k), np.arange(4, dtype=np.float32) + i,
                     ExamPayload(study_key=k, vendor="siemens", model_version="m@1")) for i, k in enumerate(keys)], [])
    return router


class _Statvfs:
    def __init__(self, free: int) -> None:
        self.f_bavail, self.f_frsize = free, 1


def test_a_backup_the_disk_cannot_take_is_refused_before_copying(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with EdgeStore(tmp_path / "index", min_free_mb=1) as store:
        router = _router(store, tmp_path / "index")
        need = int(sum(allocated_bytes(store.root / c) for c in ("exams", "reports")) * BACKUP_SPACE_FACTOR) + 2**20
        monkeypatch.setattr(backup_mod.os, "statvfs", lambda _p: _Statvfs(need - 1))
        with pytest.raises(DiskFullError, match=f"free under {tmp_path}") as info:
            backup_edge(router, tmp_path / "backups" / "b1")
        assert status_of(info.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not (tmp_path / "backups").exists()  # nothing written, not even the folder
        monkeypatch.setattr(backup_mod.os, "statvfs", lambda _p: _Statvfs(need))
        check_backup_space([store.root / c for c in ("exams", "reports")], tmp_path / "backups" / "b1",
                           2**20)  # just enough: allowed


def test_a_backup_failing_half_way_leaves_no_partial_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_copy = backup_mod.copy_tree_sparse
    copied: list[str] = []

    def copy_then_fill(src: Path, dst: Path) -> int:
        if copied:  # the second collection finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        copied.append(src.name)
        return real_copy(src, dst)

    monkeypatch.setattr(backup_mod, "copy_tree_sparse", copy_then_fill)
    with EdgeStore(tmp_path / "index") as store:
        router = _router(store, tmp_path / "index")
        with pytest.raises(OSError) as info:
            backup_edge(router, tmp_path / "backups" / "b1")
        assert info.value.errno == errno.ENOSPC and copied
        assert list((tmp_path / "backups").iterdir()) == []  # neither b1 nor .b1.partial
        k = "%032x" % 9  # writes were resumed after the failed pause
        payload = ExamPayload(study_key=k, vendor="siemens", model_version="m@1")
        router.active().index.write_points([VectorPoint(point_id(k), np.ones(4, np.float32), payload)], [])


def test_a_table_write_on_a_full_disk_keeps_the_old_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EdgeStore(tmp_path / "index") as store:
        router = _router(store, tmp_path / "index")
        spare = router.create("m@2", 4)
        before = (tmp_path / "index" / TABLE_FILE).read_bytes()

        def fsync_on_full_disk(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(generations_mod.os, "fsync", fsync_on_full_disk)
        with pytest.raises(OSError):
            router.switch(spare.name, force=True)
        monkeypatch.undo()
        assert (tmp_path / "index" / TABLE_FILE).read_bytes() == before
        assert list((tmp_path / "index").glob(f".{TABLE_FILE}.*")) == []  # no half-written temp file left
        table = load_table(tmp_path / "index" / TABLE_FILE)
        assert table is not None and table.active == router.table.active != spare.name
