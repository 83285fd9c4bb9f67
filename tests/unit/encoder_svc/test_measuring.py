"""Measuring on EncodeStudy: the segmenter loaded once per decoder worker, measured where the study was
decoded, and a failure inside measure_study never fails the call (quality "failed", the exception type as the
reason, never its text)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cmr.config import Settings
from cmr.dicom import load_study
from cmr.model.checkpoint import DEFAULT_CHECKPOINT
from cmr.model.runtime import ModelIdentity
from cmr.quant.segmenter import load_segmenter
from cmr.quant.volumes import MEASUREMENT_FIELDS
from cmr.rpc import study_loading
from cmr.rpc.measuring import MeasureOutcome, StudyMeasurer, failed_measurement
from cmr.rpc.study_loading import LoadedStudy, MeasureConfig, StudyLoaderPool
from cmr.v1 import common_pb2, encoder_pb2
from encoder_svc.server import measure_config
from encoder_svc.service import EncoderServicer
from encoder_svc.triton_models import TritonServingConfig
from fake_segmenter import two_slice_stack
from realdata_paths import SUNNYBROOK_MIDSLICE, TEST_REALDATA

SECRET_TEXT = "Doe^John 1234567"  # what an exception's message could quote from a header


class _Raising:
    version = "cmr-seg-small@feedfeedfeed"

    def locate_heart(self, slices: Any) -> Any:  # the first thing measure_study asks of the network
        raise RuntimeError(f"cannot segment {SECRET_TEXT}")

    segment = area_curves = locate_heart


@pytest.fixture(scope="module")
def midslice():  # noqa: ANN201 - one SAX slice, 20 phases: a stack of one
    return load_study(SUNNYBROOK_MIDSLICE)


def test_a_study_without_a_stack_is_explained_not_failed(midslice) -> None:  # noqa: ANN001
    out = StudyMeasurer().measure(midslice)
    assert out.error is None and out.measurements.quality == "failed"
    assert out.measurements.model == load_segmenter().version
    assert set(out.measurements.unavailable) == set(MEASUREMENT_FIELDS)
    assert "one short-axis cine slice" in out.measurements.quality_reasons[0]


def test_an_exception_inside_measure_study_becomes_a_failed_measurement(midslice) -> None:  # noqa: ANN001
    measurer = StudyMeasurer()
    measurer._segmenter = _Raising()  # type: ignore[assignment]
    out = measurer.measure(two_slice_stack(midslice))
    m = out.measurements
    assert out.error == "RuntimeError" and "cannot segment" in (out.traceback or "")
    assert m.quality == "failed" and m.model == _Raising.version
    assert m.quality_reasons == ["measurement failed (RuntimeError); the study was still encoded"]
    assert set(m.unavailable) == set(MEASUREMENT_FIELDS) and all(v is None for v in m.values().values())
    assert SECRET_TEXT not in repr(m.to_dict())  # the type only: the text could quote a header


def test_a_broken_checkpoint_fails_measuring_not_the_study(tmp_path: Path, midslice) -> None:  # noqa: ANN001
    bad = tmp_path / "seg.pt"
    bad.write_bytes(b"not a checkpoint")
    out = StudyMeasurer(bad).measure(midslice)
    assert out.measurements.quality == "failed" and out.error and "failed" in out.measurements.quality_reasons[0]
    with pytest.raises(FileNotFoundError):
        StudyMeasurer(tmp_path / "missing.pt").load()


def test_the_worker_function_measures_the_study_it_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    from cmr.dicom import ExamSpec

    spec = ExamSpec().to_dict()
    cfg = MeasureConfig(None, 1)
    monkeypatch.setattr(study_loading, "_measurer", None)
    got = study_loading._load_exam(SUNNYBROOK_MIDSLICE, spec, cfg)
    assert isinstance(got, LoadedStudy) and got.exam.present["cine_sax"] and got.measured is not None
    first = study_loading._measurer
    assert first is not None and got.measured.measurements.model == first.version
    study_loading._load_exam(SUNNYBROOK_MIDSLICE, spec, cfg)
    assert study_loading._measurer is first  # loaded once per worker process, kept across studies
    assert study_loading._load_exam(SUNNYBROOK_MIDSLICE, spec, None).measured is None  # measuring off

    def boom(study: Any, segmenter: Any) -> Any:
        raise ValueError(SECRET_TEXT)

    monkeypatch.setattr("cmr.quant.measure.measure_study", boom)
    got = study_loading._load_exam(SUNNYBROOK_MIDSLICE, spec, cfg)
    assert got.exam.mask.any()  # the exam is still there to be encoded
    assert got.measured is not None and got.measured.error == "ValueError"
    assert got.measured.measurements.quality == "failed"


def test_measure_config_follows_the_settings() -> None:
    assert measure_config(Settings(measure=False)) is None
    cfg = measure_config(Settings(measure=True, segmenter_checkpoint=Path("x.pt"), max_concurrent_studies=64))
    assert cfg is not None and cfg.checkpoint == Path("x.pt") and cfg.torch_threads == 1


def test_the_pool_loads_the_segmenter_at_start_and_refuses_a_missing_one(tmp_path: Path) -> None:
    from cmr.dicom import ExamSpec

    pool = StudyLoaderPool(ExamSpec(), 1, MeasureConfig(None, 1))
    try:
        pool.warm_up()
        assert pool.segmenter_version == load_segmenter().version
        got = pool.load_measured(SUNNYBROOK_MIDSLICE, timeout_s=120)
        assert got.measured is not None and got.measured.measurements.quality == "failed"
        assert got.measured.measurements.model == pool.segmenter_version
        assert pool.load(SUNNYBROOK_MIDSLICE, timeout_s=120).present["cine_sax"]  # the plain exam, as before
    finally:
        pool.close()
    pool = StudyLoaderPool(ExamSpec(), 1, MeasureConfig(tmp_path / "missing.pt", 1))
    try:
        with pytest.raises(RuntimeError, match="segmenter for measurements cannot be loaded.*CMR_MEASURE=false"):
            pool.warm_up()
    finally:
        pool.close()


# --- the RPC ---------------------------------------------------------------------------------------------------
class _Triton:
    """Records the measurement tokens it was sent; answers a unit vector split into its parts."""

    sent: list[np.ndarray | None] = []

    def encode_exams(self, pixels: np.ndarray, mask: np.ndarray,
                     measurements: np.ndarray | None = None) -> np.ndarray:
        return self.encode_exam_parts(pixels, mask, measurements)[0]

    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray, measurements: np.ndarray | None = None,
                          ) -> tuple[np.ndarray, np.ndarray]:
        _Triton.sent.append(measurements)
        groups = len(ModelIdentity.from_checkpoint(Path(DEFAULT_CHECKPOINT), "cpu").groups)
        parts = np.zeros((len(pixels), groups, 256), np.float32)
        parts[:, 0, 0] = 1.0
        return parts.sum(axis=1), parts


class _Loader:
    def __init__(self, loaded: LoadedStudy) -> None:
        self.loaded = loaded

    def load_measured(self, source: Any, timeout_s: float | None = None) -> LoadedStudy:
        return self.loaded


class _Context:
    def time_remaining(self) -> float:
        return 60.0

    def code(self) -> None:
        return None


def _encode(loaded: LoadedStudy) -> encoder_pb2.EncodeStudyResponse:
    s = Settings(study_roots=[TEST_REALDATA])
    servicer = EncoderServicer(ModelIdentity.from_checkpoint(Path(DEFAULT_CHECKPOINT), "cpu"), _Triton(),  # type: ignore[arg-type]
                               _Loader(loaded), TritonServingConfig.from_settings(s), s)  # type: ignore[arg-type]
    ref = encoder_pb2.EncodeStudyRequest(ref=common_pb2.StudyRef(path=str(SUNNYBROOK_MIDSLICE)))
    return servicer.EncodeStudy(iter([ref]), _Context())  # type: ignore[arg-type]


def test_encode_study_answers_with_a_failed_measurement_and_logs_it(midslice, caplog: pytest.LogCaptureFixture,  # noqa: ANN001
                                                                    ) -> None:
    from cmr.dicom import ExamSpec

    exam = midslice.to_exam(ExamSpec())
    failed = MeasureOutcome(failed_measurement("ZeroDivisionError", "cmr-seg-small@feedfeedfeed"),
                            "ZeroDivisionError", "Traceback ...")
    with caplog.at_level(logging.WARNING, logger="encoder_svc.service"):
        r = _encode(LoadedStudy(exam, failed))
    assert r.embedding.values and r.study.slots_present == ["cine_sax"]  # the call succeeded
    assert r.measurements.quality == "failed" and "ZeroDivisionError" in r.measurements.quality_reasons[0]
    assert set(r.measurements.unavailable) == set(MEASUREMENT_FIELDS) and not r.measurements.HasField("lvef_pct")
    assert "measuring a study failed (ZeroDivisionError)" in caplog.text
    sent = _Triton.sent[-1]  # the shipped model reads numbers: a failed measurement gives it none
    assert sent is not None and np.isnan(sent).all()
    assert not _encode(LoadedStudy(exam, None)).HasField("measurements")  # measuring off: no message at all
