"""The ingest worker started while its broker is down (a real `python -m ingest_svc` process and a real Tansu
broker, started later on the port the worker was given): the worker neither exits nor prints a traceback; it
waits with backoff, one log line per attempt naming the broker, /ready answering 503 with what it waits for;
once the broker is up it consumes, and every study then published is indexed once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.crash_ingest import WorkerProcess
from cmr.config import Settings
from cmr.rpc.health import http_health
from cmr.rpc.keys import study_key
from cmr.rpc.ports import free_ports
from ingest_cases import make_variants, wait_until, worker_env
from ingest_svc.broker import TansuBroker
from ingest_svc.journal import indexed_by
from ingest_svc.producer import ExamPublisher, Report
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N = 2
WAITING = "waiting for Kafka at"


def test_worker_started_before_the_broker_waits_then_ingests_everything(
        ingest_env: Settings, ingest_search: SearchClient, synth_dir: Path, ingest_root: Path,
        tmp_path: Path) -> None:
    variants = make_variants(synth_dir, ingest_root / "broker_down", N, start=4000)
    broker_port, metrics_port = free_ports(2)
    broker = TansuBroker(port=broker_port, data_dir=tmp_path / "broker")  # not started: the broker is down
    s = ingest_env.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    env = {**worker_env(s), "CMR_INGEST_METRICS_PORT": str(metrics_port), "CMR_MEASURE": "false",
           "CMR_INGEST_BACKOFF_S": "0.5", "CMR_INGEST_BACKOFF_MAX_S": "2",
           "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "5000"}  # Tansu's JoinGroup waits this long: keep the test short
    worker = WorkerProcess(env, tmp_path / "worker.log")
    ready = f"http://127.0.0.1:{metrics_port}/ready"
    keys = [study_key(v.uid, s.study_key_secret) for v in variants]
    before = ingest_search.stats().exams
    worker.spawn()
    try:
        # it waits: a failed attempt, alive, reporting not ready with the reason (that it goes on trying shows
        # below: it consumes once the broker is up; several attempts: tests/unit/ingest_svc/test_ingest_broker_wait.py)
        wait_until(lambda: WAITING in worker.tail(20_000) or not worker.alive(), 120,
                   "a failed attempt to reach the broker")
        assert worker.alive(), worker.tail()
        # it yields the cores to searches: its decoding and segmentation run at CMR_INGEST_NICE (default 10)
        assert worker.proc is not None
        assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == max(s.ingest_nice, os.nice(0))
        health = http_health(ready)
        assert not health.ok and f"{WAITING} {broker.bootstrap}" in health.detail, health.detail
        with broker:
            with ExamPublisher(s) as pub:  # published as soon as the broker is up, maybe before the worker joins
                for v in variants:
                    pub.publish_path(v.path, report=Report(v.impression, v.labels))
            wait_until(lambda: ingest_search.stats().exams - before >= N or not worker.alive(), 120,
                       f"{N} studies indexed")
            assert worker.alive(), worker.tail()
            assert http_health(ready).ok
            assert worker.stop() == 0, worker.tail()  # SIGTERM: a clean exit
    finally:
        worker.kill()

    assert indexed_by(ingest_search)(keys) == set(keys)  # nothing published after the outage was lost
    assert ingest_search.stats().exams - before == N  # nor indexed twice
    log = worker.log.read_text()
    waits = [line for line in log.splitlines() if WAITING in line]
    assert all(broker.bootstrap in w and "attempt" in w and "next attempt in" in w for w in waits)
    # one line per attempt: kafka-python's own connection errors (several per attempt) are kept out
    assert "Traceback" not in log and "ECONNREFUSED" not in log and "cannot start" not in log
    assert f"ingest worker stopped: {N} indexed" in log
