"""`cmr bench crash`: SIGKILL the stateful parts at random moments and check that nothing acknowledged is lost.

The search service part is bench/crash_search.py (Upserts, Deletes, backups and generation switches streaming
while the process is killed; the store, the generation table, the last backup and the audit log checked after
every kill). The ingestion parts are bench/crash_ingest.py (the ingest worker SIGKILLed during a long
ingestion; the broker SIGKILLed and restarted mid-ingestion, then `cmr ingest --resume`), run against the
processes of bench/crash_ingest_rig.py. The disk phase is bench/crash_disk.py (the running search service on a
small filesystem filled to the last byte; skipped where mounting is not allowed). The whole `cmr up` stack with
each part SIGKILLed in turn is bench/crash_stack.py. Results:
docs/benchmarks/crash.md and crash.json (crash_quick.* for --quick).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.crash_disk import DiskFullResult
from bench.crash_ingest import BrokerRestartResult, WorkerCrashResult, WorkerKill
from bench.crash_search import KillRecord, SearchCrashResult, SearchCrashRun
from bench.crash_stack import PartKill, StackCrashResult
from bench.encoder import machine_description

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "benchmarks"
QUICK_KILLS, FULL_KILLS = 5, 20
SERVE_S = (2.0, 6.0)  # writes stream this long (uniform) before a kill: long enough for some backups to finish
PARTS = ("search", "ingest", "disk", "stack")


def worker_studies(kills: int) -> int:
    """Studies to publish for `kills` worker kills: each kill cycle indexes a handful (start-up, the first study,
    then up to 2.5 s more), and some must be left for the end."""
    return 40 + 12 * kills


def broker_studies(quick: bool) -> int:
    return 40 if quick else 200


def stack_studies(quick: bool) -> tuple[int, int]:
    """(seeded by `cmr up`, published with `cmr ingest --journal`): enough that indexing (10-40 s a study on
    2 cores) runs through every kill."""
    return (4, 2) if quick else (8, 4)


@dataclass
class CrashBench:
    quick: bool
    machine: str
    search: SearchCrashResult | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    worker: WorkerCrashResult | None = None
    broker: BrokerRestartResult | None = None
    disk: DiskFullResult | None = None
    stack: StackCrashResult | None = None

    @property
    def ok(self) -> bool:
        return all(part.ok for part in (self.search, self.worker, self.broker, self.disk, self.stack)
                   if part is not None)


def run_search_kills(kills: int, work: Path, seed: int = 20, progress: bool = True,
                     serve_s: tuple[float, float] = SERVE_S) -> SearchCrashResult:
    """The search-service part alone (the test calls this with 5 kills and a shorter serve_s: the seconds
    writes stream before a kill)."""
    from rich.console import Console

    console = Console(stderr=True)

    def show(r: KillRecord) -> None:
        if progress:
            console.print(f"kill {r.n}/{kills} ({r.phase}, {r.after_s:.1f} s after start): {r.stored} stored, "
                          f"{r.in_flight} in flight ({r.kept_in_flight} kept), problems: {r.problems}, "
                          f"restart {r.restart_s:.1f} s")

    return SearchCrashRun(work, seed=seed, serve_s=serve_s).run(kills, progress=show)


def run_ingest_parts(kills: int, broker_n: int, work: Path, seed: int = 20,
                     progress: bool = True) -> tuple[WorkerCrashResult, BrokerRestartResult]:
    """The worker kills, then the broker restart, against one set of services (bench/crash_ingest_rig.py)."""
    from rich.console import Console

    from bench.crash_ingest import kill_worker_during_ingestion, restart_broker_during_ingestion
    from bench.crash_ingest_rig import IngestRig
    from cmr.rpc.keys import study_key
    from ingest_svc.producer import ExamPublisher, Report

    console = Console(stderr=True)

    def show(k: WorkerKill) -> None:
        if progress:
            console.print(f"worker kill {k.n}/{kills} ({k.phase}, {k.after_s:.1f} s after its start): "
                          f"{k.indexed} studies indexed")

    with IngestRig(work) as rig:
        n = worker_studies(kills)
        studies = rig.studies(n, start=0)
        s = rig.settings("w")
        with ExamPublisher(s) as pub:
            for v in studies:
                pub.publish_path(v.path, report=Report(v.impression, v.labels))
        if progress:
            console.print(f"ingest worker: {n} studies published, {kills} SIGKILLs to come")
        worker = kill_worker_during_ingestion(rig.worker("w"), rig.client, s,
                                              [study_key(v.uid, s.study_key_secret) for v in studies], kills,
                                              seed=seed, progress=show)
        if progress:
            console.print(f"ingest worker: lost {worker.lost}, duplicated {worker.duplicated}, problems "
                          f"{worker.problems}; broker restart during {broker_n} studies...")
        broker = restart_broker_during_ingestion(
            rig.broker, rig.worker("b"), rig.client, rig.settings("b"), rig.studies(broker_n, start=n),
            work / "journal.jsonl", rig.env("b"), kill_at=broker_n // 4)
        if progress:
            console.print(f"broker restart: lost {broker.lost}, worker survived {broker.worker_survived}, "
                          f"problems {broker.problems}")
    return worker, broker


def run_disk_full(work: Path, notes: list[str], seed: int = 20, progress: bool = True) -> DiskFullResult | None:
    """The disk phase; None (and a note) where this process may not mount the small filesystem."""
    from rich.console import Console

    from bench.crash_disk import DiskFullRun, MountRefused

    console = Console(stderr=True)
    try:
        return DiskFullRun(work, seed=seed).run(progress=lambda m: console.print(f"disk: {m}") if progress else None)
    except MountRefused as exc:
        notes.append(f"disk phase skipped: {exc}")
        return None


def run(quick: bool = False, out_dir: Path | None = None, seed: int = 20,
        parts: tuple[str, ...] = PARTS) -> CrashBench:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown crash bench parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    kills = QUICK_KILLS if quick else FULL_KILLS
    t0 = time.perf_counter()
    load_start = [round(x, 1) for x in os.getloadavg()]
    search = worker = broker = disk = stack = None
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cmr-crash-") as tmp:
        for part in parts:
            (Path(tmp) / part).mkdir()
        if "search" in parts:
            search = run_search_kills(kills, Path(tmp) / "search", seed=seed)
        if "ingest" in parts:
            worker, broker = run_ingest_parts(kills, broker_studies(quick), Path(tmp) / "ingest", seed=seed)
        if "disk" in parts:
            disk = run_disk_full(Path(tmp) / "disk", notes, seed=seed)
        if "stack" in parts:
            from bench.crash_stack import run_stack_kills

            demo, ingested = stack_studies(quick)
            stack = run_stack_kills(Path(tmp) / "stack", demo=demo, ingested=ingested)
    load = [round(x, 1) for x in os.getloadavg()]
    machine = (f"{machine_description()}; load average at the start {load_start}, at the end {load} (the machine "
               "is shared with other jobs)")
    bench = CrashBench(quick=quick, machine=machine, search=search, seconds=round(time.perf_counter() - t0, 1),
                       worker=worker, broker=broker, disk=disk, stack=stack, notes=notes)
    carry_over(bench, (out_dir or DEFAULT_OUT) / f"{'crash_quick' if quick else 'crash'}.json")
    write_results(bench, out_dir or DEFAULT_OUT)
    return bench


def carry_over(bench: CrashBench, previous: Path) -> None:
    """Parts this run skipped (`--parts`) keep the figures of the previous run in the results file, marked as
    such, so that running one part never erases another's."""
    if not previous.is_file():
        return
    old = json.loads(previous.read_text())
    when = f"from an earlier run ({old.get('seconds', 0):.0f} s in all, on {old.get('machine', '?')})"
    # a part the previous run had itself carried over keeps the note naming the run that measured it
    carried = {n.split(":")[0]: n for n in old.get("notes", [])}

    def note(part: str) -> None:
        bench.notes.append(carried.get(part, f"{part}: {when}, not re-run this time"))
    if bench.search is None and old.get("search"):
        d = old["search"]
        bench.search = SearchCrashResult(**{**d, "kills": [KillRecord(**k) for k in d["kills"]]})
        note("search service")
    if bench.worker is None and old.get("worker"):
        d = old["worker"]
        bench.worker = WorkerCrashResult(**{**d, "kills": [WorkerKill(**k) for k in d["kills"]]})
        note("ingest worker")
    if bench.broker is None and old.get("broker"):
        bench.broker = BrokerRestartResult(**old["broker"])
        note("broker restart")
    if bench.disk is None and old.get("disk"):
        bench.disk = DiskFullResult(**old["disk"])
        note("full disk")
    if bench.stack is None and old.get("stack"):
        d = old["stack"]
        bench.stack = StackCrashResult(**{**d, "kills": [PartKill(**k) for k in d["kills"]]})
        note("`cmr up`")


