"""The ingest worker against a real Tansu broker, the real encoder (Triton) and search services:
50 good studies and 5 bad ones; one index entry and one event per study; dead letters with reasons; no
patient identifiers anywhere; the worker survives it all."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.kafka_io import make_consumer, read_topic
from cmr.quant.segmenter import load_segmenter
from cmr.quant.volumes import MEASUREMENT_FIELDS, mosteller_bsa
from cmr.rpc.ports import free_ports
from cmr.rpc.keys import study_key
from cmr.v1 import common_pb2, events_pb2
from ingest_cases import (
    make_real_variant,
    make_variant,
    make_variants,
    not_dicom_study,
    single_frame_records,
    truncated_study,
)
from realdata_paths import SUNNYBROOK_CONTOURED
from ingest_svc.messages import new_exam, study_ref
from ingest_svc.producer import ExamPublisher, Report
from ingest_svc.worker import IngestWorker
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N_GOOD = 50


def _wait(cond, timeout_s: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _explained(m: common_pb2.CardiacMeasurements) -> None:
    """A measured study's message: the segmenter that measured, a quality flag, every field set or explained."""
    assert m.model == load_segmenter().version and m.quality in ("ok", "check", "failed")
    for f in MEASUREMENT_FIELDS:
        assert m.HasField(f) or m.unavailable[f], f


def _events(s: Settings, n: int) -> list[events_pb2.EmbeddingCreated]:
    sub = make_consumer(s, group_id=f"{s.kafka_group_id}-subscriber", topics_=[s.kafka_topic_embedded])
    events: list[events_pb2.EmbeddingCreated] = []
    deadline = time.monotonic() + 60
    while len(events) < n and time.monotonic() < deadline:
        for recs in sub.poll(timeout_ms=500).values():
            events += [events_pb2.EmbeddingCreated.FromString(r.value) for r in recs]
    sub.close()
    return events


