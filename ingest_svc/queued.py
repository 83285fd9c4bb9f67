"""Which of a journal's publishes are still waiting on the NewExam topic, so that `cmr ingest --resume` sends
only what was really lost.

Why: the index cannot tell a study still queued (published, the worker has not reached it yet) from one a broker
restart lost; resume used to send both again, so after a publisher kill with a long backlog the worker fetched,
parsed and de-identified every waiting study twice. A journaled publish is still queued when
- the topic still holds a record at its journaled partition and offset with the same event id (a broker that
  came back empty, or retention, leaves no record there; a restarted broker's new records carry other ids), and
- the worker group has not consumed past it (its committed offset is at or before the record's: a record
  consumed and dead-lettered, or consumed by a worker that lost it, is not waiting any more).
A record the worker is processing right now counts as queued: it is either indexed soon or, if that worker
dies, read again from the committed offset. Reading uses manual assignment, so the ingest group is not joined
(no rebalance) and nothing is committed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from cmr.config import Settings
from cmr.kafka_io import make_inspection_consumer
from ingest_svc.journal import PUBLISHED, JournalEntry
from ingest_svc.messages import IngestFailure, decode_new_exam

# A broker that does not answer in this long is away: resume says so rather than waiting kafka-python's 30 s.
BOOTSTRAP_TIMEOUT_MS = 5000


def still_queued(settings: Settings, entries: Sequence[JournalEntry], timeout_s: float = 30.0) -> set[str]:
    """Paths of the `entries` whose NewExam record still waits on the topic for the worker group."""
    journaled = [e for e in entries if e.status == PUBLISHED and e.event_id and e.partition >= 0 and e.offset >= 0]
    if not journaled:
        return set()
    # The worker group's id only to read its committed offsets: the consumer never subscribes or commits.
    consumer = make_inspection_consumer(settings, group_id=settings.kafka_group_id, client_id="cmr-ingest-resume",
                                        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    try:
        topic = settings.kafka_topic_new
        partitions = consumer.partitions_for_topic(topic) or set()
        by_partition: dict[TopicPartition, list[JournalEntry]] = {}
        for e in journaled:
            if e.partition in partitions:
                by_partition.setdefault(TopicPartition(topic, e.partition), []).append(e)
        deadline = time.monotonic() + timeout_s
        queued: set[str] = set()
        for tp, waiting in by_partition.items():
            queued |= _queued_in_partition(consumer, tp, waiting, deadline)
        return queued
    finally:
        consumer.close(autocommit=False)


def _queued_in_partition(consumer: KafkaConsumer, tp: TopicPartition, entries: list[JournalEntry],
                         deadline: float) -> set[str]:
    consumer.assign([tp])
    first = max(consumer.beginning_offsets([tp])[tp], consumer.committed(tp) or 0)
    end = consumer.end_offsets([tp])[tp]
    candidates = {e.offset: e for e in entries if first <= e.offset < end}
    if not candidates:
        return set()
    consumer.seek(tp, min(candidates))
    last = max(candidates)
    event_at: dict[int, str] = {}
    while consumer.position(tp) <= last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] up to offset {last} took too long")
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                if r.offset in candidates:
                    try:
                        event_at[r.offset] = decode_new_exam(r.value).event_id
                    except IngestFailure:
                        pass  # not our record: that study is not waiting there
    return {e.path for o, e in candidates.items() if event_at.get(o) == e.event_id}


__all__ = ["still_queued"]