def write_results(bench: CrashBench, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = asdict(bench) | {"ok": bench.ok}
    stem = "crash_quick" if bench.quick else "crash"  # a quick run never overwrites the full run's figures
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(bench))


def markdown(b: CrashBench) -> str:
    what = ", ".join(x for x in (f"{len(b.search.kills)} SIGKILLs of the search service" if b.search else "",
                                 f"{len(b.worker.kills)} of the ingest worker" if b.worker else "",
                                 "a broker restart" if b.broker else "",
                                 "a full disk under the running search service" if b.disk else "",
                                 "every part of `cmr up` killed once" if b.stack else "") if x)
    lines = [
        "# Crash safety (`cmr bench crash`)",
        "",
        f"{'Quick' if b.quick else 'Full'} run, {what}, {b.seconds:.0f} s in all, on {b.machine}. Written by "
        f"`cmr bench crash{' --quick' if b.quick else ''}`; what each part promises and how it is tested: "
        "[../reliability.md](../reliability.md).",
        "",
        *[f"Note: {n}." for n in b.notes],
        *([""] if b.notes else []),
    ]
    if b.search:
        lines += search_markdown(b.search)
    if b.worker:
        lines += worker_markdown(b.worker)
    if b.broker:
        lines += broker_markdown(b.broker)
    if b.disk:
        lines += disk_markdown(b.disk)
    if b.stack:
        from bench.crash_stack import stack_markdown

        lines += stack_markdown(b.stack)
    problems = [p for part in (b.search, b.worker, b.broker, b.disk, b.stack) if part is not None
                for p in part.problems]
    lines += ["Verdict: " + ("**pass**: nothing acknowledged was lost or duplicated, every restart succeeded."
                             if b.ok else "**FAIL**:\n\n" + "\n".join(f"- {p}" for p in problems)), ""]
    return "\n".join(lines)


