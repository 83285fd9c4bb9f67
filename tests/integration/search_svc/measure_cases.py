"""Exams with known measurements for the service tests: the session's encoded upserts (real vectors) with
measurements attached the way the ingest worker sends them (cmr.quant.proto.to_proto). The shipped segmenter
is a placeholder, so the numbers are set here, not measured: these tests are about the plumbing."""

from __future__ import annotations

from cmr.quant.proto import to_proto
from cmr.quant.volumes import Measurements
from cmr.v1 import common_pb2, search_pb2

SEGMENTER = "cmr-seg-small@0123456789ab"
EXACT_35 = 8  # the exam whose LVEF is exactly 35.0: out of `< 35`, in `<= 35`


def lvef_of(i: int) -> float:
    return 15.0 + 2.5 * i  # 15, 17.5, ..., 35.0 at i = 8, ...


def measurement_of(i: int) -> common_pb2.CardiacMeasurements | None:
    """Every sixth exam from the 6th on is unmeasured (indexed before measurements existed), every sixth from
    the 5th has no SAX stack (all unavailable); the rest are measured, the even ones with height and weight."""
    if i % 6 == 5:
        return None
    if i % 6 == 4:
        return to_proto(Measurements.unmeasurable("no short-axis cine stack in the study", SEGMENTER))
    lvedv, lvesv = 100.0 + 10 * i, 50.0 + 5 * i
    m = Measurements(lvef_pct=lvef_of(i), lvedv_ml=lvedv, lvesv_ml=lvesv, lvsv_ml=lvedv - lvesv, lv_mass_g=120.0 + i,
                     quality="ok" if i % 3 else "check", model=SEGMENTER, ed_phase=0, es_phase=7,
                     quality_reasons=[] if i % 3 else ["low segmentation confidence (0.75)"],
                     lv_volume_curve_ml=[lvedv, lvesv])
    rv = "no right ventricle found in the short-axis stack"
    m.unavailable = {k: rv for k in ("rvef_pct", "rvedv_ml", "rvesv_ml", "rvedvi_ml_m2", "rvesvi_ml_m2")}
    if i % 2 == 0:
        m.bsa_m2 = 1.9
        m.lvedvi_ml_m2, m.lvesvi_ml_m2 = round(lvedv / 1.9, 1), round(lvesv / 1.9, 1)
        m.lv_mass_index_g_m2 = round((120.0 + i) / 1.9, 1)
    else:
        m.unavailable |= {k: "the study has no patient height and weight"
                          for k in ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "bsa_m2")}
    return to_proto(m)


def measured_upserts(upserts: list[search_pb2.ExamUpsert]) -> list[search_pb2.ExamUpsert]:
    out = []
    for i, u in enumerate(upserts):
        c = search_pb2.ExamUpsert()
        c.CopyFrom(u)
        m = measurement_of(i)
        if m is not None:
            c.measurements.CopyFrom(m)
        out.append(c)
    return out


def lvef_below(upserts: list[search_pb2.ExamUpsert], bound: float, inclusive: bool = False) -> list[int]:
    """Indices of the exams whose LVEF is below the bound (the definition the service must agree with)."""
    out = []
    for i in range(len(upserts)):
        m = measurement_of(i)
        if m is not None and m.HasField("lvef_pct") and (m.lvef_pct < bound or (inclusive and m.lvef_pct == bound)):
            out.append(i)
    return out
