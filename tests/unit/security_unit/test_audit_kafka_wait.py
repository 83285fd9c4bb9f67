"""The audit trail's Kafka publisher with the broker away (cmr.security.audit.KafkaAuditPublisher): appends
never wait for Kafka; entries queue (bounded) while the broker is down at the start or restarting, and are all
published, in order, once it answers, with a new producer per attempt (a restarted broker does not know the
old producer's id); a full queue counts what it could not hold; close() during an outage returns and says how
many were not published. The real broker: tests/integration/ingest_svc/test_kafka_wait_beyond_worker.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from kafka.errors import (
    BrokerNotAvailableError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    UnknownProducerIdError,
)

from cmr.config import Settings
from cmr.security.audit import AuditEntry, AuditLog, KafkaAuditPublisher

FAST = Settings(ingest_backoff_s=0.01, ingest_backoff_max_s=0.02, kafka_bootstrap="127.0.0.1:9")


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class _Broker:
    """Stands for Kafka: `up` or not; `restarted` makes the current producer fail for good (its id is unknown)."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.received: list[str] = []
        self.producers = 0
        self.generation = 0

    def connect(self) -> _Producer:
        if not self.up.is_set():
            raise BrokerNotAvailableError()
        self.producers += 1
        return _Producer(self)


class _Producer:
    def __init__(self, broker: _Broker) -> None:
        self.broker, self.generation = broker, broker.generation

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        if not self.broker.up.is_set():
            return _Future(KafkaTimeoutError("no broker"))
        if self.generation != self.broker.generation:
            return _Future(UnknownProducerIdError())
        self.broker.received.append(json.loads(value)["subject"])
        return _Future(None)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def _entry(i: int) -> AuditEntry:
    return AuditEntry(service="search", action="search", method="/m", subject=f"u{i}", roles=[], status="OK")


def _wait(cond, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_entries_wait_for_a_broker_down_at_start_and_for_a_restart(tmp_path: Path) -> None:
    broker = _Broker()
    publisher = KafkaAuditPublisher(FAST, connect=broker.connect)
    log = AuditLog(tmp_path / "search.jsonl", "search", publisher, fsync=False)
    for i in range(5):
        log.append(_entry(i))  # returns although the broker is down (the file has the entry)
    assert _wait(lambda: publisher.retries >= 3)  # it keeps trying
    assert broker.received == [] and publisher.published == 0
    broker.up.set()
    assert _wait(lambda: publisher.published == 5)
    assert broker.received == [f"u{i}" for i in range(5)]  # all, in order
    broker.generation += 1  # the broker restarted: the producer's id is unknown to it
    for i in range(5, 8):
        log.append(_entry(i))
    assert _wait(lambda: publisher.published == 8)
    assert broker.received[5:] == ["u5", "u6", "u7"] and broker.producers >= 2  # a new producer after it
    log.close()
    assert publisher.dropped == publisher.failed == publisher.unpublished == 0
    assert [json.loads(x)["subject"] for x in (tmp_path / "search.jsonl").read_text().splitlines()] == \
        [f"u{i}" for i in range(8)]


def test_a_full_queue_counts_what_it_could_not_hold_and_close_gives_up(tmp_path: Path) -> None:
    broker = _Broker()  # never up
    publisher = KafkaAuditPublisher(FAST, max_queued=3, connect=broker.connect)
    publisher.publish(_entry(0))
    assert _wait(lambda: publisher.retries >= 1)  # the thread holds entry 0 and waits for the broker
    for i in range(1, 10):
        publisher.publish(_entry(i))
    assert publisher.pending == 3 and publisher.dropped == 6  # three queued; the rest counted, not queued
    t0 = time.monotonic()
    publisher.close(timeout_s=0.5)
    assert time.monotonic() - t0 < 5  # the outage does not hold the service's shutdown
    assert publisher.published == 0 and publisher.unpublished + publisher.dropped == 10


@pytest.mark.parametrize("failure", [TopicAuthorizationFailedError(), ValueError("a bug")],
                         ids=["no retry can fix it", "unexpected"])
def test_a_batch_that_fails_for_good_is_dropped_and_the_thread_goes_on(failure: Exception) -> None:
    class Refusing(_Producer):
        def send(self, topic: str, key: bytes, value: bytes) -> _Future:
            if json.loads(value)["subject"] != "u0":
                return super().send(topic, key, value)
            if isinstance(failure, TopicAuthorizationFailedError):
                return _Future(failure)  # the broker's answer
            raise failure  # a bug in the send itself

    broker = _Broker()
    broker.up.set()
    publisher = KafkaAuditPublisher(FAST, connect=lambda: Refusing(broker))
    publisher.publish(_entry(0))
    assert _wait(lambda: publisher.failed == 1)
    publisher.publish(_entry(1))
    assert _wait(lambda: publisher.published == 1)
    publisher.close()
    assert broker.received == ["u1"] and publisher.retries == 0  # not retried: it would fail again
