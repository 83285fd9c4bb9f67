"""A stand-in for ui.services.Services with canned answers (the page-logic tests), and a helper that runs a page
under Streamlit's AppTest with it. The same pages run against the real services in
tests/integration/up_stack/test_up_stack.py."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
from streamlit.testing.v1 import AppTest

from cmr.quant.proto import to_proto
from fake_segmenter import DrawnMaskSegmenter
from cmr.quant.volumes import Measurements
from cmr.v1 import search_pb2
from ui.services import CohortResult, Exam, Filters, Finding, Report, UiError, Upload

VIEWS = Path(__file__).resolve().parents[3] / "ui" / "views"
KEYS = [f"{i:032x}" for i in range(1, 6)]
SEG_VERSION = "cmr-seg-small@0123456789ab"
NO_HEIGHT = "the study has no patient height and weight"
INDEXED = ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2", "rvesvi_ml_m2", "bsa_m2")


def measured(i: int) -> Measurements | None:
    """The measurements of fake exam i: 0 complete and indexed, 1 flagged 'check' without height/weight, 2 not
    measurable, 3 one cardiac phase (no LVEF), 4 never measured."""
    curve = [150.0, 140.0, 110.0, 80.0, 68.0, 75.0, 100.0, 130.0, 145.0]
    if i == 0:
        return Measurements(lvef_pct=54.7, lvedv_ml=150.0, lvesv_ml=68.0, lvsv_ml=82.0, lv_mass_g=121.4,
                            rvef_pct=50.2, rvedv_ml=160.0, rvesv_ml=79.7, lvedvi_ml_m2=86.2, lvesvi_ml_m2=39.1,
                            lv_mass_index_g_m2=69.8, rvedvi_ml_m2=92.0, rvesvi_ml_m2=45.8, bsa_m2=1.74,
                            ed_phase=0, es_phase=4, quality="ok", lv_volume_curve_ml=curve, model=SEG_VERSION)
    if i == 1:
        return Measurements(lvef_pct=28.0, lvedv_ml=260.0, lvesv_ml=187.2, lvsv_ml=72.8, lv_mass_g=180.0,
                            ed_phase=0, es_phase=4, quality="check",
                            quality_reasons=["right ventricle not found", "low segmentation confidence (0.62)"],
                            unavailable={**{k: NO_HEIGHT for k in INDEXED},
                                         **{k: "no right ventricle found in the short-axis stack"
                                            for k in ("rvef_pct", "rvedv_ml", "rvesv_ml")}},
                            lv_volume_curve_ml=curve, model=SEG_VERSION)
    if i == 2:
        return Measurements.unmeasurable("no short-axis cine stack in the study", SEG_VERSION)
    if i == 3:
        one_phase = "one cardiac phase only: end-systole cannot be found"
        return Measurements(lvedv_ml=140.0, lv_mass_g=110.0, rvedv_ml=150.0, quality="ok", ed_phase=0, es_phase=0,
                            unavailable={**{k: NO_HEIGHT for k in INDEXED},
                                         **{k: one_phase for k in ("lvef_pct", "lvesv_ml", "lvsv_ml", "rvef_pct",
                                                                   "rvesv_ml")}},
                            lv_volume_curve_ml=[140.0], model=SEG_VERSION)
    return None


def record(i: int) -> search_pb2.ExamRecord:
    """Exam i as the search service sends it (an ExamRecord, measurements included)."""
    r = search_pb2.ExamRecord(study_key=KEYS[i], vendor="siemens", field_strength_t=1.5,
                              study_date="2024-01-0" + str(i + 1), views=["cine_sax", "cine_4ch"],
                              impression=f"1. Finding number {i}.\n2. Second sentence.", labels=["lv_dilation"])
    m = measured(i)
    if m is not None:
        r.measurements.CopyFrom(to_proto(m))
    return r


def exam(i: int, score: float = 0.5) -> Exam:
    return Exam.of(record(i), score, {"dilated LV": 0.8})


def down(service: str) -> UiError:
    return UiError(f"The {service} service is unavailable (not reachable at 127.0.0.1:1).", service=service, down=True)


class FakeServices:
    def __init__(self, *, down_services: tuple[str, ...] = (), me: int = 0,
                 upload_measurements: Measurements | None = None) -> None:
        self.down = set(down_services)
        self.calls: list[tuple[str, dict]] = []
        self.me = me  # which fake exam get() answers
        self.upload_measurements = upload_measurements

    def _check(self, service: str) -> None:
        if service in self.down:
            raise down(service)

    def search_text(self, phrase: str, top_k: int = 10, filters: Filters | None = None) -> list[Exam]:
        self._check("search")
        if not phrase.strip():
            raise UiError("Type a phrase first.")
        if filters is not None:
            filters.kwargs()  # the real Services builds the request here: an invalid range is a UiError
        self.calls.append(("search_text", {"phrase": phrase, "top_k": top_k, "filters": filters}))
        return [exam(i, 0.9 - 0.1 * i) for i in range(min(top_k, len(KEYS)))]

    def similar(self, *, study_key=None, embedding=None, top_k: int = 8):  # noqa: ANN001, ANN201
        self._check("search")
        self.calls.append(("similar", {"study_key": study_key, "embedding": embedding}))
        return [exam(i) for i in (1, 4)], [Report(KEYS[3], 0.7, "Nearest report impression.")]

    def zero_shot(self, *, study_key=None, embedding=None) -> list[Finding]:  # noqa: ANN001
        self._check("search")
        return [Finding("lv_dilation", "LV dilation", "finding", 0.81), Finding("lge", "LGE present", "finding", 0.2)]

    def get(self, study_key: str) -> Exam:
        self._check("search")
        return exam(self.me)

    def stats(self):  # noqa: ANN201
        self._check("search")

        class S:
            exams = 5

        return S()

    def cohort(self, all_of, any_of=(), none_of=(), threshold=0.5, filters=None, limit=200) -> CohortResult:  # noqa: ANN001
        self._check("search")
        if not [p for p in [*all_of, *any_of] if p.strip()]:
            raise UiError("Give at least one phrase under 'all of' or 'any of' (NOT alone selects nothing).")
        if filters is not None:
            filters.kwargs()
        self.calls.append(("cohort", {"all_of": list(all_of), "any_of": list(any_of), "none_of": list(none_of),
                                      "threshold": threshold, "filters": filters}))
        return CohortResult(3, [exam(i) for i in range(3)])

    def export_cohort(self, all_of, any_of=(), none_of=(), threshold=0.5, filters=None):  # noqa: ANN001, ANN201
        self._check("search")
        return "cohort.csv", b"study_key,score\n" + b"".join(f"{k},0.5\n".encode() for k in KEYS[:3])

    def encode_upload(self, data: bytes) -> Upload:
        self._check("encoder")
        if data[:4] != b"PK\x03\x04":
            raise UiError("The upload is not a zip file: upload a zip of the study's DICOM files.")
        return Upload(np.ones(8, np.float32), "1.2.3", "siemens", 1.5, ("cine_sax",), ("lge_sax",), (),
                      self.upload_measurements)

    def draft(self, mode: str, *, study_key=None, embedding=None, measurements=None) -> Iterator[str]:  # noqa: ANN001
        self._check("generator")
        self.drafted_with = measurements
        yield from [f"1. {mode} sentence one.", f"2. {mode} sentence two."]

    def health(self) -> dict[str, bool]:
        return {s: s not in self.down for s in ("encoder", "search", "generator")}


class NoPreviews:
    def gif(self, study_key: str) -> bytes | None:
        return None


def run_page(name: str, services: object, previews: object | None = None, timeout: float = 30,
             segmenter: object | None = None) -> AppTest:
    at = AppTest.from_file(str(VIEWS / name), default_timeout=timeout)
    at.session_state["cmr_services"] = services
    at.session_state["cmr_previews"] = previews or NoPreviews()
    if segmenter is not None:
        at.session_state["cmr_segmenter"] = segmenter
    return at.run()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


class GifPreviews:
    """A tiny two-frame animated GIF for every exam."""

    def __init__(self) -> None:
        from PIL import Image

        buf = io.BytesIO()
        frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        self.data = buf.getvalue()

    def gif(self, study_key: str) -> bytes | None:
        return self.data


class FolderPreviews(GifPreviews):
    """Cine GIFs, and every study key's images in one local folder (the study the UI would find on disk)."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__()
        self.path = folder

    def folder(self, study_key: str) -> Path | None:
        return self.path


