"""Demo seeding through Kafka (the production path): each study is published as a cmr.v1.NewExam (a
server-side path, its impression and labels) to the new-exams topic with the ingest worker's own producer,
and the ingest worker indexes it (de-identify, encode, upsert, event)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmr.config import Settings


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        from ingest_svc.kafka_io import ensure_topics, make_producer

        self.settings = settings
        ensure_topics(settings, timeout_s=settings.up_start_timeout_s)
        self.producer = make_producer(settings, client_id="cmr-up-seed")

    def add(self, folder: Path, record: dict[str, Any]) -> None:
        from cmr.stack.seed import labels_of
        from ingest_svc.messages import new_exam, study_ref

        msg = new_exam(study_ref(path=str(folder)), report_text=record["impression"], labels=labels_of(record),
                       source="cmr-up-demo")
        self.producer.send(self.settings.kafka_topic_new, key=folder.name.encode(), value=msg.SerializeToString())

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()