def test_fifty_good_five_bad(ingest_env: Settings, ingest_search: SearchClient, synth_dir: Path, ingest_root: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    # Everything of ours at DEBUG. kafka-python's DEBUG dumps raw wire bytes (the producer's own input
    # included), so it is capped at INFO here as `cmr serve ingest` caps it (see docs/services/ingest.md).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="kafka")
    s = ingest_env
    root = ingest_root / "fifty"
    good = make_variants(synth_dir, root, N_GOOD)
    no_cine_src = synth_dir / str(single_frame_records(synth_dir)[0]["folder"])
    no_cine = make_variant(no_cine_src, root / "bad_no_cine", 9000, kinds=("localizer", "lge_lax", "lge_sax"))
    truncated = truncated_study(good[1].path, root / "bad_truncated")
    junk = not_dicom_study(root / "bad_not_dicom")
    closed_port = free_ports(1)[0]
    before = ingest_search.stats().exams

    # The worker runs in a thread from the start, as deployed, while studies arrive.
    worker = IngestWorker(s)
    thread = threading.Thread(target=worker.run, name="ingest-worker", daemon=True)
    thread.start()
    published: dict[str, events_pb2.NewExam] = {}
    with ExamPublisher(s) as pub:
        for v in good:
            published[str(v.path)] = pub.publish_path(v.path, report=Report(v.impression, v.labels))
        for bad in (truncated, junk, no_cine.path):
            pub.publish_path(bad)
        pub.publish_path(good[0].path, report=Report(good[0].impression, good[0].labels))  # the duplicate
        pub.publish(new_exam(study_ref(uri=f"http://127.0.0.1:{closed_port}/dicom-web/studies/1.2.3.4")))

    keys = [study_key(v.uid, s.study_key_secret) for v in good]
    _wait(lambda: worker.stats.handled >= N_GOOD + 5 or not thread.is_alive(), 240, "55 messages handled")
    assert thread.is_alive(), "the worker must survive bad input"
    assert (worker.stats.indexed, worker.stats.duplicates, worker.stats.dead_letters) == (N_GOOD, 1, 4)

    # Every good study is searchable, exactly once.
    assert ingest_search.stats().exams - before == N_GOOD
    records = {k: ingest_search.get(k).exam for k in keys}
    assert all(r.study_key == k for k, r in records.items())
    assert set(records[keys[3]].labels) == set(good[3].labels)
    hit_keys = {h.exam.study_key for h in ingest_search.search_text("left ventricle", top_k=200)}
    assert set(keys) <= hit_keys

    # Dead letters: the 4 failures and the duplicate notice, each with its stage and reason.
    letters = [events_pb2.DeadLetter.FromString(r.value) for r in read_topic(s, s.kafka_topic_dead_letter)]
    by_stage = sorted((d.stage, d.error_type) for d in letters)
    assert len(letters) == 5, by_stage
    assert ("dedupe", "Duplicate") in by_stage
    assert ("load", "NoCineError") in by_stage
    assert ("load", "NotDicomError") in by_stage
    assert any(st == "load" and et in ("TruncatedFileError", "CorruptFileError") for st, et in by_stage)
    fetch = [d for d in letters if d.stage == "fetch"]
    assert len(fetch) == 1 and fetch[0].attempts == s.ingest_max_attempts and "still failing" in fetch[0].reason
    for d in letters:
        assert d.reason and d.original_topic == s.kafka_topic_new
        assert events_pb2.NewExam.FromString(d.original_value).event_id  # the original message, replayable

    # A subscriber (its own consumer group) gets one embedding event per study.
    events = _events(s, N_GOOD + 1)
    assert {e.study_key for e in events} == set(keys)
    assert len({e.event_id for e in events}) == N_GOOD  # the duplicate re-published the same event id
    e0 = next(e for e in events if e.study_key == keys[0])
    assert len(e0.image_embedding.values) == e0.model.embed_dim and e0.finding_scores and e0.views
    assert e0.source_event_id == published[str(good[0].path)].event_id
    # Measurements: these cut-down studies have no short-axis stack, which each event and record explains.
    for e in events:
        _explained(e.measurements)
        assert e.measurements == records[e.study_key].measurements  # the event says what the index holds
        assert e.measurements.quality == "failed" and "no short-axis cine" in e.measurements.quality_reasons[0]

    # No patient name or ID from the headers (or the report) in the index, the events or the logs.
    phi = [t for v in good for t in (*v.patient_name.split("^"), v.patient_id)]
    index_text = " ".join(f"{r}" for r in records.values())
    event_text = b"".join(r.value for r in read_topic(s, s.kafka_topic_embedded)).decode("latin-1")
    log_text = caplog.text
    for term in phi:
        assert term not in index_text and term not in event_text and term not in log_text, term
    assert "[removed]" in records[keys[0]].impression

    worker.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    assert worker.metrics.value("cmr_ingest_messages_total", outcome="indexed") == N_GOOD
    assert worker.metrics.value("cmr_ingest_stage_seconds_count", stage="deidentify") >= N_GOOD + 1


def test_a_real_stack_is_measured_with_its_body_size(ingest_env: Settings, ingest_search: SearchClient,
                                                    ingest_root: Path) -> None:
    """A Sunnybrook short-axis stack with the patient's height and weight in its headers: the event and the
    indexed record carry the same measurements, and the body size was used (the indexed volumes), though
    de-identification removed it from the headers before the study was measured."""
    s = ingest_env
    v = make_real_variant(SUNNYBROOK_CONTOURED / "dicom", ingest_root / "real" / "scd201", 7000, height_m=1.75,
                          weight_kg=80.0)
    key = study_key(v.uid, s.study_key_secret)
    worker = IngestWorker(s)
    thread = threading.Thread(target=worker.run, name="ingest-worker-real", daemon=True)
    thread.start()
    try:
        with ExamPublisher(s) as pub:
            pub.publish_path(v.path, report=Report(v.impression, ()))
        _wait(lambda: worker.stats.handled >= 1 or not thread.is_alive(), 240, "the study handled")
        assert worker.stats.indexed == 1, worker.stats
    finally:
        worker.request_stop()
        thread.join(30)
    [event] = _events(s, 1)
    record = ingest_search.get(key).exam
    m = event.measurements
    _explained(m)
    assert m == record.measurements and event.study_key == key
    assert "cine_sax" in record.views
    bsa = mosteller_bsa(1.75, 80.0)
    assert bsa is not None
    if m.HasField("lvedv_ml"):  # the network found a ventricle: the volumes are indexed by the retained size
        assert m.bsa_m2 == pytest.approx(bsa, abs=0.006) and m.lvedvi_ml_m2 == pytest.approx(m.lvedv_ml / bsa, rel=0.01)
    else:
        assert "height and weight" not in m.unavailable["bsa_m2"]  # never "the study has no height/weight"
    assert worker.metrics.value("cmr_ingest_stage_seconds_count", stage="measure") == 1
    assert v.patient_id not in str(record) and v.patient_id not in str(event)
