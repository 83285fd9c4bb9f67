"""`cmr ingest --resume` sends again only what no longer waits on the topic, with a real broker (embedded Tansu,
its own) and no worker: published studies still queued are not re-sent; one the worker group has consumed past
(consumed, then lost or dead-lettered) is; after the broker restarts empty (memory storage) every one is."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from rich.console import Console

from cmr.config import Settings
from cmr.kafka_io import read_topic
from ingest_cases import make_variants
from ingest_svc.broker import TansuBroker
from ingest_svc.journal import IngestJournal, latest_per_study, read_journal
from ingest_svc.producer import ExamPublisher, Report
from ingest_svc.queued import still_queued
from orchestration.cli.ingest_resume import resume_journal
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N = 6


def _commit(settings: Settings, partition: int, offset: int) -> None:
    """The worker group's committed offset, as if a worker had consumed the partition up to `offset`."""
    consumer = KafkaConsumer(bootstrap_servers=[settings.kafka_bootstrap], group_id=settings.kafka_group_id,
                             enable_auto_commit=False)
    try:
        tp = TopicPartition(settings.kafka_topic_new, partition)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close(autocommit=False)


def _resume(settings: Settings, journal: Path) -> tuple[int, str]:
    console = Console(record=True, width=300)
    code = resume_journal(settings, journal, console)
    return code, console.export_text()


def test_resume_sends_only_what_no_longer_waits_on_the_topic(ingest_env: Settings, ingest_search: SearchClient,
                                                             synth_dir: Path, ingest_root: Path,
                                                             tmp_path: Path) -> None:
    variants = make_variants(synth_dir, ingest_root / "resume_queued", N, start=4000)
    journal = tmp_path / "journal.jsonl"
    with TansuBroker(data_dir=tmp_path / "broker") as broker:
        s = ingest_env.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        with IngestJournal(journal) as j, ExamPublisher(s, journal=j) as pub:
            for v in variants:
                pub.publish_path(v.path, report=Report(v.impression, v.labels))
        entries = latest_per_study(read_journal(journal))
        assert still_queued(s, entries) == {str(v.path) for v in variants}  # no worker: all six wait

        code, out = _resume(s, journal)
        assert code == 0 and f"{N} still queued" in out and "0 to publish" in out, out
        assert len(read_topic(s, s.kafka_topic_new)) == N  # nothing sent twice

        # The group consumed the first study's partition up to and including it (then lost it): not waiting.
        first = entries[0]
        _commit(s, first.partition, first.offset + 1)
        consumed = {e.path for e in entries if e.partition == first.partition and e.offset <= first.offset}
        code, out = _resume(s, journal)
        assert code == 0 and f"{N - len(consumed)} still queued" in out, out
        assert len(read_topic(s, s.kafka_topic_new)) == N + len(consumed)

        broker.kill()  # memory storage: it comes back empty
        broker.start()
        code, out = _resume(s, journal)
        assert code == 0 and "0 still queued" in out and f"{N} to publish" in out, out
        sent = read_topic(s, s.kafka_topic_new)
        assert len(sent) == N
        assert still_queued(s, latest_per_study(read_journal(journal))) == {str(v.path) for v in variants}
