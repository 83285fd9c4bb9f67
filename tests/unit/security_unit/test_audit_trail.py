"""The audit log: entries chain by hash, any edit/removal/reorder is found, processes share one chain."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typer.testing import CliRunner

from cmr.security.audit import AuditEntry, AuditLog, query, verify
from orchestration.cli.main import app


def _entry(subject: str, action: str, results: int = 1) -> AuditEntry:
    return AuditEntry(service="", action=action, method=f"/cmr.v1.SearchService/{action}", subject=subject,
                      roles=["clinician"], status="OK", results=results, what={"query": "dilated LV"})


def _fill(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path / "search.jsonl", "search")
    for i in range(n):
        log.append(_entry(f"user-{i % 2}", "search" if i % 2 else "cohort", i))
    return log


def test_chain_verifies_and_query_filters(tmp_path: Path) -> None:
    _fill(tmp_path).close()
    assert [r.ok for r in verify(tmp_path)] == [True]
    found = query(tmp_path, subject="user-1")
    assert [e.results for e in found] == [1, 3] and all(e.service == "search" for e in found)
    assert [e.action for e in query(tmp_path, action="cohort")] == ["cohort"] * 3
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert query(tmp_path, since=future) == []


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    _fill(tmp_path, 2).close()
    _fill(tmp_path, 2).close()
    assert verify(tmp_path)[0].ok and verify(tmp_path)[0].entries == 4


def _tamper(path: Path, how: str) -> None:
    lines = path.read_text().splitlines()
    if how == "edit":
        data = json.loads(lines[2])
        data["subject"] = "someone-else"
        lines[2] = json.dumps(data)
    elif how == "remove":
        del lines[1]
    elif how == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")


def test_tampering_is_found(tmp_path: Path) -> None:
    for how in ("edit", "remove", "reorder"):
        folder = tmp_path / how
        _fill(folder).close()
        _tamper(folder / "search.jsonl", how)
        report = verify(folder)[0]
        assert not report.ok and "line" in report.problem, how


def _append_many(folder: str, worker: int) -> None:
    log = AuditLog(Path(folder) / "search.jsonl", "search")
    for i in range(50):
        log.append(_entry(f"w{worker}", "search", i))
    log.close()


def test_processes_appending_to_one_file_keep_one_chain(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    report = verify(tmp_path)[0]
    assert report.ok and report.entries == 150


def test_cli_query_and_verify(tmp_path: Path) -> None:
    _fill(tmp_path).close()
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "query", "--dir", str(tmp_path), "--subject", "user-0", "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {r["subject"] for r in rows} == {"user-0"} and len(rows) == 3
    assert runner.invoke(app, ["audit", "verify", "--dir", str(tmp_path)]).exit_code == 0
    _tamper(tmp_path / "search.jsonl", "edit")
    bad = runner.invoke(app, ["audit", "verify", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and "BROKEN" in bad.output
    assert runner.invoke(app, ["audit", "query", "--dir", str(tmp_path), "--since", "yesterday"]).exit_code == 2
