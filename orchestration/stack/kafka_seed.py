"""Demo seeding through Kafka (the production path): each study is published as a cmr.v1.NewExam (a
server-side path, its impression and labels) to the new-exams topic with the ingest worker's own publisher
(`ingest_svc.producer.ExamPublisher`, keyed by study), and the ingest worker indexes it (de-identify, encode,
upsert, event)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmr.config import Settings


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        from cmr.kafka_io import ensure_topics
        from ingest_svc.producer import ExamPublisher

        ensure_topics(settings, timeout_s=settings.up_start_timeout_s)  # the broker may still be starting
        self.publisher = ExamPublisher(settings)

    def add(self, folder: Path, record: dict[str, Any]) -> None:
        from cmr.data.records import labels_of
        from ingest_svc.producer import Report

        self.publisher.publish_path(folder, report=Report(record["impression"], tuple(labels_of(record))),
                                    source="cmr-up-demo")

    def flush(self) -> None:
        self.publisher.producer.flush()

    def close(self) -> None:
        self.publisher.close()
