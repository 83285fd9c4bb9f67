"""A worker started while the broker cannot be reached waits for it (backoff, one warning per attempt,
/ready answering 503 with what it waits for) instead of exiting, starts when it answers, and honours a stop
during the wait. Stand-ins for Kafka's clients; the real broker: tests/integration/ingest_svc/
test_broker_down_at_start.py."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import pytest
from kafka.errors import KafkaTimeoutError

from cmr.config import Settings
from cmr.rpc.health import http_health
from ingest_svc.health import serve_health
from ingest_svc.metrics import IngestMetrics
from ingest_svc.worker import IngestWorker

BOOTSTRAP = "127.0.0.1:19092"


class _Pipeline:
    def context(self) -> None:
        return None


class _Client:
    def close(self, timeout: float = 0) -> None:
        pass


def _worker(monkeypatch: pytest.MonkeyPatch, fail_times: int) -> tuple[IngestWorker, list[tuple[bool, str]]]:
    settings = Settings(kafka_bootstrap=BOOTSTRAP, ingest_backoff_s=0.01, ingest_backoff_max_s=0.02)
    worker = IngestWorker(settings, pipeline=_Pipeline())  # type: ignore[arg-type]
    seen: list[tuple[bool, str]] = []

    def ensure_topics(s: Settings, timeout_s: float = 30.0) -> None:
        seen.append(worker.metrics.readiness.state())
        if len(seen) <= fail_times:
            raise KafkaTimeoutError(f"Unable to bootstrap from ['{BOOTSTRAP}']")

    monkeypatch.setattr("ingest_svc.worker.ensure_topics", ensure_topics)
    monkeypatch.setattr("ingest_svc.worker.make_producer", lambda s: _Client())
    monkeypatch.setattr("ingest_svc.worker.make_consumer", lambda s: _Client())
    return worker, seen


def test_waits_for_the_broker_with_one_line_per_attempt(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ingest_svc.worker")
    worker, seen = _worker(monkeypatch, fail_times=3)
    worker._open()  # noqa: SLF001 - the start-up step under test
    assert len(seen) == 4 and worker._consumer is not None  # noqa: SLF001
    waits = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == 3 and all(f"waiting for Kafka at {BOOTSTRAP}: attempt" in w for w in waits)
    assert "KafkaTimeoutError" in waits[0] and "next attempt in" in waits[0]
    assert seen[0] == (False, f"connecting to Kafka at {BOOTSTRAP}")
    assert seen[3] == (False, f"waiting for Kafka at {BOOTSTRAP} (attempt 3: KafkaTimeoutError)")
    assert worker.metrics.value("cmr_ingest_retries_total", stage="broker") == 3
    assert worker.metrics.value("cmr_ingest_ready") == 0  # ready once run() consumes


def test_a_stop_during_the_wait_ends_the_worker_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    worker, seen = _worker(monkeypatch, fail_times=10**6)
    monkeypatch.setattr(worker, "_sleep", lambda s: (worker.request_stop(), type(worker)._sleep(worker, s)))
    stats = worker.run()  # SIGTERM's effect during the backoff pause: returns, no exception, nothing handled
    assert stats.handled == 0 and len(seen) == 1
    assert worker.metrics.readiness.state() == (False, "stopped")


def test_ready_endpoint_answers_503_with_the_reason_then_200() -> None:
    metrics = IngestMetrics()
    server = serve_health(0, "127.0.0.1", metrics.registry, metrics.readiness.state)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        metrics.readiness.waiting(f"waiting for Kafka at {BOOTSTRAP} (attempt 2: KafkaTimeoutError)")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/ready", timeout=5)  # noqa: S310 - local test server
        assert err.value.code == 503 and b"waiting for Kafka" in err.value.read()
        health = http_health(base + "/ready")  # what `cmr up` / `cmr status` show
        assert not health.ok and health.detail.startswith("HTTP 503 waiting for Kafka at")
        metrics.readiness.consuming("consuming cmr.exams.new")
        assert http_health(base + "/ready").ok
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:  # noqa: S310
            assert "cmr_ingest_ready 1.0" in r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
