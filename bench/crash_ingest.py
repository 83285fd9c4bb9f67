"""The ingestion side of `cmr bench crash`: the ingest worker SIGKILLed at random moments during a long
ingestion, and the broker (embedded Tansu, memory storage) SIGKILLed and restarted in the middle of one,
followed by `cmr ingest --resume JOURNAL`.

What is promised and checked (docs/reliability.md):

- worker kills: every published study is in the index exactly once (its point id derives from the study key,
  so a repeated upsert overwrites), and has its EmbeddingCreated event under one event_id. Events are delivered
  at least once: a kill after the event was published but before the offset was committed repeats the study,
  which re-publishes the same event (deterministic event_id). Such repeats are counted (records beyond one per
  study); a subscriber de-duplicates on event_id. The repeated study also leaves an "already indexed" notice
  on the dead-letter topic (stage dedupe), counted apart from real dead letters.
- broker restart: after `cmr ingest --resume`, every study of the journal is in the index exactly once; whether
  the worker process lived through the restart (rejoined and went on by itself) is recorded.

Both run against services the caller started (the bench: bench/crash_ingest_rig.py; the tests: their fixtures);
the worker is `python -m ingest_svc` with the environment the caller gives.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.crash_process import REPO, ChildProcess
from cmr.config import Settings
from cmr.synth.study_copies import Variant

KILL_WINDOW_S = (0.0, 2.5)   # after the incarnation indexed its first study: lands mid-study, mid-publish...
STARTING_KILL_SHARE = 0.2    # this share of the kills lands during start-up (imports, group join) instead
PROGRESS_TIMEOUT_S = 240.0   # a worker that indexes nothing for this long counts as a failed restart


class WorkerProcess(ChildProcess):
    """`python -m ingest_svc` with a given environment, output appended to one log; started again after each
    kill."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        super().__init__([sys.executable, "-m", "ingest_svc"], env, log)


@dataclass
class WorkerKill:
    n: int
    phase: str          # "ingesting" or "starting"
    after_s: float      # since that worker process started
    indexed: int        # studies of the run in the index at the kill


@dataclass
class WorkerCrashResult:
    studies: int
    kills: list[WorkerKill] = field(default_factory=list)
    indexed: int = 0             # the run's studies found in the index at the end
    lost: int = 0
    duplicated: int = 0          # index entries beyond one per study
    events: int = 0              # EmbeddingCreated records of the run's studies on the topic
    event_repeats: int = 0       # records beyond one per study: at-least-once redeliveries (same event_id)
    several_event_ids: int = 0   # studies whose events carry more than one event_id (must be 0)
    missing_events: int = 0
    dead_letters: int = 0        # real failures (must be 0: every study is good)
    dedupe_notices: int = 0      # "already indexed" notices of a study repeated after a kill
    failed_restarts: int = 0
    clean_stop: bool = False     # the final SIGTERM ended the worker with status 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class BrokerRestartResult:
    studies: int
    indexed_at_kill: int = 0
    republished: int = 0          # what `cmr ingest --resume` published again
    resume_exit: int = -1
    lost: int = 0                 # after the resume
    duplicated: int = 0
    worker_survived: bool = False  # the worker process lived through the broker restart, no restart needed
    broker_start_s: float = 0.0
    recovery_s: float = 0.0       # broker back to every study indexed
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _held(search: Any, keys: Sequence[str]) -> set[str]:
    from ingest_svc.journal import indexed_by

    return indexed_by(search)(keys)


