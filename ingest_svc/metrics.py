"""Prometheus metrics of the ingest worker (served on CMR_INGEST_METRICS_PORT by `cmr serve ingest`).

    cmr_ingest_messages_total{outcome}        indexed | duplicate | dead_letter   (throughput: rate() of it)
    cmr_ingest_dead_letters_total{stage}      why studies were refused
    cmr_ingest_retries_total{stage}           transient failures retried
    cmr_ingest_stage_seconds{stage}           fetch, parse, deidentify, assemble, measure, encode, upsert,
                                              score, publish
    cmr_ingest_study_seconds                  a whole message, poll to commit
    cmr_ingest_consumer_lag{partition}        records behind the partition's end (high-water mark - position)
    cmr_ingest_last_commit_timestamp_seconds  liveness: when an offset was last committed
    cmr_ingest_ready                          1 while consuming, 0 while starting or waiting (ingest_svc/health.py)
Each worker has its own registry, so several in one process (tests) do not collide. The same port answers
/ready: 200 while the worker consumes, 503 naming what it waits for.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingest_svc.health import Readiness, serve_health

_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("cmr_ingest_messages", "NewExam messages handled, by outcome", ["outcome"], registry=r)
        self.dead_letters = Counter("cmr_ingest_dead_letters", "messages sent to the dead-letter topic",
                                    ["stage"], registry=r)
        self.retries = Counter("cmr_ingest_retries", "transient failures retried", ["stage"], registry=r)
        self.stage_seconds = Histogram("cmr_ingest_stage_seconds", "time per pipeline stage", ["stage"],
                                       buckets=_STAGE_BUCKETS, registry=r)
        self.study_seconds = Histogram("cmr_ingest_study_seconds", "time per message, poll to commit",
                                       buckets=_STAGE_BUCKETS, registry=r)
        self.lag = Gauge("cmr_ingest_consumer_lag", "records behind the end of the partition", ["partition"],
                         registry=r)
        self.last_commit = Gauge("cmr_ingest_last_commit_timestamp_seconds", "unix time of the last commit",
                                 registry=r)
        self.readiness = Readiness(r)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Expose /metrics and /ready over HTTP (a daemon thread); the port (a free one when `port` is 0)."""
        return int(serve_health(port, addr, self.registry, self.readiness.state).server_port)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (tests, the benchmark); 0 when it was never set."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else float(v)


__all__ = ["IngestMetrics"]
