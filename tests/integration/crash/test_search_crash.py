"""`cmr bench crash --quick`'s core: the search service (a real `cmr serve search` process, TLS + tokens +
audit on) SIGKILLed while Upserts, Deletes, backups and generation switches stream; after each kill
every acknowledged write is in the store as promised, nothing is duplicated, search equals exact search, the
generation table and the last backup are sound, the audit chain verifies with an entry per acknowledged write,
and every restart succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import CrashBench, markdown, run_search_kills

pytestmark = pytest.mark.slow

KILLS = 3  # each kill is a restart of the secured service (~10-30 s on 2 cores); the benchmark does 5 or 20


def test_sigkills_lose_nothing_acknowledged(tmp_path: Path) -> None:
    result = run_search_kills(KILLS, tmp_path / "work", seed=5, progress=False, serve_s=(0.3, 1.5))
    assert result.problems == []
    assert len(result.kills) == KILLS and all(k.restarted for k in result.kills)
    assert result.lost == result.duplicated == result.failed_restarts == 0
    # the run exercised what it claims to: writes of both kinds acknowledged, studies stored at every check
    assert result.acked_upserts > 0 and result.acked_deletes > 0 and result.backups >= 1
    assert all(k.stored > 0 and k.table_ok and k.backup_ok and k.audit_ok for k in result.kills)
    report = markdown(CrashBench(quick=True, machine="test", search=result, seconds=0.0))
    assert "**pass**" in report and f"| {KILLS} |" in report
