"""Seeding the demo index in the background (the `seed` part of `cmr up`), so the UI is usable while it fills.

Studies are generated one at a time if absent (resumable: a study with its record is kept) and indexed as
they appear, either
- via Kafka: published to the new-exams topic and indexed by the ingest worker (the production path), or
- direct (the FALLBACK while no ingest worker is installed): encoded by EncoderService from a server-side ref
  and written with SearchService.Upsert.
A study already in the index (its study key answers Get) is skipped, so a second `cmr up` reuses the data.
Via Kafka the seeder ends only when the index holds every study it sent: it rides out restarts of the search
service and the broker, and re-publishes what a broker restart lost (orchestration/stack/seed_confirm.py).
The cine previews of the UI are rendered as studies are indexed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmr.config import Settings
from cmr.data.records import labels_of
from cmr.layout import StackLayout
from cmr.rpc.messages import to_vector
from cmr.synth.generate import REPORTS_FILE, StudyRequest, generate_study
from cmr.v1 import search_pb2

log = logging.getLogger(__name__)

BATCH = 8


def demo_records(demo_dir: Path, n: int, seed: int) -> Any:
    """Yield the record of each demo study, generating the ones that are missing (resumable)."""
    for i in range(n):
        yield generate_study(StudyRequest(demo_dir, seed, i, None, "train"))


def write_reports(demo_dir: Path, records: list[dict[str, Any]]) -> None:
    tmp = demo_dir / (REPORTS_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["index"])))
    os.replace(tmp, demo_dir / REPORTS_FILE)


class DirectIndexer:
    """The fallback: EncoderService (server-side ref) + SearchService.Upsert, in small batches."""

    def __init__(self, settings: Settings) -> None:
        from encoder_svc.client import EncoderClient
        from search_svc.client import SearchClient

        self.encoder = EncoderClient(settings.encoder_url, settings=settings, timeout_s=300)
        self.search = SearchClient(settings.search_url, settings=settings, timeout_s=300)
        self.pending: list[search_pb2.ExamUpsert] = []

    def add(self, folder: Path, record: dict[str, Any]) -> None:
        enc = self.encoder.encode_study_ref(path=str(folder))
        text = self.encoder.encode_texts([record["impression"]])[0]
        self.pending.append(search_pb2.ExamUpsert(
            study_instance_uid=enc.study.study_instance_uid, image_embedding=to_vector(enc.embedding),
            report_embedding=to_vector(text), impression=record["impression"], study_date=enc.study.study_date,
            vendor=enc.study.manufacturer, field_strength_t=enc.study.field_strength_t,
            views=list(enc.study.slots_present), labels=labels_of(record), model_version=enc.model.version,
            measurements=enc.measurements, parts=enc.parts))  # parts: an attention model's, for ExamHit.why
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.search.upsert(self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.encoder.close()
        self.search.close()


def seed(settings: Settings, via: str, *, say: Callable[[str], None] = print, previews: bool = True) -> int:
    """Generate and index the demo studies; returns how many were sent for indexing."""
    from cmr.rpc.keys import study_key
    from ingest_svc.journal import indexed_by
    from orchestration.stack.seed_confirm import confirm_indexed, patiently
    from search_svc.client import SearchClient

    layout = StackLayout.from_settings(settings)
    demo = layout.demo_dir(settings)
    demo.mkdir(parents=True, exist_ok=True)
    n = settings.up_demo_studies
    say(f"seeding {n} demo studies from {demo} via {via}"
        + (" (FALLBACK: direct upserts, no ingest worker)" if via == "direct" else ""))
    t0 = time.monotonic()
    with SearchClient(settings.search_url, settings=settings, timeout_s=120) as search:
        search.wait_ready(settings.up_start_timeout_s)
        if via == "kafka":
            from orchestration.stack.kafka_seed import KafkaPublisher

            indexer: Any = KafkaPublisher(settings)
        else:
            indexer = DirectIndexer(settings)
            indexer.encoder.wait_ready(settings.up_start_timeout_s)
        cine = None
        if previews and settings.ui_cine:
            from ui.cine import render_preview

            cine = render_preview
        records: list[dict[str, Any]] = []
        sent = skipped = 0
        wait_s = settings.up_start_timeout_s
        held = indexed_by(search)
        sent_keys: dict[str, Callable[[], None]] = {}  # key -> its re-publish

        def publish(folder: Path, rec: dict[str, Any]) -> None:
            patiently(lambda: indexer.add(folder, rec), "the broker" if via == "kafka" else "the services", wait_s,
                      say, recover=getattr(indexer, "reconnect", None))

        try:
            for rec in demo_records(demo, n, settings.up_demo_seed):
                records.append(rec)
                folder = demo / rec["folder"]
                key = study_key(rec["study_instance_uid"], settings.study_key_secret)
                if key in patiently(lambda: held([key]), "the search service", wait_s, say):
                    skipped += 1
                else:
                    publish(folder, rec)
                    sent_keys[key] = lambda folder=folder, rec=rec: publish(folder, rec)  # type: ignore[misc]
                    sent += 1
                if cine is not None:
                    thumb = layout.thumb_dir(settings) / f"{key}.gif"
                    if not thumb.exists():
                        try:
                            cine(folder, thumb)
                        except Exception as exc:  # noqa: BLE001 - a preview is never worth stopping for
                            log.warning("preview of %s: %s", folder, exc)
                if len(records) % 16 == 0:
                    write_reports(demo, records)
                    say(f"{len(records)}/{n} studies ready, {sent} sent, {skipped} already indexed "
                        f"({time.monotonic() - t0:.0f} s)")
            if via == "kafka" and sent_keys:
                patiently(indexer.flush, "the broker", wait_s, say, recover=getattr(indexer, "reconnect", None))
                say(f"waiting for the index to hold the {len(sent_keys)} studies sent")
                missing = confirm_indexed(
                    sent_keys, lambda keys: patiently(lambda: held(keys), "the search service", wait_s, say),
                    lambda: patiently(lambda: int(search.stats().exams), "the search service", wait_s, say),
                    stall_s=settings.up_seed_stall_s, rounds=5, say=say)
                if missing:
                    raise SeedIncomplete(f"{len(missing)} of the {len(sent_keys)} studies sent were never indexed "
                                         "(is the ingest worker running? see its log and `cmr ingest "
                                         "--dead-letters`)")
        finally:
            indexer.close()
            if records:
                write_reports(demo, records)
    say(f"done: {len(records)} studies, {sent} sent for indexing, {skipped} already indexed, "
        f"{time.monotonic() - t0:.0f} s")
    return sent


class SeedIncomplete(RuntimeError):
    """Studies were sent but the index never confirmed them."""
