"""A loaded study -> masks and measurements: the short-axis cine stack, segmented and measured.

The stack is the one exam assembly uses (cmr.dicom.exam.sax_stack: parallel SAX series merged, slices ordered
base -> apex along the LV long axis). Slices of different series may differ in phase count: each is mapped
onto the longest slice's phase grid by relative position in the cycle (nearest phase, no interpolation), so
the volume curve sums one cardiac phase at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cmr.dicom.classify import estimate_long_axis
from cmr.dicom.exam import SliceRef, sax_stack
from cmr.dicom.model import Study
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.segmenter import Segmenter, SliceImages, StackSegmentation
from cmr.quant.volumes import Measurements, measurements_from_discs

_ASSUMED_SPACING_MM = 10.0


@dataclass
class StudyMeasurement:
    """What `cmr measure` reports for one study."""

    measurements: Measurements
    masks: list[NDArray[np.uint8]] = field(default_factory=list)  # per slice [phases, rows, cols], base -> apex
    slices: list[SliceRef] = field(default_factory=list)
    phase_index: list[NDArray[np.intp]] = field(default_factory=list)  # per slice: common phase -> own phase
    slice_spacing_mm: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # segmenter stages + measure

    def to_dict(self) -> dict[str, Any]:
        return {**self.measurements.to_dict(), "slice_spacing_mm": self.slice_spacing_mm,
                "n_slices": len(self.slices)}


def _slice_images(ref: SliceRef) -> SliceImages:
    s, i = ref
    return SliceImages(s.pixels[i], s.pixel_spacing, s.positions[i], s.orientation)


def _stack_spacing(refs: list[SliceRef], direction: NDArray[np.float64]) -> float | None:
    if len(refs) < 2:
        return None
    d = np.array([float(s.positions[i] @ direction) for s, i in refs])
    steps = np.abs(np.diff(d))
    steps = steps[steps > 0.1]
    return float(np.median(steps)) if steps.size else None


def _phase_maps(refs: list[SliceRef]) -> tuple[int, list[NDArray[np.intp]]]:
    n = max(s.n_phases for s, _ in refs)
    maps = [np.minimum((np.arange(n) * s.n_phases) // n, s.n_phases - 1).astype(np.intp) for s, _ in refs]
    return n, maps


def measure_study(study: Study, segmenter: Segmenter) -> StudyMeasurement:
    """Segment the study's short-axis cine stack and measure it. Never raises for a study without one: the
    measurements are then all None with the reason."""
    axis = estimate_long_axis(study.series)
    refs = sax_stack(study, "cine", axis)
    if not refs:
        return StudyMeasurement(Measurements.unmeasurable("no short-axis cine stack in the study", segmenter.version))
    if len(refs) < 2:
        return StudyMeasurement(Measurements.unmeasurable(
            "one short-axis cine slice only: volumes need a stack", segmenter.version), slices=refs)
    notes: list[str] = []
    spacing = _stack_spacing(refs, axis.direction)
    if spacing is None:
        spacing = _ASSUMED_SPACING_MM
        notes.append(f"slice positions do not give a spacing: {spacing:g} mm assumed")
    seg: StackSegmentation = segmenter.segment([_slice_images(r) for r in refs])
    t_measure = time.perf_counter()
    if not seg.found_heart:
        notes.append("the heart was not found in the first pass; the image centre was used")
    n_phases, phase_maps = _phase_maps(refs)
    disc: dict[int, NDArray[np.float64]] = {}
    for label in (LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY):
        rows = []
        for (s, _), mask, pmap in zip(refs, seg.masks, phase_maps):
            area_ml = float(s.pixel_spacing[0]) * float(s.pixel_spacing[1]) * spacing / 1000.0
            rows.append((mask[pmap] == label).sum(axis=(1, 2)) * area_ml)
        disc[label] = np.asarray(rows, dtype=np.float64)
    m = measurements_from_discs(disc, height_m=study.patient_height_m, weight_kg=study.patient_weight_kg,
                                confidence=seg.confidence, notes=notes, model=segmenter.version)
    seconds = {**seg.seconds, "measure": time.perf_counter() - t_measure}
    return StudyMeasurement(m, seg.masks, refs, phase_maps, spacing, seconds)
