"""EncoderService for a model with measurement tokens and attention pooling, over a fake Triton client: the
study's measurements reach Triton as the model's tokens, the parts come back named, EncodeExam's measurements
are checked; the shipped model is such a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from cmr.config import Settings
from cmr.dicom import ExamSpec
from cmr.model.checkpoint import DEFAULT_CHECKPOINT
from cmr.model.runtime import ModelIdentity
from cmr.quant.volumes import Measurements
from cmr.rpc.measuring import MeasureOutcome
from cmr.rpc.messages import from_vector
from cmr.rpc.study_loading import LoadedStudy
from cmr.v1 import common_pb2, encoder_pb2
from encoder_svc.service import EncoderServicer
from encoder_svc.triton_models import TritonServingConfig

NAMES = ("lvef_pct", "lvedvi_ml_m2", "rv_lv_edv_ratio")
D = 8


class _Triton:
    """Records what it was sent; parts are random, the embedding their sum (as the real model's)."""

    def __init__(self, groups: int) -> None:
        self.groups = groups
        self.sent: list[np.ndarray | None] = []

    def encode_exams(self, pixels: np.ndarray, mask: np.ndarray,
                     measurements: np.ndarray | None = None) -> np.ndarray:
        self.sent.append(measurements)
        return np.ones((len(pixels), D), np.float32) / np.sqrt(D)

    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray,
                          measurements: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.sent.append(measurements)
        parts = np.random.default_rng(0).normal(size=(len(pixels), self.groups, D)).astype(np.float32)
        return parts.sum(axis=1), parts


class _Loader:
    def __init__(self, loaded: LoadedStudy) -> None:
        self.loaded = loaded

    def load_measured(self, source: Any, timeout_s: float | None = None) -> LoadedStudy:
        return self.loaded


class _Exam:  # what EncodeStudy reads of a cmr.dicom.Exam
    def __init__(self, spec: ExamSpec) -> None:
        self.pixels = np.zeros((spec.length, spec.image_size, spec.image_size), np.uint8)
        self.mask = np.ones(spec.length, bool)

    def pixels_uint8(self) -> np.ndarray:
        return self.pixels


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    def time_remaining(self) -> float:
        return 60.0

    def code(self) -> grpc.StatusCode | None:
        return None if self.status is None else self.status[0]

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.status = (code, message)
        raise _Aborted(message)


def _servicer(identity: ModelIdentity, loaded: LoadedStudy | None = None) -> tuple[EncoderServicer, _Triton]:
    s = Settings()
    triton = _Triton(len(identity.groups))
    return EncoderServicer(identity, triton, _Loader(loaded) if loaded else None,  # type: ignore[arg-type]
                           TritonServingConfig.from_settings(s), s), triton


def _explaining() -> ModelIdentity:
    return ModelIdentity(name="tiny", version="tiny@0", embed_dim=D, spec=ExamSpec(), device="cpu",
                         measurement_names=NAMES, explains=True)


@pytest.fixture(autouse=True)
def _no_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake loader answers the study: nothing is read, and the fake exam has no loader report."""
    import encoder_svc.service as service

    monkeypatch.setattr(service, "read_upload", lambda *a, **k: None)
    monkeypatch.setattr(service, "loader_report", lambda exam: common_pb2.LoaderReport())


def _study_response(identity: ModelIdentity, measured: MeasureOutcome | None,
                    ) -> tuple[encoder_pb2.EncodeStudyResponse, _Triton]:
    servicer, triton = _servicer(identity, LoadedStudy(_Exam(identity.spec), measured))  # type: ignore[arg-type]
    ref = encoder_pb2.EncodeStudyRequest(ref=common_pb2.StudyRef(path="/nowhere"))
    return servicer.EncodeStudy(iter([ref]), _Context()), triton  # type: ignore[arg-type]


def test_encode_study_sends_the_measured_tokens_and_answers_named_parts() -> None:
    identity = _explaining()
    measured = MeasureOutcome(Measurements(lvef_pct=35.0, lvedv_ml=190.0, rvedv_ml=150.0, bsa_m2=1.9))
    r, triton = _study_response(identity, measured)
    sent = triton.sent[-1]
    assert sent is not None and sent.shape == (1, len(NAMES))
    np.testing.assert_allclose(sent[0], [35.0, 100.0, 150.0 / 190.0], rtol=1e-5)
    assert [p.name for p in r.parts] == [*identity.spec.slot_names, *NAMES, "exam"]
    assert [p.kind for p in r.parts] == ["view"] * len(identity.spec.slot_names) + ["measurement"] * 3 + ["exam"]
    total = np.sum([from_vector(p.vector) for p in r.parts], axis=0)
    np.testing.assert_allclose(total, from_vector(r.embedding), atol=1e-5)


def test_encode_study_unmeasured_sends_nan_tokens() -> None:
    r, triton = _study_response(_explaining(), None)  # measuring off: the tokens are masked, not left out
    sent = triton.sent[-1]
    assert sent is not None and sent.shape == (1, len(NAMES)) and np.isnan(sent).all()
    assert r.parts


def test_the_shipped_model_sends_its_measurements_and_answers_parts() -> None:
    """The shipped checkpoint reads measured numbers and pools by attention: a study's LVEF reaches Triton as
    its token and the answer splits into every view and number."""
    identity = ModelIdentity.from_checkpoint(Path(DEFAULT_CHECKPOINT), "cpu")
    assert "lvef_pct" in identity.measurement_names and identity.explains
    r, triton = _study_response(identity, MeasureOutcome(Measurements(lvef_pct=35.0)))
    sent = triton.sent[-1]
    assert sent is not None and sent.shape == (1, len(identity.measurement_names))
    lvef = identity.measurement_names.index("lvef_pct")
    assert sent[0, lvef] == pytest.approx(35.0) and np.isnan(np.delete(sent[0], lvef)).all()
    assert [p.name for p in r.parts] == list(identity.groups)


def _exam_request(spec: ExamSpec, measurements: dict[str, float]) -> encoder_pb2.EncodeExamRequest:
    t, s = spec.length, spec.image_size
    exam = common_pb2.ExamTensor(frames=t, height=s, width=s, pixels=bytes(t * s * s), mask=bytes([1]) * t)
    return encoder_pb2.EncodeExamRequest(exam=exam, measurements=measurements)


def test_encode_exam_reads_measurements_nan_is_unmeasured() -> None:
    servicer, triton = _servicer(_explaining())
    request = _exam_request(servicer.identity.spec, {"lvef_pct": 40.0, "lvedv_ml": float("nan")})
    r = servicer.EncodeExam(request, _Context())  # type: ignore[arg-type]
    sent = triton.sent[-1]
    assert sent is not None and sent[0, 0] == pytest.approx(40.0) and np.isnan(sent[0, 1:]).all()
    assert len(r.parts) == len(servicer.identity.groups)


def test_encode_exam_unknown_measurement_is_invalid_argument_with_the_known_names() -> None:
    servicer, triton = _servicer(_explaining())
    ctx = _Context()
    with pytest.raises(_Aborted):
        request = _exam_request(servicer.identity.spec, {"ejection_fraction": 40.0})
        servicer.EncodeExam(request, ctx)  # type: ignore[arg-type]
    assert ctx.status is not None and ctx.status[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert "ejection_fraction" in ctx.status[1] and "lvef_pct" in ctx.status[1]
    assert triton.sent == []
