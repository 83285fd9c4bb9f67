"""`cmr bench crash`'s results file: the ingest worker and broker sections, the verdict following every part's
problems, and a run of some parts (`--parts`) keeping the other parts' previous figures, marked."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.crash import CrashBench, carry_over, markdown, run, write_results
from bench.crash_ingest import BrokerRestartResult, WorkerCrashResult, WorkerKill
from bench.crash_disk import DiskFullResult
from bench.crash_search import SearchCrashResult
from bench.crash_stack import PartKill, StackCrashResult


def _worker(problems: list[str] | None = None) -> WorkerCrashResult:
    kills = [WorkerKill(1, "ingesting", 7.5, 12), WorkerKill(2, "starting", 1.2, 30)]
    return WorkerCrashResult(studies=100, kills=kills, indexed=100, events=103, event_repeats=3, dedupe_notices=2,
                             clean_stop=True, seconds=95.0, problems=problems or [])


def _broker(lost: int = 0) -> BrokerRestartResult:
    return BrokerRestartResult(studies=200, indexed_at_kill=50, republished=141, resume_exit=0, lost=lost,
                               worker_survived=True, broker_start_s=0.3, recovery_s=80.0,
                               problems=[f"{lost} of 200 studies lost after the resume"] if lost else [])


def test_the_ingest_sections_report_the_figures_and_a_pass() -> None:
    b = CrashBench(quick=True, machine="m", search=None, seconds=10, worker=_worker(), broker=_broker())
    text = markdown(b)
    assert "## Ingest worker under SIGKILL" in text and "## Broker (embedded Tansu" in text
    assert "| event records / repeats (same event_id, de-duplicated by subscribers) | 103 / 3 |" in text
    assert "| 2 | starting | 1.2 | 30 |" in text
    assert "| re-published by `--resume` (exit status 0) | 141 |" in text
    assert b.ok and "**pass**" in text


@pytest.mark.parametrize("bench", [
    CrashBench(quick=True, machine="m", search=None, seconds=1, worker=_worker(["3 studies lost"])),
    CrashBench(quick=True, machine="m", search=None, seconds=1, broker=_broker(lost=4)),
    CrashBench(quick=True, machine="m", search=SearchCrashResult(problems=["kill 2: 1 lost"]), seconds=1,
               worker=_worker(), broker=_broker()),
])
def test_a_problem_in_any_part_fails_the_run(bench: CrashBench) -> None:
    text = markdown(bench)
    assert not bench.ok and "**FAIL**" in text
    problem = next(p for part in (bench.search, bench.worker, bench.broker) if part for p in part.problems)
    assert f"- {problem}" in text


def test_parts_not_run_keep_their_previous_figures(tmp_path: Path) -> None:
    earlier = CrashBench(quick=False, machine="earlier box", search=SearchCrashResult(acked_upserts=1082),
                         seconds=1164, worker=_worker(), broker=_broker())
    write_results(earlier, tmp_path)
    now = CrashBench(quick=False, machine="now", search=None, seconds=300, worker=_worker(), broker=_broker(lost=0))
    now.worker.studies = 280
    carry_over(now, tmp_path / "crash.json")
    assert now.search is not None and now.search.acked_upserts == 1082
    assert now.worker.studies == 280  # what ran now is not replaced
    assert now.notes == ["search service: from an earlier run (1164 s in all, on earlier box), not re-run this time"]
    write_results(now, tmp_path)
    data = json.loads((tmp_path / "crash.json").read_text())
    assert data["search"]["acked_upserts"] == 1082 and data["worker"]["studies"] == 280
    assert "Note: search service: from an earlier run" in (tmp_path / "crash.md").read_text()
    assert asdict(now)["notes"] == data["notes"]


def test_unknown_parts_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown crash bench parts \\['power'\\]"):
        run(quick=True, parts=("search", "power"))


def _disk(problems: list[str] | None = None) -> DiskFullResult:
    return DiskFullResult(fs_mb=832, min_free_mb=48, acked_before=40, refused=105,
                          refused_codes=["RESOURCE_EXHAUSTED"], refusals_naming_disk=105, searches_full=110, alive_throughout=True, acked_after=20,
                          backup_full="RESOURCE_EXHAUSTED: the backup disk is full", audit_refusals_recorded=105,
                          audit_reserve_released=1, problems=problems or [])


def test_the_disk_section_reports_the_figures_and_its_problems_fail_the_run() -> None:
    text = markdown(CrashBench(quick=False, machine="m", search=None, seconds=1, disk=_disk()))
    assert "## Full disk under the running search service" in text and "on a 832 MB tmpfs" in text
    assert "| writes on the full disk: refused (RESOURCE_EXHAUSTED) / naming the folder / answered OK | " \
           "105 / 105 / **0** |" in text
    assert "| refused writes with their audit entry (status RESOURCE_EXHAUSTED) | 105 of 105 |" in text
    assert "**pass**" in text
    bad = CrashBench(quick=False, machine="m", search=None, seconds=1, disk=_disk(["the service died"]))
    assert not bad.ok and "- the service died" in markdown(bad)


def test_a_part_carried_twice_keeps_the_note_of_the_run_that_measured_it(tmp_path: Path) -> None:
    first = CrashBench(quick=False, machine="first box", search=SearchCrashResult(acked_upserts=1082), seconds=1164,
                       worker=_worker(), broker=_broker())
    write_results(first, tmp_path)
    second = CrashBench(quick=False, machine="second box", search=None, seconds=60, disk=_disk())
    carry_over(second, tmp_path / "crash.json")
    write_results(second, tmp_path)
    third = CrashBench(quick=False, machine="third box", search=None, seconds=70, disk=_disk())
    carry_over(third, tmp_path / "crash.json")
    assert "search service: from an earlier run (1164 s in all, on first box), not re-run this time" in third.notes
    assert third.disk is not None and third.disk.refused == 105  # this run's own, not carried
    fourth = CrashBench(quick=False, machine="fourth box", search=None, seconds=5, worker=_worker())
    carry_over(fourth, tmp_path / "crash.json")
    assert fourth.disk is not None and any(n.startswith("full disk: from an earlier run") for n in fourth.notes)


def _stack(problems: list[str] | None = None) -> StackCrashResult:
    kills = [PartKill("broker", 11, 12, True, 3.5, "STARTING SERVING", 10, 0, 0.3),
             PartKill("encoder", 21, 22, True, 44.2, "STARTING DOWN", 91, 0, 0.1)]
    return StackCrashResult(demo=8, ingested=4, kills=kills, start_s=58, held=12, exams=12, resume_republished=2,
                            seeder_republished=1, settle_s=245, searches=694, search_failures=10, clean_stop=True,
                            seconds=465, problems=problems or [])


def test_the_stack_section_reports_each_kill_and_a_failure_fails_the_run(tmp_path: Path) -> None:
    b = CrashBench(quick=False, machine="m", search=None, seconds=1, stack=_stack())
    text = markdown(b)
    assert "## `cmr up`: every part SIGKILLed once" in text and "every part of `cmr up` killed once" in text
    assert "| encoder | yes | 44.2 | STARTING DOWN | 0 / 91 | 0.1 | 0 |" in text
    assert "| studies of the run in the index / seeded | 12 / 12 (index count 12) |" in text
    assert b.ok and "Verdict (`cmr up`): **pass**" in text
    bad = CrashBench(quick=False, machine="m", search=None, seconds=1, stack=_stack(["ui took 70 s to come back"]))
    assert not bad.ok and "- ui took 70 s to come back" in markdown(bad)
    write_results(b, tmp_path)  # a later run of other parts keeps the stack's figures
    later = CrashBench(quick=False, machine="now", search=None, seconds=1)
    carry_over(later, tmp_path / "crash.json")
    assert later.stack is not None and later.stack.kills[1].back_s == 44.2
    assert any(n.startswith("`cmr up`: from an earlier run") for n in later.notes)
