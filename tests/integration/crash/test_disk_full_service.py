"""The running search service (TLS, tokens, audit on) with its whole data folder (index, generation table,
backups, audit log) on a small tmpfs filled to the last byte: writes answer RESOURCE_EXHAUSTED naming the
folder, reads keep answering, a backup fails cleanly, the generation table stays as it was, the process stays
alive; once the ballast goes, writes, backups and switches work again; after a restart every acknowledged
write is there and the audit chain verifies. The core of `cmr bench crash --parts disk` (bench/crash_disk.py).
Skipped where this process may not mount a filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_disk import REFUSED_CODES, DiskFullRun, MountRefused

pytestmark = pytest.mark.slow


def test_full_disk_under_the_running_service(tmp_path: Path) -> None:
    try:
        r = DiskFullRun(tmp_path / "work", seed=3).run()
    except MountRefused as exc:
        pytest.skip(str(exc))
    assert r.problems == []
    # the disk really was full, and the run exercised every path it claims to
    assert r.ballast_mb > 0 and r.acked_before > 0 and r.refused >= 8
    assert set(r.refused_codes) <= REFUSED_CODES and r.refusals_naming_disk == r.refused
    assert "/data/index" in r.refusal_example
    assert r.searches_full > 0 and r.search_errors_full == 0 and r.alive_throughout
    assert r.backup_full.startswith("RESOURCE_EXHAUSTED") and "disk is full" in r.backup_full
    assert r.backup_leftovers == [] and r.table_ok_full  # a switch fails, or succeeds whole (a page can be free)
    # space back: writes work again; nothing acknowledged is lost or duplicated, the audit chain holds
    assert r.acked_after > 0 and r.backup_after_ok
    assert r.lost == r.duplicated == r.wrong == 0 and r.stored > 0
    assert r.table_ok and r.audit_ok and r.audit_missing == 0 and r.restarted
    # the audit log kept writing on the full disk (its reserve): every refused write is recorded, none lost
    assert r.audit_entries_lost_full == 0 and r.audit_refusals_recorded >= r.refused and r.audit_reserve_released
