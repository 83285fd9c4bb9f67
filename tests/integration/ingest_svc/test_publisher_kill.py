"""`cmr ingest PATH --journal J` SIGKILLed while it publishes (a real process, the real broker), then
`cmr ingest --resume J`: every study found is published (the journal records the whole plan before the first
publish, so what the killed run never reached is sent too, with its report), and the worker indexes each
exactly once. Studies the killed run did publish are still queued (no worker yet) and are not sent again, so
the topic holds each study once (twice at most for the one whose ack the kill may have beaten to the journal,
which the worker recognises as already indexed); one event id per study. A second resume has nothing left to
send."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.crash_process import REPO, ChildProcess
from cmr.config import Settings
from cmr.kafka_io import read_topic
from cmr.rpc.keys import study_key
from cmr.v1 import events_pb2
from ingest_cases import make_variants, wait_until, worker_env
from ingest_svc.journal import PUBLISHED, indexed_by, read_journal
from ingest_svc.worker import IngestWorker
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N = 10
# Tansu answers a JoinGroup only after the rebalance timeout (kafka-python's max_poll_interval_ms): short here,
# still longer than a study takes without measuring
POLL_INTERVAL_MS = 5000


def _published(journal: Path) -> int:
    try:
        return journal.read_text().count(f'"status":"{PUBLISHED}"')
    except FileNotFoundError:
        return 0


def _cmr(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestration.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_publisher_killed_mid_run_then_resume_indexes_every_study_once(
        ingest_env: Settings, ingest_search: SearchClient, synth_dir: Path, ingest_root: Path,
        tmp_path: Path) -> None:
    s = ingest_env.model_copy(update={"measure": False, "kafka_max_poll_interval_ms": POLL_INTERVAL_MS})
    root = ingest_root / "publisher_kill"
    variants = make_variants(synth_dir, root, N, start=5000)
    (root / "reports.jsonl").write_text("".join(  # the reports `cmr ingest` sends (as a `cmr synth` set has)
        json.dumps({"folder": v.path.name, "impression": v.impression, "labels": {}}) + "\n" for v in variants))
    keys = [study_key(v.uid, s.study_key_secret) for v in variants]
    journal = tmp_path / "journal.jsonl"
    env = worker_env(s)
    before = ingest_search.stats().exams

    publisher = ChildProcess([sys.executable, "-m", "orchestration.cli.main", "ingest", str(root),
                              "--journal", str(journal)], env, tmp_path / "ingest.log")
    publisher.spawn()
    wait_until(lambda: _published(journal) >= 2 or not publisher.alive(), 120, "the first publishes",
               poll_s=0.001)
    publisher.kill()
    published_at_kill = _published(journal)
    assert 1 <= published_at_kill < N, f"the kill missed the publishing: {publisher.tail()}"
    planned = {e.study_key for e in read_journal(journal) if e.status != PUBLISHED}
    assert planned == set(keys)  # the whole plan was on disk before the first publish

    resumed = _cmr(["ingest", "--resume", str(journal)], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # nothing indexed yet; what the killed run published still waits on the topic (no worker yet): only the rest
    said = resumed.stdout + resumed.stderr
    assert _published(journal) == N and f"{published_at_kill} still queued" in said, said

    worker = IngestWorker(s)
    stats_box: list[object] = []
    thread = threading.Thread(target=lambda: stats_box.append(worker.run()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: ingest_search.stats().exams - before >= N or not thread.is_alive(), 120,
                   f"{N} studies indexed")
        records = [r for r in read_topic(s, s.kafka_topic_new)]
        # every record handled (the copies too) before the worker is stopped
        wait_until(lambda: worker.stats.handled >= len(records) or not thread.is_alive(), 60,
                   f"the worker to handle all {len(records)} records")
    finally:
        worker.request_stop()
        thread.join(30)
    assert stats_box, "the worker did not stop"

    # exactly once for the index: every study held, none twice, each with the report it was planned with
    assert indexed_by(ingest_search)(keys) == set(keys)
    assert ingest_search.stats().exams - before == N
    # the last study was never published by the killed run: its report came from the plan (names scrubbed)
    assert variants[-1].impression.split(" (patient")[0] in ingest_search.get(keys[-1]).exam.impression
    # on the topic: each study once (+1 if the killed run died between an ack and its journal line: that study
    # counted as never published, so it was sent again)
    assert N <= len(records) <= N + 1
    assert worker.stats.indexed == N and worker.stats.duplicates == len(records) - N
    assert worker.stats.dead_letters == 0
    events: dict[str, set[str]] = {}
    for r in read_topic(s, s.kafka_topic_embedded):
        e = events_pb2.EmbeddingCreated.FromString(r.value)
        events.setdefault(e.study_key, set()).add(e.event_id)
    assert set(events) == set(keys) and all(len(ids) == 1 for ids in events.values())  # subscribers dedupe

    again = _cmr(["ingest", "--resume", str(journal)], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _published(journal) == N  # every study confirmed by the index: nothing re-sent
