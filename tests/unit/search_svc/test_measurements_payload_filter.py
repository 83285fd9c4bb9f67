"""Measurements in the search index: the stored payload (strict, round-trips, from and to cmr.quant and the
contract), the range filter's translation to both engines, the service's request validation, the CLI's
`--where` syntax, and the cohort export's columns."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import qdrant_edge as edge
from qdrant_client import models as qm

from cmr.quant.proto import to_proto
from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements
from cmr.rpc.errors import InvalidArgument
from cmr.rpc.keys import study_key
from cmr.v1 import common_pb2, search_pb2
from search_svc import cohort as C
from search_svc.client import parse_where, search_filter
from search_svc.service import exam_filter, exam_record, stored_measurements
from search_svc.store import PAYLOAD_INDEXES
from search_svc.store.filters import to_client_filter, to_edge_filter
from search_svc.store.schema import ExamFilter, ExamMeasurements, ExamPayload, MeasureRange, NumberRange

UID = "1.2.826.0.1.3680043.8.498.87324255875663700220770605386554243443"


def quant(**changes: object) -> Measurements:
    m = Measurements(lvef_pct=32.5, lvedv_ml=210.4, lvesv_ml=142.0, lvsv_ml=68.4, lv_mass_g=151.2, rvef_pct=44.0,
                     rvedv_ml=180.0, rvesv_ml=100.8, ed_phase=0, es_phase=9, quality="check",
                     quality_reasons=["low segmentation confidence (0.71)"],
                     unavailable={k: "the study has no patient height and weight" for k in
                                  ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2",
                                   "rvesvi_ml_m2", "bsa_m2")},
                     lv_volume_curve_ml=[210.4, 190.1, 142.0], model="cmr-seg-small@f547f988ff82")
    for k, v in changes.items():
        setattr(m, k, v)
    return m


def payload(measurements: ExamMeasurements | None) -> ExamPayload:
    return ExamPayload(study_key=study_key(UID, "s"), vendor="siemens", model_version="cmr-clip-small",
                       study_date="2021-03-04", measurements=measurements)


# --- the stored payload ---------------------------------------------------------------------------------------
def test_measurements_are_stored_nested_with_only_measured_values() -> None:
    p = payload(ExamMeasurements.from_measurements(quant()))
    d = p.to_dict()["measurements"]
    assert d["lvef_pct"] == 32.5 and d["lvedv_ml"] == 210.4 and "bsa_m2" not in d and "lvedvi_ml_m2" not in d
    assert d["quality"] == "check" and d["quality_reasons"] == ["low segmentation confidence (0.71)"]
    assert d["unavailable"]["bsa_m2"] == "the study has no patient height and weight"
    assert d["model"] == "cmr-seg-small@f547f988ff82" and (d["ed_phase"], d["es_phase"]) == (0, 9)
    assert ExamPayload.from_dict(p.to_dict()) == p
    # every numeric field has a float payload index at the key the filters use
    assert all(PAYLOAD_INDEXES[f"measurements.{k}"].value == "float" for k in MEASUREMENT_FIELDS)


def test_old_payloads_without_measurements_still_read() -> None:
    p = payload(None)
    assert "measurements" not in p.to_dict()
    assert ExamPayload.from_dict(p.to_dict()).measurements is None
    assert not exam_record(p).HasField("measurements")


def test_quant_measurements_round_trip_through_payload_and_contract() -> None:
    m = quant()
    stored = stored_measurements(to_proto(m))  # what Upsert stores from an ExamUpsert
    assert stored is not None
    back = ExamPayload.from_dict(payload(stored).to_dict()).measurements
    assert back == stored
    msg = exam_record(payload(back)).measurements  # what Get / search hits / cohorts return
    assert msg.lvef_pct == pytest.approx(32.5) and msg.quality == "check" and not msg.HasField("bsa_m2")
    assert dict(msg.unavailable) == m.unavailable and list(msg.quality_reasons) == m.quality_reasons
    assert msg.model == m.model and (msg.ed_phase, msg.es_phase) == (0, 9)
    assert list(msg.lv_volume_curve_ml) == pytest.approx([210.4, 190.1, 142.0])
    # an unmeasurable study: nothing measured, every field explained
    failed = stored_measurements(to_proto(Measurements.unmeasurable("no short-axis cine stack in the study", "s@1")))
    assert failed is not None and failed.values == {} and set(failed.unavailable) == set(MEASUREMENT_FIELDS)
    assert stored_measurements(common_pb2.CardiacMeasurements()) is None  # the sender did not measure


@pytest.mark.parametrize(("changes", "words"), [
    ({"values": {"lvef": 30.0}}, "unknown measurements \\['lvef'\\]; valid: lvef_pct"),
    ({"values": {"lvef_pct": float("nan")}}, "finite"),
    ({"values": {"lvef_pct": "30"}}, "finite"),
    ({"quality": "good"}, "quality must be one of"),
    ({"unavailable": {"ef": "x"}}, "unknown measurements \\['ef'\\]"),
    ({"quality_reasons": "one string"}, "not one string"),
    ({"quality_reasons": ("x" * 501,)}, "at most 500"),
    ({"model": "Doe^John"}, "segmenter version"),
    ({"ed_phase": -1}, "phase index"),
    ({"lv_volume_curve_ml": (1.0, float("inf"))}, "finite"),
])
def test_measurements_payload_refuses_what_it_does_not_know(changes: dict, words: str) -> None:
    fields: dict = dict(values={"lvef_pct": 30.0}, quality="ok")
    fields.update(changes)
    with pytest.raises(ValueError, match=words):
        ExamMeasurements(**fields)


def test_payload_refuses_unknown_measurement_keys() -> None:
    d = payload(ExamMeasurements.from_measurements(quant())).to_dict()
    d["measurements"]["patient_weight_kg"] = 80.0  # body size itself is never stored: only what it indexes
    with pytest.raises(ValueError, match="unknown keys \\['patient_weight_kg'\\]"):
        ExamPayload.from_dict(d)


def test_upsert_measurements_without_a_quality_are_refused() -> None:
    with pytest.raises(ValueError, match="without a quality"):
        stored_measurements(common_pb2.CardiacMeasurements(lvef_pct=30.0))
    with pytest.raises(ValueError, match="quality must be one of"):
        stored_measurements(common_pb2.CardiacMeasurements(lvef_pct=30.0, quality="great", model="s@1"))


# --- the range filter -----------------------------------------------------------------------------------------
def test_measure_ranges_become_closed_number_ranges_on_the_nested_key() -> None:
    f = ExamFilter(vendors=("siemens",), measurements=(MeasureRange("lvef_pct", max=35.0),
                                                       MeasureRange("lvedv_ml", 150.0, 250.0),
                                                       MeasureRange("bsa_m2")))
    must = f.clauses().must
    assert must[1:] == (NumberRange("measurements.lvef_pct", None, 35.0),
                        NumberRange("measurements.lvedv_ml", 150.0, 250.0),
                        NumberRange("measurements.bsa_m2", None, None))
    e, c = to_edge_filter(f), to_client_filter(f)
    assert e is not None and c is not None and e.must is not None and c.must is not None
    assert c.must[1] == qm.FieldCondition(key="measurements.lvef_pct", range=qm.Range(lte=35.0))
    assert c.must[2] == qm.FieldCondition(key="measurements.lvedv_ml", range=qm.Range(gte=150.0, lte=250.0))
    assert c.must[3].range.gte == e.must[3].range.gte < -1e300  # type: ignore[union-attr]  # "has a value"
    for cond, (lo, hi) in zip(e.must[1:3], ((None, 35.0), (150.0, 250.0))):
        assert isinstance(cond, edge.FieldCondition) and cond.key.startswith("measurements.")
        assert isinstance(cond.range, edge.RangeFloat) and (cond.range.gte, cond.range.lte) == (lo, hi)


def test_measure_range_validation_names_the_field_and_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown measurement 'ef'.*valid: lvef_pct, lvedv_ml"):
        MeasureRange("ef", max=35.0)
    with pytest.raises(ValueError, match="lvef_pct: min 50 is greater than max 35"):
        MeasureRange("lvef_pct", 50.0, 35.0)
    with pytest.raises(ValueError, match="finite"):
        MeasureRange("lvef_pct", float("nan"))
    with pytest.raises(ValueError, match="not one range"):
        ExamFilter(measurements=MeasureRange("lvef_pct", max=1.0))  # type: ignore[arg-type]


def _rpc_filter(*ranges: common_pb2.MeasurementRange) -> search_pb2.SearchFilter:
    return search_pb2.SearchFilter(measurements=list(ranges))


def test_service_filter_validation_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"filter.measurements\[1\]: unknown measurement 'lvef'.*"
                                              r"valid: lvef_pct.*bsa_m2"):
        exam_filter(_rpc_filter(common_pb2.MeasurementRange(measure="lvef_pct", max=35),
                                common_pb2.MeasurementRange(measure="lvef", max=35)))
    with pytest.raises(InvalidArgument, match=r"filter.measurements\[0\]: .*lvedv_ml: min 300 is greater than max"):
        exam_filter(_rpc_filter(common_pb2.MeasurementRange(measure="lvedv_ml", min=300, max=200)))
    with pytest.raises(InvalidArgument, match="finite"):
        exam_filter(_rpc_filter(common_pb2.MeasurementRange(measure="lvedv_ml", min=float("inf"))))


def test_service_reads_32_bit_bounds_as_the_decimals_written() -> None:
    f = exam_filter(_rpc_filter(common_pb2.MeasurementRange(measure="lvef_pct", min=35.3, max=60.1)))
    assert f.measurements == (MeasureRange("lvef_pct", 35.3, 60.1),)  # not 35.29999923706055


# --- the CLI syntax (search_svc.client.parse_where) ------------------------------------------------------------
@pytest.mark.parametrize(("text", "lo", "hi"), [
    ("lvef_pct<=35", None, 35.0), ("lvef_pct >= 50", 50.0, None), ("LVEDV_ML=150..250", 150.0, 250.0),
    ("lv_mass_g:..90", None, 90.0), ("rvedv_ml 200..", 200.0, None),
])
def test_where_syntax(text: str, lo: float | None, hi: float | None) -> None:
    r = parse_where(text)
    got = (r.min if r.HasField("min") else None, r.max if r.HasField("max") else None)
    assert got == (lo, hi) and r.measure in MEASUREMENT_FIELDS


def test_strict_comparisons_exclude_the_bound_itself() -> None:
    below, above = parse_where("lvef_pct<35"), parse_where("lvef_pct>35")
    f = exam_filter(_rpc_filter(below, above))
    lo_range, hi_range = f.measurements
    assert lo_range.max is not None and 34.99 < lo_range.max < 35.0  # a stored 35.0 is out, 34.99 in
    assert hi_range.min is not None and 35.0 < hi_range.min < 35.01


@pytest.mark.parametrize(("text", "words"), [
    ("lvef<35", "unknown measurement 'lvef'; valid: lvef_pct"), ("lvef_pct<<35", "cannot read"),
    ("lvef_pct", "cannot read"), ("lvef_pct=60..40", "empty"), ("lvef_pct=..", "at least one bound"),
    ("lvef_pct<thirty", "cannot read"),
])
def test_bad_where_is_one_clear_error(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as exc:
        parse_where(text)
    assert "\n" not in str(exc.value)


def test_search_filter_takes_where_texts() -> None:
    f = search_filter(vendors=["ge"], where=["lvef_pct<=35", common_pb2.MeasurementRange(measure="bsa_m2", min=2)])
    assert [r.measure for r in f.measurements] == ["lvef_pct", "bsa_m2"] and f.measurements[0].max == 35.0


# --- the cohort export ---------------------------------------------------------------------------------------
def test_cohort_export_has_one_column_per_measurement() -> None:
    measured = payload(ExamMeasurements.from_measurements(quant()))
    unmeasured = ExamPayload(study_key=study_key(UID[:-1] + "9", "s"), vendor="ge", model_version="cmr-clip-small")
    query = C.CohortQuery(all_of=("dilated lv",), any_of=(), none_of=(), filter=ExamFilter(), threshold=0.5)
    cohort = C.Cohort(query, [C.CohortMember(measured, 0.9, {"dilated lv": 0.9}),
                              C.CohortMember(unmeasured, 0.8, {"dilated lv": 0.8})], 2)
    table = C.to_table(cohort)
    assert set(MEASUREMENT_FIELDS) <= set(table.columns)
    assert table.loc[0, "lvef_pct"] == 32.5 and np.isnan(table.loc[0, "bsa_m2"]) and np.isnan(table.loc[1, "lvef_pct"])
    assert list(table["measurement_quality"]) == ["check", ""]
    data, _, _ = C.export_bytes(cohort, "csv")
    csv = pd.read_csv(io.BytesIO(data))
    assert csv.loc[0, "lvef_pct"] == 32.5 and csv.loc[0, "lvedv_ml"] == 210.4 and pd.isna(csv.loc[1, "lvef_pct"])
    data, _, _ = C.export_bytes(cohort, "parquet")
    parquet = pd.read_parquet(io.BytesIO(data))
    assert parquet["lvef_pct"].dtype == np.float64 and parquet.loc[0, "lvef_pct"] == 32.5
