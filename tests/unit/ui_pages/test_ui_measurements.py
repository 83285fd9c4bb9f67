"""The UI's measurement helpers (ui.measurements, ui.services): the clinical panel's text with units, absent
values with their reasons and the quality flag; card and table summaries; measurement range filters from
number bounds and `where` text; measurements carried from ExamRecords and EncodeStudy; the service's
INVALID_ARGUMENT passed through; contours computed from a study on this host."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from cmr.quant.proto import to_proto
from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements
from search_svc.client import parse_where
from ui.measurements import (
    LABELS, card_summary, content_key, contour_gif, contour_view, curve_rows, describe_range, folder_fingerprint,
    format_value, measurement_ranges, panel, table_columns, value_text,
)
from ui.services import Exam, Filters, Services, UiError, friendly
from ui_fakes import (
    NO_HEIGHT, SEG_VERSION, FakeSearchClient, FakeSegmenter, RpcFailure, measured, real_services, record,
)


# --- formatting --------------------------------------------------------------------------------------------
def test_every_measurement_has_a_label() -> None:
    assert set(LABELS) == set(MEASUREMENT_FIELDS)


def test_values_are_written_with_their_units() -> None:
    assert format_value("lvef_pct", 54.7) == "55 %"
    assert format_value("lvedv_ml", 150.0) == "150 ml"
    assert format_value("lv_mass_g", 121.4) == "121 g"
    assert format_value("lvedvi_ml_m2", 86.2) == "86 ml/m²"
    assert format_value("lv_mass_index_g_m2", 69.8) == "70 g/m²"
    assert format_value("bsa_m2", 1.736) == "1.74 m²"
    assert format_value("rvef_pct", -0.2) == "0 %"


def test_absent_values_say_why() -> None:
    m = measured(1)
    assert value_text(m, "rvef_pct") == "not measured: no right ventricle found in the short-axis stack"
    assert value_text(Measurements(quality="ok", lvedv_ml=100.0), "lvef_pct") == "not measured: no value was sent"


def test_panel_of_a_complete_study_has_indexed_values_and_quality() -> None:
    p = panel(measured(0))
    assert [r.label for r in p.rows] == ["LVEF", "LVEDV", "LVESV", "LVSV", "LV mass", "RVEF", "RVEDV", "RVESV"]
    rows = {r.label: r for r in p.rows}
    assert rows["LVEF"].value == "55 %" and rows["LVEF"].indexed == ""
    assert rows["LVEDV"].value == "150 ml" and rows["LVEDV"].indexed == "86 ml/m²"
    assert rows["LV mass"].indexed == "70 g/m²" and rows["RVESV"].value == "80 ml"
    md = p.markdown()
    assert md.startswith("| | value | indexed |") and "| **LVEF** | 55\u00a0% |" in md
    assert "| **LVEDV** | 150\u00a0ml | 86\u00a0ml/m² |" in md and "BSA 1.74 m² (Mosteller)" in md
    assert p.quality == "ok" and p.quality_text() == "quality ok" and p.model == SEG_VERSION


def test_panel_without_height_weight_or_rv_gives_the_reasons() -> None:
    p = panel(measured(1))
    rows = {r.label: r for r in p.rows}
    assert rows["LVEF"].value == "28 %"
    assert rows["RVEF"].value == "not measured: no right ventricle found in the short-axis stack"
    assert not p.show_indexed and p.indexed_note == NO_HEIGHT
    md = p.markdown()
    assert md.splitlines()[0] == "| | value |" and f"Indexed values not measured: {NO_HEIGHT}." in md
    assert "| **RVEF** | not measured: no right ventricle found in the short-axis stack |" in md  # it may wrap
    assert p.quality == "check"
    assert p.quality_text() == "quality check: right ventricle not found; low segmentation confidence (0.62)"


def test_panel_of_an_unmeasurable_study_is_one_line() -> None:
    p = panel(measured(2))
    assert p.rows == () and p.quality == "failed"
    assert p.markdown() == "Not measured: no short-axis cine stack in the study"


def test_panel_of_a_single_phase_study() -> None:
    rows = {r.label: r for r in panel(measured(3)).rows}
    assert rows["LVEF"].value == "not measured: one cardiac phase only: end-systole cannot be found"
    assert rows["LVEDV"].value == "140 ml" and rows["RVEDV"].value == "150 ml"


def test_card_summary_and_table_columns() -> None:
    assert card_summary(measured(0)) == "LVEF 55 % · LVEDV 150 ml · LV mass 121 g"
    assert card_summary(measured(1)) == "LVEF 28 % · LVEDV 260 ml · LV mass 180 g (quality: check)"
    assert card_summary(measured(2)) == "LVEF not measured: no short-axis cine stack in the study"
    assert card_summary(None) == "not measured"
    assert table_columns(measured(0)) == {"LVEF (%)": 54.7, "LVEDV (ml)": 150.0}
    assert table_columns(measured(3)) == {"LVEF (%)": None, "LVEDV (ml)": 140.0}
    assert table_columns(None) == {"LVEF (%)": None, "LVEDV (ml)": None}


# --- filters -----------------------------------------------------------------------------------------------
def test_number_bounds_become_ranges_and_any_is_left_out() -> None:
    rs = measurement_ranges([("lvef_pct", None, 35.0), ("lvedv_ml", 150.0, 250.0), ("lv_mass_g", None, None),
                             ("rvef_pct", 40.0, None)])
    assert [r.measure for r in rs] == ["lvef_pct", "lvedv_ml", "rvef_pct"]
    assert not rs[0].HasField("min") and rs[0].max == 35.0
    assert (rs[1].min, rs[1].max) == (150.0, 250.0)
    assert rs[2].min == 40.0 and not rs[2].HasField("max")
    assert [describe_range(r) for r in rs] == ["LVEF ≤ 35 %", "LVEDV 150–250 ml", "RVEF ≥ 40 %"]
    assert measurement_ranges([("lvef_pct", None, None)], "  ") == []
    assert measurement_ranges([("lvef_pct", 35.0, 35.0)])[0].min == 35.0  # a closed range of one value


def test_min_above_max_is_a_message_naming_the_measure() -> None:
    with pytest.raises(ValueError, match=r"^LVEF range: the minimum 50 is above the maximum 30 %"):
        measurement_ranges([("lvef_pct", 50.0, 30.0)])
    with pytest.raises(ValueError, match="unknown measurement"):
        measurement_ranges([("ef", 1.0, None)])


def test_where_text_is_parsed_as_the_cli_parses_it() -> None:
    rs = measurement_ranges(where="lvef_pct<35; lvedv_ml=150..250, rvef_pct >= 40 and lv_mass_g>100\nbsa_m2<=2")
    assert rs == [parse_where(t) for t in ("lvef_pct<35", "lvedv_ml=150..250", "rvef_pct >= 40", "lv_mass_g>100",
                                           "bsa_m2<=2")]
    with pytest.raises(ValueError, match=r"^Measurement condition: .*unknown measurement 'ejection'"):
        measurement_ranges(where="ejection<35")
    with pytest.raises(ValueError, match=r"^Measurement condition: .*empty"):
        measurement_ranges(where="lvef_pct=50..30")


def test_filters_send_the_ranges_and_refuse_an_empty_one() -> None:
    f = Filters(vendors=("ge",), measures=(("lvef_pct", None, 35.0),), where="lvedv_ml>=200")
    kw = f.kwargs()
    assert kw["vendors"] == ["ge"] and [r.measure for r in kw["where"]] == ["lvef_pct", "lvedv_ml"]
    assert Filters().kwargs()["where"] == []
    with pytest.raises(UiError, match="LVEF range: the minimum 50 is above the maximum 30"):
        Filters(measures=(("lvef_pct", 50.0, 30.0),)).kwargs()


# --- measurements through the services --------------------------------------------------------------------
def test_exam_records_carry_their_measurements() -> None:
    e = Exam.of(record(0), 0.9)
    assert e.measurements is not None
    assert e.measurements.values() == measured(0).values()
    assert e.measurements.quality == "ok" and e.measurements.model == SEG_VERSION
    assert e.measurements.lv_volume_curve_ml == measured(0).lv_volume_curve_ml
    assert Exam.of(record(1), 0.5).measurements.unavailable["bsa_m2"] == NO_HEIGHT  # type: ignore[union-attr]
    assert Exam.of(record(4), 0.5).measurements is None  # never measured: no message


def test_services_send_measurement_ranges_and_read_measurements() -> None:
    client = FakeSearchClient()
    svc = real_services(client)
    hits = svc.search_text("dilated", top_k=3, filters=Filters(measures=(("lvef_pct", None, 35.0),)))
    assert [h.measurements.lvef_pct if h.measurements else None for h in hits] == [54.7, 28.0, None]
    name, kw = client.calls[-1]
    assert name == "search_text" and [(r.measure, r.max) for r in kw["where"]] == [("lvef_pct", 35.0)]
    result = svc.cohort(["dilated"], filters=Filters(where="lvedv_ml>=150"))
    assert result.total == 3 and result.members[1].measurements.quality == "check"  # type: ignore[union-attr]
    assert [r.measure for r in client.calls[-1][1]["where"]] == ["lvedv_ml"]
    with pytest.raises(UiError, match="minimum 50 is above the maximum 30"):
        svc.cohort(["dilated"], filters=Filters(measures=(("lvef_pct", 50.0, 30.0),)))
    assert client.calls[-1][0] == "cohort" and len(client.calls) == 2  # refused before any call


def test_the_services_invalid_argument_is_passed_through() -> None:
    server_says = "filter.measurements[0]: measurement range on lvef_pct: min 50 is greater than max 30"
    err = friendly(RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, server_says), "search", "x:1", "searching")
    assert server_says in err.message and not err.down
    svc = real_services(FakeSearchClient(refuse=server_says))
    with pytest.raises(UiError) as exc:
        svc.search_text("dilated", filters=Filters())
    assert server_says in exc.value.message
    assert "refused" in friendly(RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, ""), "search", "x:1", "x").message


def test_an_upload_carries_the_encoders_measurements() -> None:
    from cmr.v1 import common_pb2
    from encoder_svc.client import StudyEncoding

    class Encoder:
        def __init__(self, m: Measurements | None) -> None:
            self.m = m

        def encode_study(self, data: bytes) -> StudyEncoding:
            return StudyEncoding(np.ones(4, np.float32), common_pb2.ModelInfo(),
                                 common_pb2.LoaderReport(manufacturer="ge", slots_present=["cine_sax"]),
                                 measurements=None if self.m is None else to_proto(self.m))

    svc = Services()
    svc._encoder = Encoder(measured(1))
    up = svc.encode_upload(b"PK\x03\x04rest")
    assert up.measurements is not None and up.measurements.lvef_pct == 28.0 and up.measurements.quality == "check"
    svc._encoder = Encoder(None)
    assert svc.encode_upload(b"PK\x03\x04rest").measurements is None



def test_a_draft_of_an_upload_is_grounded_in_its_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator cannot look an upload up in the index: the UI sends the encoder's measurements with it."""
    from cmr.v1 import generator_pb2, generator_pb2_grpc

    sent: list[generator_pb2.GenerateReportRequest] = []

    class Stub:
        def __init__(self, channel: object) -> None:
            pass

        def GenerateReport(self, req: generator_pb2.GenerateReportRequest, timeout: float):  # noqa: N802, ANN201
            sent.append(req)
            return iter([generator_pb2.ReportSentence(index=0, text="Automated quantification: LVEF 28 %.",
                                                      last=True)])

    monkeypatch.setattr(generator_pb2_grpc, "GeneratorServiceStub", Stub)
    svc = Services()
    svc._generator_channel = object()
    assert list(svc.draft("target", embedding=np.ones(4, np.float32), measurements=measured(1))) == [
        "Automated quantification: LVEF 28 %."]
    assert sent[-1].HasField("measurements") and round(sent[-1].measurements.lvef_pct, 1) == 28.0
    list(svc.draft("retrieval", study_key="k" * 32))
    assert not sent[-1].HasField("measurements")  # an indexed study: the generator reads the index's