class FakeSegmenter(DrawnMaskSegmenter):
    """Stands in for cmr.quant.segmenter.Segmenter: a beating LV (cavity in a myocardial ring) beside an RV on
    every short-axis slice, largest mid-ventricle, so cmr.quant.measure.measure_study measures real numbers."""

    def __init__(self, version: str = SEG_VERSION, fail: Exception | None = None) -> None:
        self.version = version
        self.fail = fail
        self.calls = 0

    def locate_heart(self, slices):  # noqa: ANN001, ANN201 - the first call of a measurement
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return super().locate_heart(slices)

    def draw(self, k: int, n: int, phases: int, rows: int, cols: int) -> np.ndarray:
        yy, xx = np.mgrid[:rows, :cols]
        scale = 1.0 - 0.6 * abs(k - n // 2) / max(n // 2, 1)  # largest at the mid-ventricle
        m = np.zeros((phases, rows, cols), np.uint8)
        for p in range(phases):
            beat = 0.75 + 0.25 * np.cos(2 * np.pi * p / phases)
            r = np.hypot(yy - rows / 2, xx - cols / 2)
            rv = np.hypot(yy - rows / 2, xx - cols / 2 + 0.22 * cols)
            m[p][rv < 0.12 * cols * scale * beat] = 1
            m[p][r < 0.13 * cols * scale] = 2
            m[p][r < 0.09 * cols * scale * beat] = 3
        return m


class FakeSearchClient:
    """Stands in for search_svc.client.SearchClient under the real ui.services.Services: answers with ExamHits
    and cohort pages of ExamRecords, records the filters, and refuses measurement ranges as the server does
    (INVALID_ARGUMENT naming the field) when told to."""

    def __init__(self, refuse: str = "", why: Sequence[search_pb2.MatchShare] = ()) -> None:
        """why: the MatchShare rows of the first text hit (the search service's for an exam stored with parts);
        the other hits have none (exams indexed without parts)."""
        self.refuse = refuse
        self.why = list(why)
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, name: str, kwargs: dict) -> None:
        self.calls.append((name, kwargs))
        if self.refuse:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, self.refuse)

    def search_text(self, query: str, top_k: int = 10, **filters):  # noqa: ANN003, ANN201
        self._answer("search_text", {"query": query, "top_k": top_k, **filters})
        return [search_pb2.ExamHit(exam=record(i), score=0.9 - 0.1 * i, why=self.why if i == 0 else [])
                for i in range(min(top_k, len(KEYS)))]

    def cohort(self, **kwargs):  # noqa: ANN003, ANN201
        self._answer("cohort", kwargs)
        return search_pb2.CohortPage(total=3, members=[search_pb2.CohortMember(exam=record(i), score=0.6)
                                                       for i in range(3)])

    def export_cohort(self, fmt: str = "csv", **kwargs):  # noqa: ANN003, ANN201
        self._answer("export_cohort", kwargs)
        return "cohort.csv", b"study_key,score,lvef_pct\n"

    def stats(self):  # noqa: ANN201
        return search_pb2.StatsResponse(exams=5)

    def close(self) -> None:
        pass


class RpcFailure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def real_services(search: FakeSearchClient):  # noqa: ANN201
    """ui.services.Services (the real request building and error mapping) over a fake search client."""
    from ui.services import Services

    class Offline(Services):
        def health(self) -> dict[str, bool]:
            return {"encoder": True, "search": True, "generator": True}

    svc = Offline()
    svc._search = search
    return svc

