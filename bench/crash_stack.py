"""The `cmr up` phase of `cmr bench crash`: the whole secured stack on one machine, each part SIGKILLed once in
turn while a client searches (SearchByText every half second, as a UI user would, on one long-lived channel) and
studies are being indexed (the demo seeder through Kafka, and `cmr ingest --journal` of more studies).

Per kill it measures how long until supervisord has the part running again and the part answers its health
check (the checks `cmr status` and the UI's sidebar use: gRPC health, the worker's /ready, the UI's
/_stcore/health, a TCP connect to the broker), whether the check saw it down, what `cmr status` said right after
the kill, how many searches failed and when they worked again, and which of the killed process's children were
left running. At the end: every demo and ingested study in the index once (after `cmr ingest --resume` of the
journal, as an operator does after a broker restart; the seeder re-publishes by itself), no part FATAL, the
seeder done, no process left behind, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.crash_process import REPO
from bench.crash_stack_rig import PARTS, StackProbe, UpStack, alive, command_of, descendants

BACK_TARGET_S = 60.0     # the target: each part back and healthy within this
GIVE_UP_S = 240.0        # a part not back by then counts as a failed restart
SEARCH_EVERY_S = 0.5
KILL_ORDER = ("broker", "search", "encoder", "ingest", "generator", "ui")  # the broker first: the queue is full
SEED_STALL_S = 60        # the seeder re-publishes what the index lacks after this long without progress
QUERY = "dilated left ventricle with reduced ejection fraction"


class Searcher:
    """A UI-like client: one SearchClient kept for the whole run, a text search every SEARCH_EVERY_S."""

    def __init__(self, probe: StackProbe) -> None:
        self.probe = probe
        self.log: list[tuple[float, bool]] = []  # (monotonic time, answered)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="searcher", daemon=True)

    def start(self) -> Searcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from search_svc.client import SearchClient

        with SearchClient(self.probe.settings.search_url, settings=self.probe.settings, timeout_s=10) as client:
            while not self._stop.is_set():
                t = time.monotonic()
                try:
                    client.search_text(QUERY, top_k=5)  # answered (the index may still be empty at first)
                    ok = True
                except Exception:  # noqa: BLE001 - any failure is a failed search, counted
                    ok = False
                self.log.append((t, ok))
                self._stop.wait(max(0.0, SEARCH_EVERY_S - (time.monotonic() - t)))

    def window(self, since: float) -> tuple[int, int, float | None]:
        """(searches, failed, seconds from `since` to the first answer after the last failure; None: none
        answered since) over the searches made since `since`."""
        entries = [(t, ok) for t, ok in list(self.log) if t >= since]
        failed = [t for t, ok in entries if not ok]
        last_fail = max(failed, default=since)
        first_ok = next((t for t, ok in entries if ok and t >= last_fail), None)
        return len(entries), len(failed), None if first_ok is None else round(first_ok - since, 1)

    def answered_after(self, t0: float) -> bool:
        return any(ok for t, ok in list(self.log) if t >= t0)


@dataclass
class PartKill:
    part: str
    pid: int
    new_pid: int = 0
    down_seen: bool = False          # its health check (as `cmr status` and the UI run it) failed after the kill
    back_s: float = -1.0             # kill -> supervisord RUNNING with a new pid and the health check passing
    status_right_after: str = ""     # `cmr status`'s row for the part, taken right after the kill
    searches: int = 0
    search_failures: int = 0
    search_back_s: float | None = None  # kill -> the first answer after the last failed search
    left_behind: list[str] = field(default_factory=list)  # the killed process's children still running
    problems: list[str] = field(default_factory=list)
    ui_down_seen: bool | None = None  # the UI's sidebar check showed it down (None: not looked at)
    ui_back: bool | None = None       # ... and up again once it was back


# The UI sidebar's name of each part it shows (the UI itself is not in its own sidebar).
UI_LABELS = {"encoder": "encoder", "search": "search", "generator": "generator", "broker": "broker",
             "ingest": "ingest worker"}


def _status_row(probe: StackProbe, part: str) -> str:
    _, text = probe.status()
    row = next((line for line in text.splitlines() if line.split()[:1] == [part]), "")
    return " ".join(row.split()[1:3])  # process state and health


def kill_part(probe: StackProbe, part: str, searcher: Searcher | None = None, *, give_up_s: float = GIVE_UP_S,
              with_status: bool = True, ui_health: Callable[[], dict[str, bool]] | None = None) -> PartKill:
    """SIGKILL the process supervisord runs for `part`, as the OOM killer would, and wait until it is back.
    ui_health: the UI sidebar's check (ui.services.Services.health), looked at right after the kill and after."""
    state, pid = probe.processes()[part]
    rec = PartKill(part, pid)
    if state != "RUNNING" or not pid:
        rec.problems.append(f"{part} was {state} before the kill")
        return rec
    children = descendants(pid)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    down_until = t0 + 3.0
    while time.monotonic() < down_until and not rec.down_seen:
        rec.down_seen = not probe.health(part).ok
        time.sleep(0.05)
    label = UI_LABELS.get(part)
    if ui_health is not None and label:
        rec.ui_down_seen = ui_health().get(label) is False
    if with_status:
        rec.status_right_after = _status_row(probe, part)
    while time.monotonic() - t0 < give_up_s:
        try:
            st, now_pid = probe.processes()[part]
        except OSError:  # supervisord busy for a moment
            st, now_pid = "?", 0
        if st == "RUNNING" and now_pid not in (0, pid) and probe.health(part).ok:
            rec.new_pid, rec.back_s = now_pid, round(time.monotonic() - t0, 1)
            break
        if st == "FATAL":
            rec.problems.append(f"{part}: supervisord gave up (FATAL)")
            break
        time.sleep(0.25)
    else:
        rec.problems.append(f"{part} not back and healthy {give_up_s:.0f} s after the kill")
    if rec.back_s > BACK_TARGET_S:
        rec.problems.append(f"{part} took {rec.back_s:.0f} s to come back (target {BACK_TARGET_S:.0f} s)")
    if not rec.down_seen and part != "ui":  # the UI restarts in ~2 s: a 3 s look may miss it, not a fault
        rec.problems.append(f"{part}: its health check never showed it down")
    if ui_health is not None and label and rec.back_s >= 0:
        rec.ui_back = ui_health().get(label) is True
        if not (rec.ui_down_seen and rec.ui_back):
            rec.problems.append(f"{part}: the UI's status showed it down {rec.ui_down_seen}, back {rec.ui_back}")
    time.sleep(1.5)  # the decoder workers notice their parent is gone within a second
    rec.left_behind = [command_of(c)[:100] for c in sorted(children) if alive(c)]
    if rec.left_behind:
        rec.problems.append(f"{part}: {len(rec.left_behind)} processes of the killed one left running")
    if searcher is not None and rec.back_s >= 0:
        deadline = time.monotonic() + BACK_TARGET_S
        while not searcher.answered_after(t0 + rec.back_s) and time.monotonic() < deadline:
            time.sleep(0.5)
        rec.searches, rec.search_failures, rec.search_back_s = searcher.window(t0)
        if not searcher.answered_after(t0 + rec.back_s):
            rec.problems.append(f"{part}: no search answered in {BACK_TARGET_S:.0f} s after it was back")
    return rec