def _wait(cond: Callable[[], bool], worker: WorkerProcess, timeout_s: float) -> bool:
    """Poll `cond` until true (True), the worker exits or the time is up (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        if not worker.alive():
            return False
        time.sleep(0.2)
    return cond()


def kill_worker_during_ingestion(worker: WorkerProcess, search: Any, settings: Settings, keys: Sequence[str],
                                 kills: int, *, seed: int = 20, finish_timeout_s: float = 600.0,
                                 progress: Callable[[WorkerKill], None] | None = None) -> WorkerCrashResult:
    """The studies of `keys` are already published to `settings.kafka_topic_new`; start the worker, SIGKILL it
    `kills` times at random moments (restarting it each time), let it finish, stop it with SIGTERM, check."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    res = WorkerCrashResult(studies=len(keys))
    before = search.stats().exams
    done = lambda: search.stats().exams - before  # noqa: E731 - the run's studies indexed so far

    worker.spawn()
    for n in range(1, kills + 1):
        if rng.random() < STARTING_KILL_SHARE:
            phase = "starting"
            time.sleep(rng.uniform(0.5, 3.0))
        else:
            phase, first = "ingesting", done()
            if not _wait(lambda: done() > first, worker, PROGRESS_TIMEOUT_S):
                res.failed_restarts += 1
                state = "had exited" if not worker.alive() else f"indexed nothing in {PROGRESS_TIMEOUT_S:.0f} s"
                res.problems.append(f"before kill {n}: the worker {state} (log tail: {worker.tail(600)!r})")
                break
            time.sleep(rng.uniform(*KILL_WINDOW_S))
        if done() >= len(keys):
            res.problems.append(f"every study was indexed before kill {n}: publish more studies for {kills} kills")
            break
        if not worker.alive():
            res.failed_restarts += 1
            res.problems.append(f"kill {n}: the worker had exited by itself (log tail: {worker.tail(600)!r})")
        after = time.monotonic() - worker.spawned_at
        worker.kill()
        record = WorkerKill(n, phase, round(after, 2), done())
        res.kills.append(record)
        if progress:
            progress(record)
        worker.spawn()

    events_by_key = _finish(worker, search, settings, keys, done, finish_timeout_s, res)
    res.clean_stop = worker.stop() == 0
    if not res.clean_stop:
        res.problems.append(f"the final SIGTERM did not end the worker cleanly (log tail: {worker.tail(600)!r})")
    _check_worker_run(search, settings, keys, done(), events_by_key, res)
    res.seconds = round(time.monotonic() - t0, 1)
    return res


def _finish(worker: WorkerProcess, search: Any, settings: Settings, keys: Sequence[str], done: Callable[[], int],
            timeout_s: float, res: WorkerCrashResult) -> dict[str, list[str]]:
    """Wait until every study is indexed and has its event; {study key: event ids of its event records}."""
    from cmr.kafka_io import read_topic
    from cmr.v1 import events_pb2

    wanted = set(keys)
    if not _wait(lambda: done() >= len(keys), worker, timeout_s):
        res.problems.append(f"after the last kill only {done()} of {len(keys)} studies were indexed"
                            + ("" if worker.alive() else f"; the worker exited: {worker.tail(600)!r}"))
    deadline = time.monotonic() + 60
    by_key: dict[str, list[str]] = {}
    while True:
        by_key = {}
        for r in read_topic(settings, settings.kafka_topic_embedded):
            e = events_pb2.EmbeddingCreated.FromString(r.value)
            if e.study_key in wanted:
                by_key.setdefault(e.study_key, []).append(e.event_id)
        if set(by_key) >= wanted or time.monotonic() > deadline:
            return by_key
        time.sleep(1)


def _check_worker_run(search: Any, settings: Settings, keys: Sequence[str], added: int,
                      events_by_key: dict[str, list[str]], res: WorkerCrashResult) -> None:
    from cmr.kafka_io import read_topic
    from cmr.v1 import events_pb2

    held = _held(search, keys)
    res.indexed, res.lost = len(held), len(keys) - len(held)
    res.duplicated = max(0, added - len(held))
    res.events = sum(len(ids) for ids in events_by_key.values())
    res.event_repeats = res.events - len(events_by_key)
    res.several_event_ids = sum(len(set(ids)) > 1 for ids in events_by_key.values())
    res.missing_events = len(set(keys) - set(events_by_key))
    wanted = {k.encode() for k in keys}
    for r in read_topic(settings, settings.kafka_topic_dead_letter):
        if r.key in wanted:
            if events_pb2.DeadLetter.FromString(r.value).stage == "dedupe":
                res.dedupe_notices += 1
            else:
                res.dead_letters += 1
    for what, n in (("lost", res.lost), ("duplicated in the index", res.duplicated),
                    ("with several event ids", res.several_event_ids), ("without an event", res.missing_events),
                    ("dead-lettered", res.dead_letters)):
        if n:
            res.problems.append(f"{n} studies {what}")


