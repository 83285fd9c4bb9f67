"""`cmr bench crash`: SIGKILL the stateful parts at random moments and check that nothing acknowledged is lost.

The search service part is bench/crash_search.py (Upserts, Deletes, backups and generation switches streaming
while the process is killed; the store, the generation table, the last backup and the audit log checked after
every kill). Results: docs/benchmarks/crash.md and crash.json (crash_quick.* for --quick).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.crash_search import KillRecord, SearchCrashResult, SearchCrashRun
from bench.encoder import machine_description

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "benchmarks"
QUICK_KILLS, FULL_KILLS = 5, 20
SERVE_S = (2.0, 6.0)  # writes stream this long (uniform) before a kill: long enough for some backups to finish


@dataclass
class CrashBench:
    quick: bool
    machine: str
    search: SearchCrashResult
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.search.ok


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


def run(quick: bool = False, out_dir: Path | None = None, seed: int = 20) -> CrashBench:
    kills = QUICK_KILLS if quick else FULL_KILLS
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cmr-crash-") as tmp:
        search = run_search_kills(kills, Path(tmp), seed=seed)
    load = [round(x, 1) for x in os.getloadavg()]
    bench = CrashBench(quick=quick, machine=f"{machine_description()}; load average at the end {load} (the "
                       "machine is shared with other jobs)", search=search, seconds=round(time.perf_counter() - t0, 1))
    write_results(bench, out_dir or DEFAULT_OUT)
    return bench


def write_results(bench: CrashBench, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = asdict(bench) | {"ok": bench.ok}
    stem = "crash_quick" if bench.quick else "crash"  # a quick run never overwrites the full run's figures
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(bench))


def markdown(b: CrashBench) -> str:
    s = b.search
    restarts = [k.restart_s for k in s.kills if k.restarted]
    lines = [
        "# Crash safety (`cmr bench crash`)",
        "",
        f"{'Quick' if b.quick else 'Full'} run, {len(s.kills)} SIGKILLs of the search service, {b.seconds:.0f} s "
        f"in all, on {b.machine}. Written by `cmr bench crash{' --quick' if b.quick else ''}`; what each part "
        "promises and how it is tested: [../reliability.md](../reliability.md).",
        "",
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
    lines += ["", "Verdict: " + ("**pass**: nothing acknowledged was lost or duplicated, every restart succeeded."
                                 if b.ok else "**FAIL**:\n\n" + "\n".join(f"- {p}" for p in s.problems)), ""]
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if v else 0.0