def search_markdown(s: SearchCrashResult) -> list[str]:
    restarts = [k.restart_s for k in s.kills if k.restarted]
    lines = [
        "## Search service (Qdrant Edge) under SIGKILL",
        "",
        "`cmr serve search` as deployed (TLS, JWT tokens, audit on) in its own process; one client streams "
        "Upserts (new studies and updates, 1-8 per call) and Deletes, an operator takes backups and switches "
        "between two generations; the process is SIGKILLed at a random moment (a share of the kills land while "
        "the next process is starting: WAL recovery and the index build). After each kill the store is opened "
        "offline and compared with every acknowledged write, then the service is started again.",
        "",
        "| | |",
        "|---|---|",
        f"| acknowledged upserts / deletes | {s.acked_upserts} / {s.acked_deletes} |",
        f"| backups started during the rounds / acknowledged (incl. the one taken before the first kill) | "
        f"{s.backups_started} / {s.backups} |",
        f"| acknowledged generation switches | {s.switches} |",
        f"| acknowledged writes lost (incl. deletes undone) | **{s.lost}** |",
        f"| points duplicated | **{s.duplicated}** |",
        f"| stored with another payload than acknowledged | {s.wrong} |",
        f"| failed restarts | **{s.failed_restarts}** |",
        f"| searches differing from exact search | {s.search_mismatches} |",
        f"| unacknowledged Upserts left half-applied (exam point, no report point; the client retries) | "
        f"{s.half_written_unacked} |",
        f"| audit checks failed (`cmr audit verify`, an entry per acknowledged write) | {s.audit_failures} |",
        f"| restart to SERVING, median / max | {_median(restarts):.1f} s / {max(restarts, default=0):.1f} s |",
        "",
        "| kill | phase | at (s) | stored | in flight (kept) | table | last backup | audit | problems |",
        "|---:|---|---:|---:|---:|---|---|---|---|",
    ]
    for k in s.kills:
        lines.append(f"| {k.n} | {k.phase} | {k.after_s:.1f} | {k.stored} | {k.in_flight} ({k.kept_in_flight}) | "
                     f"{'ok' if k.table_ok else 'BAD'} | {'ok' if k.backup_ok else 'BAD'} | "
                     f"{'ok' if k.audit_ok and not k.audit_missing else 'BAD'} | {k.problems} |")
    return lines + [""]


def worker_markdown(w: WorkerCrashResult) -> list[str]:
    lines = [
        "## Ingest worker under SIGKILL",
        "",
        f"{w.studies} studies (two small series each) published to the NewExam topic, then `python -m ingest_svc` "
        "(TLS and tokens to the encoder and search services) SIGKILLed at random moments: mostly 0-2.5 s after "
        "the process indexed its first study (mid-study, between the upsert and the event, between the event and "
        "the offset commit), some during its start-up; restarted after each kill, stopped with SIGTERM at the end. "
        "Delivery is at least once with an idempotent effect: the index holds each study once (point id from the "
        "study key), and a study repeated after a kill re-publishes its event under the same event_id, so a "
        "subscriber de-duplicating on event_id sees one event per study.",
        "",
        "| | |",
        "|---|---|",
        f"| studies indexed / published | {w.indexed} / {w.studies} |",
        f"| studies lost | **{w.lost}** |",
        f"| studies duplicated in the index | **{w.duplicated}** |",
        f"| event records / repeats (same event_id, de-duplicated by subscribers) | {w.events} / {w.event_repeats} |",
        f"| studies with more than one event_id / without an event | **{w.several_event_ids}** / "
        f"**{w.missing_events}** |",
        f"| dead letters (real failures) / 'already indexed' notices of repeated studies | {w.dead_letters} / "
        f"{w.dedupe_notices} |",
        f"| failed restarts | **{w.failed_restarts}** |",
        f"| clean stop on SIGTERM at the end | {'yes' if w.clean_stop else 'NO'} |",
        f"| seconds | {w.seconds:.0f} |",
        "",
        "| kill | phase | at (s after its start) | studies indexed by then |",
        "|---:|---|---:|---:|",
    ]
    lines += [f"| {k.n} | {k.phase} | {k.after_s:.1f} | {k.indexed} |" for k in w.kills]
    return lines + [""]