@dataclass
class StackCrashResult:
    demo: int                        # studies the seeder indexes through Kafka
    ingested: int                    # studies `cmr ingest --journal` published during the kills
    kills: list[PartKill] = field(default_factory=list)
    start_s: float = 0.0             # `cmr up` to every part healthy
    indexed_at_first_kill: int = 0
    held: int = 0                    # of the run's studies, in the index at the end
    exams: int = 0                   # the index count at the end
    lost: int = 0
    duplicated: int = 0
    resume_republished: int = -1     # what `cmr ingest --resume` re-sent after the kills
    seeder_republished: int = 0      # re-publish rounds of the seeder (it lost studies to the broker restart)
    settle_s: float = 0.0            # last kill -> every study indexed
    searches: int = 0
    search_failures: int = 0
    clean_stop: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _client_env(up: UpStack) -> dict[str, str]:
    """The operator's shell: `cmr ingest` and `--resume` against the stack, with the client identity."""
    from cmr.security.devca import DevSecurity

    s = up.probe.settings
    sec = DevSecurity(up.probe.data / "security")
    return {**up.env, **sec.env("client"), "CMR_AUTH_TOKEN_FILE": str(sec.token_file("client")),
            "CMR_SEARCH_URL": s.search_url, "CMR_ENCODER_URL": s.encoder_url, "COLUMNS": "200"}


