"""Backups under crashes: one killed half-way leaves `.<name>.partial` (a copy of the index), which the admin
service removes as it starts, keeping finished backups (found by the crash harness, bench/crash_search.py);
and a backup is fsynced, every file and folder, before it is answered (a power cut cannot take it back)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cmr.config import Settings
from cmr.rpc.keys import point_id
from search_svc.admin import backup as backup_mod
from search_svc.admin.backup import backup_edge
from search_svc.admin.router import IndexRouter
from search_svc.admin.service import IndexAdminServicer, backup_root
from search_svc.store import EdgeStore, ExamPayload, VectorPoint


def test_half_written_backups_are_removed_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    root = backup_root(settings)
    (root / ".b007.partial" / "exams").mkdir(parents=True)
    (root / ".b007.partial" / "exams" / "segment.bin").write_bytes(b"x" * 1024)
    (root / "b006").mkdir()
    (root / "b006" / "manifest.json").write_text("{}")
    with EdgeStore(tmp_path / "index") as store:
        router = IndexRouter(store, "secret", tmp_path / "index" / "generations.json",
                             model_version="m@1", dim=4)
        IndexAdminServicer(router, settings)
    assert not (root / ".b007.partial").exists()
    assert (root / "b006" / "manifest.json").is_file()


def test_a_backup_is_on_disk_before_it_is_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    with EdgeStore(tmp_path / "index") as store:
        router = IndexRouter(store, "secret", tmp_path / "index" / "generations.json", model_version="m@1", dim=4)
        keys = ["%032x" % i for i in range(1, 6)]
        router.active().index.write_points(
            [VectorPoint(point_id(k), np.arange(4, dtype=np.float32) + i, ExamPayload(study_key=k, vendor="siemens",
                                                                                     model_version="m@1"))
             for i, k in enumerate(keys)], [])
        monkeypatch.setattr(backup_mod.os, "fsync", recording_fsync)
        backup_edge(router, tmp_path / "backups" / "b1")
    dest = tmp_path / "backups" / "b1"
    written = {str(p) for p in dest.rglob("*")} | {str(dest), str(dest.parent)}
    assert written <= set(synced)  # every file and folder of the finished backup, and the folder naming it
