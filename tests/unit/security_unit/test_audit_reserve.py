"""The audit log's space reserve (cmr.security.audit.SpaceReserve): found by `cmr bench crash`'s disk phase,
where every RPC answered while the disk was full went unaudited. The reserve is a really allocated file beside
the log, given back when a write finds the disk full so the entry (and the next ones) are written; it is made
again once there is room. The full disk is simulated here (the real one: bench/crash_disk.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.security import audit as audit_mod
from cmr.security.audit import AuditEntry, AuditLog, read_entries, verify

RESERVE = 256 * 1024


def _entry(i: int) -> AuditEntry:
    return AuditEntry(service="", action="search", method="/m", subject=f"u{i}", roles=[], status="OK")


def test_a_full_disk_releases_the_reserve_and_entries_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "search.jsonl", "search", fsync=False, reserve_bytes=RESERVE)
    reserve = tmp_path / "search.jsonl.reserve"
    assert reserve.stat().st_blocks * 512 >= RESERVE  # allocated, not a sparse file
    log.append(_entry(0))
    real_write = audit_mod._write_all_or_nothing
    disk = {"full": True}

    def write_on_a_full_disk(fd: int, data: bytes, size: int) -> None:
        if disk["full"] and reserve.exists():  # no space but the reserve's
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data, size)

    monkeypatch.setattr(audit_mod, "RESERVE_RETRY_S", 0.0)  # (no pause between tries to make it again)
    with monkeypatch.context() as full:
        full.setattr(audit_mod, "_write_all_or_nothing", write_on_a_full_disk)
        full.setattr(audit_mod.os, "posix_fallocate", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "")))
        for i in range(1, 4):
            log.append(_entry(i))  # written into the released space
        assert not reserve.exists() and log.reserve.releases == 1
    # space is back
    log.append(_entry(4))
    assert reserve.stat().st_blocks * 512 >= RESERVE  # made again
    log.close()
    assert [e.subject for e in read_entries(tmp_path)] == [f"u{i}" for i in range(5)]
    assert all(r.ok for r in verify(tmp_path))  # the reserve file is no part of the chain


def test_without_a_reserve_a_full_disk_still_fails_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "search.jsonl", "search", fsync=False)

    def full(fd: int, data: bytes, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audit_mod, "_write_all_or_nothing", full)
    with pytest.raises(OSError):
        log.append(_entry(0))
    assert not (tmp_path / "search.jsonl.reserve").exists()
    log.close()


def test_services_keep_a_reserve_by_default(tmp_path: Path) -> None:
    log = AuditLog.from_settings(Settings(audit_dir=tmp_path), "search")
    assert (tmp_path / "search.jsonl.reserve").stat().st_blocks * 512 >= 4 * 2**20
    log.close()
