"""Crash safety: the worker is a real process (`python -m ingest_svc`), killed with SIGKILL at random moments
while it ingests 100 studies and restarted each time. Nothing is lost, nothing is duplicated in the index, every
study has its embedding event (at least once; redeliveries repeat the same deterministic event_id), and a final
SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.kafka_io import read_topic
from cmr.rpc.keys import study_key
from cmr.v1 import events_pb2
from ingest_cases import make_variants
from ingest_svc.producer import ExamPublisher, Report
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N = 100
REPO = Path(__file__).resolve().parents[3]
KILLS = 4


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({
        "CMR_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "CMR_ENCODER_URL": s.encoder_url, "CMR_SEARCH_URL": s.search_url,
        "CMR_STUDY_KEY_SECRET": s.study_key_secret, "CMR_STUDY_ROOTS": json.dumps([str(r) for r in s.study_roots]),
        "CMR_KAFKA_TOPIC_NEW": s.kafka_topic_new, "CMR_KAFKA_TOPIC_EMBEDDED": s.kafka_topic_embedded,
        "CMR_KAFKA_TOPIC_DEAD_LETTER": s.kafka_topic_dead_letter, "CMR_KAFKA_GROUP_ID": s.kafka_group_id,
        "CMR_INGEST_METRICS_PORT": "0", "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "10000",
        "CMR_KAFKA_SESSION_TIMEOUT_MS": "6000", "CMR_DATA_DIR": str(s.data_dir),
        "CMR_GRPC_MAX_MESSAGE_BYTES": str(s.grpc_max_message_bytes), "CMR_TORCH_THREADS": "1"})
    return env


def _start(s: Settings, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fp:
        return subprocess.Popen([sys.executable, "-m", "ingest_svc"], env=_env(s), stdout=fp,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(ingest_env: Settings, ingest_search: SearchClient,
                                                                 synth_dir: Path, ingest_root: Path,
                                                                 tmp_path: Path) -> None:
    s = ingest_env
    variants = make_variants(synth_dir, ingest_root / "crash", N, start=1000)
    keys = [study_key(v.uid, s.study_key_secret) for v in variants]
    before = ingest_search.stats().exams
    with ExamPublisher(s) as pub:
        for v in variants:
            pub.publish_path(v.path, report=Report(v.impression, v.labels))

    rng = random.Random(7)
    log = tmp_path / "worker.log"
    proc = _start(s, log)
    try:
        for _ in range(KILLS):
            # Start-up and group join take a few seconds; then it ingests ~2-3 studies/s: kill in the middle.
            time.sleep(rng.uniform(4.0, 9.0))
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = _start(s, log)
        deadline = time.monotonic() + 200
        while ingest_search.stats().exams - before < N and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        events: list[events_pb2.EmbeddingCreated] = []
        while time.monotonic() < deadline:
            events = [events_pb2.EmbeddingCreated.FromString(r.value) for r in read_topic(s, s.kafka_topic_embedded)]
            if {e.study_key for e in events} >= set(keys):
                break
            time.sleep(1)
        # Graceful stop: SIGTERM finishes the study in flight, leaves the group, exits 0.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Exactly one index entry per study: none lost, none duplicated.
    assert ingest_search.stats().exams - before == N
    assert all(ingest_search.get(k).exam.study_key == k for k in keys)
    # At least one event per study; repeats (a kill between publish and commit) carry the same event_id.
    by_key: dict[str, set[str]] = {}
    for e in events:
        by_key.setdefault(e.study_key, set()).add(e.event_id)
    assert set(by_key) == set(keys)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert not read_topic(s, s.kafka_topic_dead_letter) or all(
        events_pb2.DeadLetter.FromString(r.value).stage == "dedupe" for r in read_topic(s, s.kafka_topic_dead_letter))
    text = log.read_text()
    assert "ingest worker stopped" in text
    for v in variants:
        assert v.patient_id not in text and v.patient_name.split("^")[0] not in text