def broker_markdown(r: BrokerRestartResult) -> list[str]:
    return [
        "## Broker (embedded Tansu, memory storage) SIGKILLed and restarted mid-ingestion",
        "",
        f"{r.studies} studies published with `--journal`; once {r.indexed_at_kill} were indexed the broker was "
        "SIGKILLed and started again on the same port (it comes back empty: every queued exam is gone), then "
        "`cmr ingest --resume JOURNAL` re-published what the index did not hold. The worker was left running.",
        "",
        "| | |",
        "|---|---|",
        f"| studies indexed at the kill | {r.indexed_at_kill} |",
        f"| re-published by `--resume` (exit status {r.resume_exit}) | {r.republished} |",
        f"| studies lost after the resume | **{r.lost}** |",
        f"| studies duplicated in the index | **{r.duplicated}** |",
        f"| the worker lived through the restart (reconnected by itself) | "
        f"{'yes' if r.worker_survived else '**no**'} |",
        f"| broker start / broker back to every study indexed | {r.broker_start_s:.1f} s / {r.recovery_s:.0f} s |",
        "",
    ]


def disk_markdown(d: DiskFullResult) -> list[str]:
    def yes(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    return [
        "## Full disk under the running search service",
        "",
        f"`cmr serve search` as deployed (TLS, tokens, audit on) with its whole data folder (index, generation "
        f"table, backups, audit log) on a {d.fs_mb} MB tmpfs, `CMR_INDEX_MIN_FREE_MB={d.min_free_mb:g}`, the "
        "index flushed every second; after some writes a ballast file fills the disk to the last byte, writes, "
        "reads, a backup and a generation switch are tried, then the ballast goes and they are tried again; "
        "finally the service is stopped, the store checked offline against every acknowledged write, the audit "
        "chain verified, and the service started once more.",
        "",
        "| | |",
        "|---|---|",
        f"| writes acknowledged before the disk filled / after space returned | {d.acked_before} / {d.acked_after} |",
        f"| ballast (the disk's free space when it was written) | {d.ballast_mb:.0f} MB |",
        f"| writes on the full disk: refused ({', '.join(d.refused_codes) or '-'}) / naming the folder / "
        f"answered OK | {d.refused} / {d.refusals_naming_disk} / **{d.wrongly_accepted}** |",
        f"| reads (searches, Gets) on the full disk: answered / failed | {d.searches_full} / "
        f"**{d.search_errors_full}** |",
        f"| the process alive throughout ({d.full_s:.1f} s full, index log sync every second; failed syncs) | "
        f"{yes(d.alive_throughout)} ({d.flush_failures}) |",
        f"| backup on the full disk | {d.backup_full.split(':')[0]}; folders left: {d.backup_leftovers or 'none'} |",
        f"| generation switch on the full disk / table unchanged and no stray file | "
        f"{d.switch_full.split(':')[0]} / {yes(d.table_ok_full)} |",
        f"| backup after space returned (verified) | {yes(d.backup_after_ok)} |",
        f"| acknowledged writes lost / duplicated / with another payload | **{d.lost}** / **{d.duplicated}** / "
        f"**{d.wrong}** |",
        f"| generation table valid, audit chain verifies, acknowledged writes unaudited | {yes(d.table_ok)}, "
        f"{yes(d.audit_ok)}, {d.audit_missing} |",
        f"| audit entries that could not be written while the disk was full (RPCs answered anyway) / times the "
        f"audit log's reserve was released to write them | {d.audit_entries_lost_full} / {d.audit_reserve_released} |",
        f"| refused writes with their audit entry (status RESOURCE_EXHAUSTED) | {d.audit_refusals_recorded} of "
        f"{d.refused} |",
        f"| restart after it all (to SERVING) | {yes(d.restarted)} ({d.restart_s:.1f} s) |",
        f"| seconds for the phase | {d.seconds:.0f} |",
        "",
        f"A refusal reads: `{d.refusal_example}`",
        "",
    ]


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if v else 0.0
