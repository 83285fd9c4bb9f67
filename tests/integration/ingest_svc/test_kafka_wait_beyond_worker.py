"""The broker waits beyond the ingest worker, with a real Tansu broker started late and then SIGKILLed and
started again on the same port (memory storage: it comes back empty, without topics or producer ids): the
audit trail's Kafka publisher and the Orthanc bridge's publishing both wait for it (cmr/kafka_wait.py) and
deliver everything produced meanwhile; an audit append never waits for Kafka."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.kafka_io import read_topic
from cmr.rpc.ports import free_ports
from cmr.security.audit import AuditEntry, AuditLog, KafkaAuditPublisher
from ingest_svc.broker import TansuBroker
from ingest_svc.messages import new_exam, study_ref
from ingest_svc.orthanc import OrthancBridge

pytestmark = pytest.mark.slow


def _until(cond, timeout_s: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not cond():
        time.sleep(0.1)
    return bool(cond())


def _subjects(s: Settings) -> list[str]:
    return [json.loads(r.value)["subject"] for r in read_topic(s, s.kafka_topic_audit, timeout_s=5)]


def test_audit_and_bridge_wait_for_a_late_then_restarted_broker(tmp_path: Path) -> None:
    broker = TansuBroker(port=free_ports(1)[0], data_dir=tmp_path / "broker")  # down for now
    s = Settings(kafka_bootstrap=broker.bootstrap, ingest_backoff_s=0.2, ingest_backoff_max_s=1.0,
                 kafka_topic_audit="cmr.audit.wait", kafka_topic_new="cmr.new.wait", kafka_partitions=1)
    publisher = KafkaAuditPublisher(s)
    audit = AuditLog(tmp_path / "search.jsonl", "search", publisher, fsync=False)
    bridge = OrthancBridge(s, orthanc_url="http://127.0.0.1:9")  # starts without a broker

    def entry(i: int) -> AuditEntry:
        return AuditEntry(service="", action="search", method="/m", subject=f"u{i}", roles=[], status="OK")

    try:
        t0 = time.monotonic()
        for i in range(3):
            audit.append(entry(i))
        assert time.monotonic() - t0 < 2  # appended at once: the file has them, Kafka waits
        assert _until(lambda: publisher.retries >= 1, 30)
        broker.start()
        assert _until(lambda: publisher.published == 3)
        assert _subjects(s) == ["u0", "u1", "u2"]
        bridge.publish(new_exam(study_ref(uri="http://pacs/studies/1.2.3"), source="orthanc"), "1.2.3")

        broker.kill()  # everything it held is gone, and it forgets the producers
        broker.start()
        for i in range(3, 5):
            audit.append(entry(i))
        assert _until(lambda: publisher.published == 5)
        assert _subjects(s) == ["u3", "u4"]  # the restarted broker holds only what came after
        assert publisher.retries >= 2 and publisher.dropped == publisher.failed == 0
        retries = bridge.kafka_retries
        bridge.publish(new_exam(study_ref(uri="http://pacs/studies/1.2.4"), source="orthanc"), "1.2.4")
        assert bridge.kafka_retries > retries  # its old producer failed (the broker forgot it); a new one published
        assert len(read_topic(s, s.kafka_topic_new, timeout_s=5)) == 1  # published to the restarted broker
    finally:
        audit.close()
        bridge.close()
        broker.stop()
