"""Ingestion messages without a broker: keys, event ids, failure classification, dead letters, decoding."""

from __future__ import annotations

import grpc
import pytest

from cmr.dicom.errors import NoCineError
from cmr.rpc.keys import study_key
from cmr.v1 import common_pb2, events_pb2
from ingest_svc.messages import (
    IngestFailure,
    SourceRecord,
    Stage,
    dead_letter,
    decode_new_exam,
    embedding_created,
    embedding_event_id,
    failure_from,
    new_exam,
    ref_key,
    study_ref,
)
from ingest_svc.producer import record_key

UID = "1.2.826.0.1.3680043.8.498.1"


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "details"


def test_record_key_is_the_study_key_so_a_studys_records_share_a_partition() -> None:
    ref = study_ref(path="/data/s1")
    assert record_key(ref, UID, "secret") == study_key(UID, "secret").encode()
    # Unknown UID: a stable key from the reference, never the raw path (it may hold a name).
    assert record_key(ref, None, "secret") == record_key(ref, None, "secret") == ref_key(ref).encode()
    assert b"/data" not in record_key(ref, None, "secret")
    assert record_key(ref, "not-a-uid", "secret") == ref_key(ref).encode()


def test_event_id_is_deterministic_per_study_model_and_content() -> None:
    a = embedding_event_id("k" * 32, "m@1", "dilated LV", ["lv_dilation"])
    assert a == embedding_event_id("k" * 32, "m@1", "dilated LV", ["lv_dilation"])
    assert a != embedding_event_id("k" * 32, "m@2", "dilated LV", ["lv_dilation"])
    assert a != embedding_event_id("k" * 32, "m@1", "normal", ["lv_dilation"])


@pytest.mark.parametrize(("exc", "transient"), [
    (NoCineError("no cine series"), False),
    (_Rpc(grpc.StatusCode.INVALID_ARGUMENT), False),
    (_Rpc(grpc.StatusCode.UNAVAILABLE), True),
    (_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), True),
    (ConnectionRefusedError("refused"), True),
    (KeyError("bug"), False),  # an unexpected error dead-letters the study instead of looping on it
])
def test_failures_are_classified(exc: Exception, transient: bool) -> None:
    f = failure_from(exc, Stage.ENCODE)
    assert f.transient is transient and f.stage is Stage.ENCODE and f.reason


def test_loader_reason_and_type_are_kept() -> None:
    f = failure_from(NoCineError("no cine series in the study"), Stage.LOAD)
    assert (f.reason, f.error_type, f.stage.value) == ("no cine series in the study", "NoCineError", "load")


def test_dead_letter_carries_the_original_and_why() -> None:
    msg = new_exam(study_ref(path="/x"), report_text="r")
    rec = SourceRecord("cmr.exams.new", 2, 17, b"key", msg.SerializeToString())
    d = dead_letter(rec, IngestFailure(Stage.FETCH, "gone", error_type="NotFound"), attempts=3)
    back = events_pb2.DeadLetter.FromString(d.SerializeToString())
    assert (back.stage, back.reason, back.error_type, back.attempts, back.partition, back.offset) == (
        "fetch", "gone", "NotFound", 3, 2, 17)
    assert events_pb2.NewExam.FromString(back.original_value).event_id == msg.event_id
    assert back.failed_at.seconds > 0


@pytest.mark.parametrize("value", [None, b"", b"\xff\xff\xff", events_pb2.NewExam(event_id="x").SerializeToString()])
def test_undecodable_or_refless_messages_fail_at_decode(value: bytes | None) -> None:
    with pytest.raises(IngestFailure) as err:
        decode_new_exam(value)
    assert err.value.stage is Stage.DECODE and not err.value.transient


def test_new_exam_round_trip_with_metadata() -> None:
    msg = new_exam(study_ref(uri="http://pacs/dicom-web/studies/1.2"), labels=["lge"], source="orthanc",
                   metadata={"orthanc_study_id": "abc"})
    back = decode_new_exam(msg.SerializeToString())
    assert back.study.uri.endswith("/studies/1.2") and back.source_metadata["orthanc_study_id"] == "abc"
    assert back.published_at.seconds > 0 and back.event_id


def test_embedding_created_fields() -> None:
    e = embedding_created(study_key="a" * 32, model=common_pb2.ModelInfo(version="m@1", embed_dim=2),
                          exam_point_id="p", embedding=[0.6, 0.8], scores=[common_pb2.FindingScore(finding="lge")],
                          views=["cine_4ch"], impression="i", labels=[], source_event_id="src")
    assert list(e.image_embedding.values) == pytest.approx([0.6, 0.8])
    assert e.event_id == embedding_event_id("a" * 32, "m@1", "i", []) and e.source_event_id == "src"
