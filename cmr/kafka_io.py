"""Kafka clients of the platform (the ingestion and the audit trail), with the settings that matter for delivery
(kafka-python, Kafka protocol only: Tansu in tests and on one machine, Apache Kafka in production). In the core
so that cmr.security.audit and ingest_svc share one producer setup without the core importing a service.

- producers: acks=all, idempotent-safe retries, each send awaited (a study's event is durable before its
  NewExam offset is committed);
- the worker's consumer: manual commits (after the event is published), one record per poll (a rebalance or
  crash repeats at most the study in flight), and a low max_poll_interval_ms because Tansu's JoinGroup waits
  for the rebalance timeout that kafka-python derives from it (see ARCHITECTURE.md, environment recipes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from cmr.config import Settings

log = logging.getLogger(__name__)


def bootstrap_servers(settings: Settings) -> list[str]:
    """`CMR_KAFKA_BOOTSTRAP` ("host:port,host:port") as the list kafka-python takes."""
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


def topics(settings: Settings) -> list[str]:
    return [settings.kafka_topic_new, settings.kafka_topic_embedded, settings.kafka_topic_dead_letter]


def ensure_topics(settings: Settings, names: Iterable[str] | None = None, timeout_s: float = 30.0) -> None:
    """Create the ingestion topics if they do not exist (same partition count for all, so one study's records
    share a partition number across topics). Retries while the broker is starting."""
    wanted = list(names or topics(settings))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # bootstrap within timeout_s (kafka-python's own default is 30 s): a short probe stays short
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings), client_id="cmr-ingest-admin",
                                     request_timeout_ms=settings.kafka_request_timeout_ms,
                                     bootstrap_timeout_ms=int(min(30.0, max(1.0, timeout_s)) * 1000))
            try:
                existing = set(admin.list_topics())
                missing = [n for n in wanted if n not in existing]
                if missing:
                    try:
                        admin.create_topics([NewTopic(n, settings.kafka_partitions, 1) for n in missing])
                        log.info("created topics %s (%d partitions)", missing, settings.kafka_partitions)
                    except TopicAlreadyExistsError:
                        pass  # another worker created them between list and create
                return
            finally:
                admin.close()
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.info("broker not ready (%s); retrying", type(exc).__name__)
            time.sleep(0.5)


def make_producer(settings: Settings, client_id: str = "cmr-ingest") -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap_servers(settings), client_id=client_id, acks="all", retries=5,
                         retry_backoff_ms=200, linger_ms=5, max_in_flight_requests_per_connection=1,
                         request_timeout_ms=settings.kafka_request_timeout_ms,
                         max_request_size=16 * 1024**2)


def make_consumer(settings: Settings, *, group_id: str | None = None, client_id: str = "cmr-ingest-worker",
                  topics_: Iterable[str] | None = None, auto_commit: bool = False,
                  offset_reset: str = "earliest") -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings), client_id=client_id,
        group_id=group_id if group_id is not None else settings.kafka_group_id,
        enable_auto_commit=auto_commit, auto_offset_reset=offset_reset, max_poll_records=1,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.kafka_session_timeout_ms // 5),
        request_timeout_ms=max(settings.kafka_request_timeout_ms, settings.kafka_session_timeout_ms + 5000),
        fetch_max_bytes=16 * 1024**2, max_partition_fetch_bytes=16 * 1024**2)
    consumer.subscribe(list(topics_ or [settings.kafka_topic_new]))
    return consumer


def make_inspection_consumer(settings: Settings, group_id: str | None = None, **extra: Any) -> KafkaConsumer:
    """A consumer that reads a topic without joining the group or committing (`read_topic`, resume's queued
    check): manual commits only, with room for whole 16 MB exam records."""
    return KafkaConsumer(bootstrap_servers=bootstrap_servers(settings), group_id=group_id, enable_auto_commit=False,
                         request_timeout_ms=settings.kafka_request_timeout_ms + 5000,
                         fetch_max_bytes=16 * 1024**2, max_partition_fetch_bytes=16 * 1024**2, **extra)


def read_topic(settings: Settings, topic: str, timeout_s: float = 10.0) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning to its current end, without a consumer group (inspection:
    `cmr ingest --dead-letters`, tests)."""
    consumer = make_inspection_consumer(settings)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


__all__ = ["bootstrap_servers", "ensure_topics", "make_consumer", "make_inspection_consumer", "make_producer",
           "read_topic", "topics"]