# --- contours computed here --------------------------------------------------------------------------------
def test_contours_of_a_local_study(synth_study: Path) -> None:
    view = contour_view(synth_study, FakeSegmenter())
    assert view.n_slices >= 8 and len(view.images) == len(view.labels) == view.n_slices
    assert view.images[0].dtype == np.uint8 and view.images[0].shape == view.masks[0].shape
    assert view.mid == view.n_slices // 2  # the fake's LV is largest mid-ventricle
    m = view.measurements
    assert m.model == SEG_VERSION and m.lvef_pct is not None and m.lvedv_ml is not None
    rows = curve_rows(m)
    assert {r["chamber"] for r in rows} == {"LV", "RV"} and len(rows) == 2 * len(m.lv_volume_curve_ml)
    gif = Image.open(io.BytesIO(contour_gif(view, view.mid)))
    assert gif.format == "GIF" and gif.n_frames == view.masks[0].shape[0] and gif.size[0] == 256
    frame = np.asarray(gif.convert("RGB"))
    assert (np.abs(frame.astype(int) - (255, 70, 70)).sum(axis=2) < 30).any()  # the LV endocardium is drawn


def test_a_study_without_a_short_axis_stack_has_no_contours(tmp_path: Path, synth_study: Path) -> None:
    import shutil

    import pydicom

    from cmr.dicom import load_study

    sax = {s.key for s in load_study(synth_study).series if s.kind == "cine" and s.view == "sax"}
    assert sax
    target = tmp_path / "no_sax_cine"
    for folder in sorted(p for p in synth_study.iterdir() if p.is_dir()):  # one folder per series
        first = next(f for f in sorted(folder.rglob("*")) if f.is_file())
        if str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID) not in sax:
            shutil.copytree(folder, target / folder.name)
    view = contour_view(target, FakeSegmenter())
    assert view.n_slices == 0 and view.measurements.quality == "failed"
    assert panel(view.measurements).markdown() == "Not measured: no short-axis cine stack in the study"


def test_content_keys() -> None:
    assert content_key(b"abc") == content_key(b"abc") != content_key(b"abd")


def test_folder_fingerprint_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.dcm").write_bytes(b"1")
    first = folder_fingerprint(tmp_path / "s")
    assert folder_fingerprint(tmp_path / "s") == first
    (tmp_path / "s" / "a.dcm").write_bytes(b"12")
    assert folder_fingerprint(tmp_path / "s") != first
