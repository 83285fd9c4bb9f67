"""Measurements <-> the cmr.v1.CardiacMeasurements contract (services, events, the index)."""

from __future__ import annotations

from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements
from cmr.v1 import common_pb2


def to_proto(m: Measurements) -> common_pb2.CardiacMeasurements:
    msg = common_pb2.CardiacMeasurements(quality=m.quality, quality_reasons=list(m.quality_reasons),
                                         unavailable=dict(m.unavailable), model=m.model,
                                         lv_volume_curve_ml=list(m.lv_volume_curve_ml))
    for k, v in m.values().items():
        if v is not None:
            setattr(msg, k, float(v))
    if m.ed_phase is not None:
        msg.ed_phase = m.ed_phase
    if m.es_phase is not None:
        msg.es_phase = m.es_phase
    return msg


def from_proto(msg: common_pb2.CardiacMeasurements) -> Measurements | None:
    """None for an empty message (the sender did not measure)."""
    if not msg.quality and not msg.model:
        return None
    m = Measurements(quality=msg.quality or "failed", quality_reasons=list(msg.quality_reasons),  # type: ignore[arg-type]
                     unavailable=dict(msg.unavailable), model=msg.model,
                     lv_volume_curve_ml=[round(float(v), 1) for v in msg.lv_volume_curve_ml])
    for k in MEASUREMENT_FIELDS:
        if msg.HasField(k):
            setattr(m, k, round(float(getattr(msg, k)), 2))
    m.ed_phase = msg.ed_phase if msg.HasField("ed_phase") else None
    m.es_phase = msg.es_phase if msg.HasField("es_phase") else None
    return m