def restart_broker_during_ingestion(broker: Any, worker: WorkerProcess, search: Any, settings: Settings,
                                    variants: Sequence[Variant], journal: Path, resume_env: dict[str, str], *,
                                    kill_at: int, timeout_s: float = 600.0) -> BrokerRestartResult:
    """Publish `variants` with a journal, start the worker, SIGKILL the broker once `kill_at` studies are indexed
    and start it again (memory storage: it comes back empty), run `cmr ingest --resume JOURNAL` (environment
    `resume_env`), and wait until every study is indexed. The worker is not restarted unless it died."""
    from cmr.rpc.keys import study_key
    from ingest_svc.journal import IngestJournal, read_journal
    from ingest_svc.producer import ExamPublisher, Report

    t0 = time.monotonic()
    res = BrokerRestartResult(studies=len(variants))
    keys = [study_key(v.uid, settings.study_key_secret) for v in variants]
    before = search.stats().exams
    done = lambda: search.stats().exams - before  # noqa: E731
    with IngestJournal(journal) as log, ExamPublisher(settings, journal=log) as pub:
        for v in variants:
            pub.publish_path(v.path, report=Report(v.impression, v.labels))
    worker.spawn()
    if not _wait(lambda: done() >= kill_at, worker, timeout_s):
        res.problems.append(f"the worker indexed {done()} studies, not {kill_at}, before the broker kill "
                            f"(log tail: {worker.tail(600)!r})")
        return res
    broker.kill()
    res.indexed_at_kill = done()
    t_start = time.monotonic()
    broker.start()
    res.broker_start_s = round(time.monotonic() - t_start, 2)
    resumed = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "ingest", "--resume", str(journal)],
                             env=resume_env, cwd=REPO, capture_output=True, text=True, timeout=300)
    res.resume_exit = resumed.returncode
    res.republished = len(read_journal(journal)) - len(variants)
    if resumed.returncode != 0:
        res.problems.append(f"`cmr ingest --resume` exited {resumed.returncode}: {resumed.stdout[-600:]}"
                            f"{resumed.stderr[-600:]}")
    finished = _wait(lambda: done() >= len(variants), worker, timeout_s)
    res.worker_survived = worker.alive() and worker.starts == 1
    if not finished and not worker.alive():
        res.problems.append(f"the worker exited after the broker restart (log tail: {worker.tail(600)!r}); "
                            "started again to count what the resume saved")
        worker.spawn()
        finished = _wait(lambda: done() >= len(variants), worker, timeout_s)
    res.recovery_s = round(time.monotonic() - t_start, 1)
    held = _held(search, keys)
    res.lost = len(keys) - len(held)
    res.duplicated = max(0, done() - len(held))
    if res.lost:
        res.problems.append(f"{res.lost} of {len(keys)} studies lost after the resume")
    if res.duplicated:
        res.problems.append(f"{res.duplicated} studies duplicated in the index")
    if worker.stop() != 0:
        res.problems.append(f"the worker did not stop cleanly (log tail: {worker.tail(600)!r})")
    res.seconds = round(time.monotonic() - t0, 1)
    return res


__all__ = ["BrokerRestartResult", "WorkerCrashResult", "WorkerKill", "WorkerProcess", "kill_worker_during_ingestion",
           "restart_broker_during_ingestion"]
