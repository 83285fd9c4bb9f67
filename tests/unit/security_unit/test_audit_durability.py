"""The audit log under crashes and full disks: an entry is on disk before append() returns (group commit) or, with a
sync delay, within that delay (append does not wait); a torn last entry does not break the chain, a failed write
leaves the file as it was, and entries appended before a SIGKILL are all there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cmr.security import audit as audit_mod
from cmr.security.audit import AuditEntry, AuditLog, read_entries, verify


def _entry(i: int) -> AuditEntry:
    return AuditEntry(service="", action="upsert", method="/cmr.v1.SearchService/Upsert", subject=f"s{i}",
                      roles=["ingest"], status="OK", results=i)


def test_each_entry_is_synced_before_append_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "search.jsonl"
    synced_sizes: list[int] = []
    real = os.fdatasync

    def slow_sync(fd: int) -> None:
        time.sleep(0.02)  # a slow disk: appends from other threads pile up behind this one
        synced_sizes.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(audit_mod.os, "fdatasync", slow_sync)
    log = AuditLog(path, "search", fsync=True)
    late: list[str] = []

    def append(i: int) -> None:
        log.append(_entry(i))
        # when append returns, a sync that started after this entry was written has finished
        size_now = path.read_text().find(f'"subject":"s{i}"')
        if not any(s > size_now for s in synced_sizes):
            late.append(f"s{i}")

    threads = [threading.Thread(target=append, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert late == []
    assert len(list(read_entries(tmp_path))) == 24
    assert 1 <= len(synced_sizes) < 24  # grouped: far fewer syncs than entries


def test_fsync_off_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(audit_mod.os, "fdatasync", calls.append)
    log = AuditLog(tmp_path / "search.jsonl", "search", fsync=False)
    log.append(_entry(1))
    log.close()
    assert calls == []


def test_torn_last_entry_is_noted_then_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "search.jsonl"
    log = AuditLog(path, "search")
    for i in range(3):
        log.append(_entry(i))
    log.close()
    with path.open("a") as f:
        f.write('{"service":"search","action":"ups')  # the process died in the middle of an entry
    report = verify(tmp_path)[0]
    assert report.ok and report.entries == 3 and "torn" in report.note
    assert len(list(read_entries(tmp_path))) == 3

    log = AuditLog(path, "search")
    log.append(_entry(3))
    log.close()
    report = verify(tmp_path)[0]
    assert report.ok and report.entries == 4 and not report.note
    assert '"action":"ups' in (tmp_path / "search.jsonl.torn").read_text()


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "search.jsonl"
    log = AuditLog(path, "search")
    log.append(_entry(0))
    before = path.read_bytes()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        return real_write(fd, data[:10])  # the disk filled up in the middle of the entry

    monkeypatch.setattr(audit_mod.os, "write", disk_full)
    with pytest.raises(OSError, match="disk full"):
        log.append(_entry(1))
    assert path.read_bytes() == before
    monkeypatch.setattr(audit_mod.os, "write", real_write)
    log.append(_entry(2))  # space is back: the chain goes on
    log.close()
    report = verify(tmp_path)[0]
    assert report.ok and report.entries == 2


class _SyncSpy:
    """os.fdatasync stand-in: records the file size each sync covered, then syncs."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.sizes.append(os.fstat(fd).st_size)
        self._real(fd)


def test_with_a_sync_delay_appends_do_not_wait_and_one_sync_covers_them(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _SyncSpy()
    monkeypatch.setattr(audit_mod.os, "fdatasync", spy)
    path = tmp_path / "search.jsonl"
    log = AuditLog(path, "search", fsync=True, sync_delay_s=0.3)
    for i in range(20):
        log.append(_entry(i))
    assert spy.sizes == [] and log.unsynced == 20  # answered before any sync: the entries are in the file
    assert len(list(read_entries(tmp_path))) == 20
    deadline = time.monotonic() + 10
    while log.unsynced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.unsynced == 0 and spy.sizes == [path.stat().st_size]  # one sync, after the delay, covering all
    log.append(_entry(20))  # the next append starts the next delayed sync
    while log.unsynced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(spy.sizes) == 2 and spy.sizes[-1] == path.stat().st_size
    log.close()
    assert verify(tmp_path)[0].entries == 21


def test_close_syncs_what_the_delayed_sync_has_not_reached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _SyncSpy()
    monkeypatch.setattr(audit_mod.os, "fdatasync", spy)
    path = tmp_path / "search.jsonl"
    log = AuditLog(path, "search", fsync=True, sync_delay_s=60.0)
    log.append(_entry(0))
    t0 = time.monotonic()
    log.close()
    assert time.monotonic() - t0 < 10  # close does not sit out the delay
    assert spy.sizes == [path.stat().st_size]


def test_the_sync_delay_comes_from_the_settings(tmp_path: Path) -> None:
    from cmr.config import Settings

    log = AuditLog.from_settings(Settings(audit_dir=tmp_path, audit_sync_delay_ms=50, audit_reserve_mb=0), "search")
    try:
        assert log.sync_delay_s == pytest.approx(0.05)
    finally:
        log.close()
    off = AuditLog.from_settings(Settings(audit_dir=tmp_path, audit_fsync=False, audit_sync_delay_ms=50,
                                          audit_reserve_mb=0), "search")
    off.close()
    assert off.sync_delay_s == 0.0  # fsync off: nothing to delay


_APPENDER = """
import sys
from pathlib import Path
from cmr.security.audit import AuditEntry, AuditLog
log = AuditLog(Path(sys.argv[1]), "search", sync_delay_s=float(sys.argv[2]))
for i in range(100000):
    log.append(AuditEntry(service="", action="upsert", method="m", subject=f"s{i}", roles=[], status="OK"))
    print(i, flush=True)
"""


@pytest.mark.parametrize("sync_delay_s", [0.0, 0.05], ids=["sync-each", "sync-delayed"])
def test_entries_appended_before_a_sigkill_survive(tmp_path: Path, sync_delay_s: float) -> None:
    """A killed process loses no answered entry in either mode: a delayed sync only matters for a power cut."""
    path = tmp_path / "search.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), str(sync_delay_s)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    acked = -1
    deadline = time.monotonic() + 30
    while acked < 200 and time.monotonic() < deadline:
        acked = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = verify(tmp_path)[0]
    assert report.ok, report.problem
    assert report.entries >= acked + 1  # every entry whose append returned is there
