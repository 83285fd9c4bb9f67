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
        self.settings = settings
        self.publisher: Any = ExamPublisher(settings)

    def reconnect(self) -> None:
        """A new producer (and the topics again): a restarted broker knows neither the old producer's id nor,
        with memory storage, the topics."""
        from cmr.kafka_io import ensure_topics
        from ingest_svc.producer import ExamPublisher

        old, self.publisher = self.publisher, None
        if old is not None:
            try:
                old.producer.close(timeout=0)
            except Exception:  # noqa: BLE001 - the old producer is being dropped either way
                pass
        ensure_topics(self.settings, timeout_s=3)  # KafkaError while the broker is still away: retried
        self.publisher = ExamPublisher(self.settings)

    def _publisher(self) -> Any:
        if self.publisher is None:  # a reconnect failed: try again now
            self.reconnect()
        return self.publisher

    def add(self, folder: Path, record: dict[str, Any]) -> None:
        from cmr.data.records import labels_of
        from ingest_svc.producer import Report

        self._publisher().publish_path(folder, report=Report(record["impression"], tuple(labels_of(record))),
                                    source="cmr-up-demo")

    def flush(self) -> None:
        self._publisher().producer.flush()

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