def _cmr(args: Sequence[str], env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestration.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


def make_studies(demo_dir: Path, n: int, seed: int) -> list[Path]:
    """The run's studies, generated as the seeder would (it finds them and does not generate them again)."""
    from cmr.synth.generate import generate_dataset

    generate_dataset(demo_dir, n, seed, workers=2, phrasing="train", progress=True)
    return sorted(p for p in (demo_dir / "studies").iterdir() if p.is_dir())[:n]


def _keys(studies: Sequence[Path], secret: str) -> list[str]:
    from cmr.rpc.keys import study_key
    from ingest_svc.producer import first_study_uid

    return [study_key(str(first_study_uid(p)), secret) for p in studies]


def run_stack_kills(work: Path, *, demo: int, ingested: int, seed: int = 21, parts: Sequence[str] = KILL_ORDER,
                    progress: bool = True, settle_timeout_s: float = 900.0) -> StackCrashResult:
    from rich.console import Console

    from ingest_svc.journal import indexed_by
    from search_svc.client import SearchClient

    console = Console(stderr=True)
    say = console.print if progress else (lambda *_: None)
    t_run = time.monotonic()
    res = StackCrashResult(demo=demo, ingested=ingested)
    data = work / "data"
    studies = make_studies(data / "demo", demo + ingested, seed)
    up = UpStack(data, demo, seed, work / "up.log")
    up.env["CMR_UP_SEED_STALL_S"] = str(SEED_STALL_S)
    probe = up.probe
    res.start_s = round(up.start(), 1)
    say(f"`cmr up` healthy in {res.start_s:.0f} s; publishing {ingested} more studies with --journal")
    env = _client_env(up)
    journal = work / "journal.jsonl"
    searcher = Searcher(probe).start()
    try:
        r = _cmr(["ingest", *(str(p) for p in studies[demo:]), "--journal", str(journal)], env)
        if r.returncode != 0:
            res.problems.append(f"cmr ingest exited {r.returncode}: {r.stderr[-500:]}")
        res.indexed_at_first_kill = probe.exams()
        for part in parts:
            rec = kill_part(probe, part, searcher)
            res.kills.append(rec)
            res.problems += rec.problems
            say(f"killed {part} (pid {rec.pid}): down seen {rec.down_seen}, back in {rec.back_s:.1f} s "
                f"(pid {rec.new_pid}); `cmr status` right after: {rec.status_right_after!r}; searches failed "
                f"{rec.search_failures}/{rec.searches}, answering again {rec.search_back_s} s after the kill; "
                f"left behind: {len(rec.left_behind)}; {probe.exams()} exams")
        t_last = time.monotonic()
        r = _cmr(["ingest", "--resume", str(journal)], env)
        res.resume_republished = _republished(r.stdout + r.stderr)
        if r.returncode != 0:
            res.problems.append(f"cmr ingest --resume exited {r.returncode}: {r.stderr[-500:]}")
        keys = _keys(studies, probe.settings.study_key_secret)
        with SearchClient(probe.settings.search_url, settings=probe.settings, timeout_s=30) as client:
            held = indexed_by(client)
            deadline = time.monotonic() + settle_timeout_s
            while len(held(keys)) < len(keys) and time.monotonic() < deadline:
                time.sleep(3)
            res.settle_s = round(time.monotonic() - t_last, 1)
            res.held = len(held(keys))
            res.exams = int(client.stats().exams)
        res.lost = len(keys) - res.held
        res.duplicated = max(0, res.exams - res.held)  # the index holds only the run's studies
        say(f"{res.held}/{len(keys)} studies in the index {res.settle_s:.0f} s after the last kill "
            f"(`--resume` re-sent {res.resume_republished}); {res.exams} exams")
        if res.lost:
            res.problems.append(f"{res.lost} studies lost")
        if res.duplicated:
            res.problems.append(f"{res.duplicated} studies duplicated in the index")
        res.problems += _end_checks(probe, up)
    finally:
        searcher.stop()
        res.searches = len(searcher.log)
        res.search_failures = sum(1 for _, ok in searcher.log if not ok)
        seed_log = probe.layout.log_of("seed")
        res.seeder_republished = seed_log.read_text().count("re-publishing them") if seed_log.exists() else 0
        supervised = _supervised_pids(probe)
        code = up.stop()
        res.clean_stop = code == 0
        if not res.clean_stop:
            res.problems.append(f"`cmr up` did not stop cleanly on SIGTERM (exit {code})")
        time.sleep(2)
        stray = [command_of(p)[:100] for p in supervised if alive(p)]
        if stray:
            res.problems.append(f"processes left after the stop: {stray}")
    res.seconds = round(time.monotonic() - t_run, 1)
    return res


def _republished(output: str) -> int:
    """How many studies `cmr ingest --resume` re-sent (-1: its output did not say)."""
    import re

    m = re.search(r"re-published (\d+)", output) or re.search(r"(\d+) to publish", output)
    return int(m.group(1)) if m else -1


def _supervised_pids(probe: StackProbe) -> list[int]:
    try:
        pids = [pid for _, pid in probe.processes().values() if pid]
    except OSError:
        return []
    return [p for pid in pids for p in (pid, *descendants(pid))]


def _end_checks(probe: StackProbe, up: UpStack) -> list[str]:
    problems = []
    states = probe.processes()
    for part in PARTS:
        st, _ = states.get(part, ("missing", 0))
        if st != "RUNNING" or not probe.health(part).ok:
            problems.append(f"at the end {part} is {st}, health {probe.health(part).detail}")
    deadline = time.monotonic() + 90  # the seeder notices the last study within its poll
    while states.get("seed", ("missing", 0))[0] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(2)
        states = probe.processes()
    seed_state = states.get("seed", ("missing", 0))[0]
    seed_log = probe.layout.log_of("seed").read_text() if probe.layout.log_of("seed").exists() else ""
    if seed_state != "EXITED" or "done:" not in seed_log:
        problems.append(f"the demo seeder did not finish ({seed_state}): {seed_log[-300:]!r}")
    code, text = probe.status()
    if code != 0:
        problems.append(f"`cmr status` exit {code} at the end: {text[-500:]}")
    return problems


def stack_markdown(r: StackCrashResult) -> list[str]:
    lines = [
        "## `cmr up`: every part SIGKILLed once",
        "",
        f"The whole stack as it ships (secured: TLS, tokens, the UI behind its login) on a temporary folder, "
        f"{r.demo} demo studies seeded through Kafka and {r.ingested} more published with `cmr ingest --journal`, "
        f"a client searching every {SEARCH_EVERY_S} s on one long-lived channel (as the UI does); then each "
        "part's process (the one supervisord started) SIGKILLed in turn, the next once the previous was back. "
        "\"Back\": supervisord runs a new process and the part's health check passes (the checks `cmr status` and "
        "the UI's sidebar use). After the kills `cmr ingest --resume JOURNAL` (the broker restart lost what was "
        "queued); the seeder re-publishes its own. The UI's sidebar runs the same checks; "
        "`tests/integration/up_stack/test_up_stack.py` asserts it shows the broker, the search service and the "
        "ingest worker down and back.",
        "",
        "| part killed | down seen | back (s) | `cmr status` right after | searches failed / made | searches "
        "answering again (s after the kill) | left running |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for k in r.kills:
        lines.append(f"| {k.part} | {'yes' if k.down_seen else 'no'} | {k.back_s:.1f} | {k.status_right_after} | "
                     f"{k.search_failures} / {k.searches} | {k.search_back_s if k.search_back_s is not None else '-'}"
                     f" | {len(k.left_behind)} |")
    backs = [k.back_s for k in r.kills if k.back_s >= 0]
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| `cmr up` to every part healthy | {r.start_s:.0f} s |",
        f"| slowest part back / target | {max(backs, default=0):.0f} s / {BACK_TARGET_S:.0f} s |",
        f"| studies of the run in the index / seeded | {r.held} / {r.demo + r.ingested} (index count {r.exams}) |",
        f"| studies lost / duplicated | **{r.lost}** / **{r.duplicated}** |",
        f"| indexed before the first kill | {r.indexed_at_first_kill} |",
        f"| re-sent by `cmr ingest --resume` / seeder re-publish rounds | {r.resume_republished} / "
        f"{r.seeder_republished} |",
        f"| last kill to every study indexed | {r.settle_s:.0f} s |",
        f"| searches made / failed over the run | {r.searches} / {r.search_failures} |",
        f"| clean stop (SIGTERM, exit 0, nothing left running) | {'yes' if r.clean_stop else '**no**'} |",
        f"| seconds | {r.seconds:.0f} |",
        "",
        "Verdict (`cmr up`): " + ("**pass**: every part back and healthy within the target, searches answered "
                                  "again after each kill, 0 studies lost." if r.ok else
                                  "**FAIL**:\n\n" + "\n".join(f"- {p}" for p in r.problems)),
        "",
    ]
    return lines


__all__ = ["KILL_ORDER", "PartKill", "Searcher", "StackCrashResult", "kill_part", "run_stack_kills",
           "stack_markdown"]
