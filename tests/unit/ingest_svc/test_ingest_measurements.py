"""Measurements in ingestion, with stand-in encoder and search clients and a stand-in segmenter (deterministic
masks, so the numbers are known): the study is measured after de-identification, yet its body surface area
comes from the PatientSize/PatientWeight that de-identification removes; the upsert and the embedding event
carry the same measurements; a failure inside measuring still indexes the study; duplicates account for the
segmenter. The upsert also carries the encoder's embedding parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pydicom
import pytest

from cmr.config import Settings
from cmr.dicom import ExamSpec
from fake_segmenter import DrawnMaskSegmenter
from cmr.quant.volumes import MEASUREMENT_FIELDS, mosteller_bsa
from cmr.rpc.keys import study_key
from cmr.rpc.messages import to_vector
from cmr.synth.generate import generate_dataset
from cmr.v1 import common_pb2, encoder_pb2, search_pb2
from ingest_svc.messages import embedding_event_id, new_exam, study_ref
from ingest_svc.pipeline import StudyPipeline, body_size, parse_files

SEGMENTER = "fake-seg@000000000001"
SECRET = "measure-secret"


class FakeSegmenter(DrawnMaskSegmenter):
    """An LV cavity disc that shrinks from phase 0 to the middle of the cycle, a myocardial ring and an RV
    blob, on every slice: a measurable heart whatever the images show."""

    version = SEGMENTER


class Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name


class FakeEncoder:
    """An attention-pooling model's answers: the exam vector [1, 0, 0, 0] in two parts (a CLS one with
    explains=False: no parts)."""

    def __init__(self, explains: bool = True) -> None:
        self.explains = explains

    def model_info(self) -> encoder_pb2.GetModelInfoResponse:
        import json

        return encoder_pb2.GetModelInfoResponse(model=common_pb2.ModelInfo(name="m", version="m@1", embed_dim=4),
                                                exam_spec_json=json.dumps(ExamSpec().to_dict()))

    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray, spec_id: str = "",
                          measurements: dict | None = None) -> tuple[np.ndarray, tuple]:
        parts = (common_pb2.EmbeddingPart(name="cine_sax", kind="view", vector=to_vector([0.7, 0.1, 0.0, 0.0])),
                 common_pb2.EmbeddingPart(name="exam", kind="exam", vector=to_vector([0.3, -0.1, 0.0, 0.0])))
        return np.array([1.0, 0.0, 0.0, 0.0], np.float32), parts if self.explains else ()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.array([[0.0, 1.0, 0.0, 0.0]] * len(texts), np.float32)


class FakeSearch:
    def __init__(self) -> None:
        self.upserts: list[search_pb2.ExamUpsert] = []
        self.existing: search_pb2.GetResponse | None = None

    def get(self, key: str, with_vector: bool = False) -> search_pb2.GetResponse:
        if self.existing is None:
            raise Rpc(grpc.StatusCode.NOT_FOUND)
        return self.existing

    def upsert(self, exams: list[search_pb2.ExamUpsert]) -> search_pb2.UpsertResponse:
        self.upserts += exams
        return search_pb2.UpsertResponse(study_keys=[study_key(e.study_instance_uid, SECRET) for e in exams],
                                         created=len(exams))

    def zero_shot(self, **kw: Any) -> search_pb2.ZeroShotResponse:
        return search_pb2.ZeroShotResponse()


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("measure_synth")
    generate_dataset(out, 1, 5, workers=1, scanner="training", progress=False)
    return out / "studies" / "study_00000"


def _pipeline(study_dir: Path, search: FakeSearch, *, measure: bool = True,
              encoder: FakeEncoder | None = None) -> StudyPipeline:
    s = Settings(study_roots=[study_dir.parent], study_key_secret=SECRET, measure=measure)
    p = StudyPipeline(s, encoder or FakeEncoder(), search)  # type: ignore[arg-type]
    if p.measurer is not None:
        p.measurer._segmenter = FakeSegmenter()  # type: ignore[assignment]
    return p


def test_the_study_carries_height_and_weight_that_deidentification_removes(study_dir: Path) -> None:
    first = next(f for f in sorted(study_dir.rglob("*.dcm")))
    ds = pydicom.dcmread(first)
    assert float(ds.PatientSize) > 0 and float(ds.PatientWeight) > 0  # the generator writes them
    datasets, _ = parse_files({f.name: f.read_bytes() for f in sorted(study_dir.rglob("*.dcm"))[:3]})
    assert body_size(datasets) == (float(ds.PatientSize), float(ds.PatientWeight))
    assert body_size([pydicom.Dataset()]) == (None, None)


def test_indexed_volumes_survive_deidentification(study_dir: Path) -> None:
    search = FakeSearch()
    pipeline = _pipeline(study_dir, search)
    out = pipeline.process(new_exam(study_ref(path=str(study_dir)), report_text="Dilated LV."))
    [upsert] = search.upserts
    m = upsert.measurements
    head = pydicom.dcmread(next(iter(sorted(study_dir.rglob("*.dcm")))))
    bsa = mosteller_bsa(float(head.PatientSize), float(head.PatientWeight))
    assert bsa is not None and m.HasField("bsa_m2") and m.bsa_m2 == pytest.approx(bsa, abs=0.006)
    assert m.HasField("lvedvi_ml_m2") and m.lvedvi_ml_m2 == pytest.approx(m.lvedv_ml / bsa, rel=0.01)
    assert m.model == SEGMENTER and m.quality in ("ok", "check") and 5 < m.lvef_pct < 85
    for f in MEASUREMENT_FIELDS:
        assert m.HasField(f) or m.unavailable[f], f
    assert out.event.measurements == m  # the event says what the index holds
    assert out.event.event_id == embedding_event_id(out.study_key, "m@1", upsert.impression, [], SEGMENTER)
    assert "measure" in out.seconds


def test_a_failure_inside_measuring_still_indexes_the_study(study_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    def boom(study: Any, segmenter: Any) -> Any:
        raise FloatingPointError("Zorblatt^Quenby 12345")

    monkeypatch.setattr("cmr.quant.measure.measure_study", boom)
    search = FakeSearch()
    out = _pipeline(study_dir, search).process(new_exam(study_ref(path=str(study_dir))))
    m = search.upserts[0].measurements
    assert m.quality == "failed" and "FloatingPointError" in m.quality_reasons[0] and m.model == SEGMENTER
    assert set(m.unavailable) == set(MEASUREMENT_FIELDS)
    assert out.event.measurements == m and "Zorblatt" not in str(m) and "Zorblatt" not in caplog.text
    assert "measuring failed (FloatingPointError)" in caplog.text


def test_measuring_off_sends_no_measurements(study_dir: Path) -> None:
    search = FakeSearch()
    out = _pipeline(study_dir, search, measure=False).process(new_exam(study_ref(path=str(study_dir))))
    assert not search.upserts[0].HasField("measurements") and not out.event.HasField("measurements")
    assert out.event.event_id == embedding_event_id(out.study_key, "m@1", "", [])  # ids as before measuring


def test_the_upsert_carries_the_encoders_embedding_parts(study_dir: Path) -> None:
    """What EncodeExam answered goes to the index unchanged: the parts the index explains matches with."""
    search = FakeSearch()
    encoder = FakeEncoder()
    _pipeline(study_dir, search, measure=False, encoder=encoder).process(new_exam(study_ref(path=str(study_dir))))
    [upsert] = search.upserts
    sent = encoder.encode_exam_parts(np.zeros((1, 1, 1)), np.zeros(1))[1]
    assert list(upsert.parts) == list(sent) and [p.name for p in upsert.parts] == ["cine_sax", "exam"]
    # a CLS-pooled model answers none: the upsert has none
    search = FakeSearch()
    _pipeline(study_dir, search, measure=False, encoder=FakeEncoder(explains=False)).process(
        new_exam(study_ref(path=str(study_dir))))
    assert len(search.upserts[0].parts) == 0


def test_duplicates_account_for_the_segmenter(study_dir: Path) -> None:
    search = FakeSearch()
    pipeline = _pipeline(study_dir, search)
    first = pipeline.process(new_exam(study_ref(path=str(study_dir))))
    indexed = search.upserts[0]
    record = search_pb2.ExamRecord(study_key=first.study_key, model_version="m@1", views=list(indexed.views),
                                   measurements=indexed.measurements)
    search.existing = search_pb2.GetResponse(exam=record, image_embedding=indexed.image_embedding)
    again = pipeline.process(new_exam(study_ref(path=str(study_dir))))
    assert again.duplicate and len(search.upserts) == 1
    assert again.event.measurements == first.event.measurements and again.event.event_id == first.event.event_id
    # indexed before measuring existed (or by another segmenter): measured and re-indexed in place
    for stale in (common_pb2.CardiacMeasurements(), common_pb2.CardiacMeasurements(quality="ok", model="old@1")):
        record.measurements.CopyFrom(stale)
        if not stale.ByteSize():
            record.ClearField("measurements")
        search.existing = search_pb2.GetResponse(exam=record, image_embedding=indexed.image_embedding)
        n = len(search.upserts)
        assert not pipeline.process(new_exam(study_ref(path=str(study_dir)))).duplicate
        assert len(search.upserts) == n + 1 and search.upserts[-1].measurements.model == SEGMENTER
