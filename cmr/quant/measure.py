"""A loaded study -> masks and measurements: the short-axis cine stack, segmented and measured.

The stack is the one exam assembly uses (cmr.dicom.exam.sax_stack: parallel SAX series merged, slices ordered
base -> apex along the LV long axis). Slices of different series may differ in phase count: each is mapped
onto the longest slice's phase grid by relative position in the cycle (nearest phase, no interpolation), so
the volume curve sums one cardiac phase at a time.

Two ways to measure, the same numbers by design:
- the default (what the services run): a quick pass over every slice and phase at the curve resolution gives
  the LV and RV volume curves, end-diastole and end-systole are read off the LV curve, and only those two
  phases are segmented at full resolution (with test-time augmentation) for the measurements: what a reader
  does, who contours ED and ES;
- `all_phases=True` (`cmr measure --masks`, the UI's cine loop): every slice and phase at full resolution,
  ED/ES from that curve; about five times the work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cmr.dicom.classify import estimate_long_axis
from cmr.dicom.exam import SliceRef, sax_stack
from cmr.dicom.model import Study
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.segmenter import Segmenter, SliceImages
from cmr.quant.volumes import Measurements, ed_es_phases, measurements_from_discs

_ASSUMED_SPACING_MM = 10.0
_MEASURED = (LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY)


@dataclass
class Stack:
    """The short-axis cine stack of a study, ready to segment."""

    refs: list[SliceRef]
    slices: list[SliceImages]
    spacing_mm: float
    n_phases: int  # of the common phase grid
    phase_maps: list[NDArray[np.intp]]  # per slice: common phase -> the slice's own phase
    notes: list[str]

    def own_phases(self, common: Sequence[int]) -> list[list[int]]:
        return [[int(pm[p]) for p in common] for pm in self.phase_maps]

    def voxel_ml(self, k: int) -> float:
        s, _ = self.refs[k]
        return float(s.pixel_spacing[0]) * float(s.pixel_spacing[1]) * self.spacing_mm / 1000.0


@dataclass
class StudyMeasurement:
    """What `cmr measure` reports for one study."""

    measurements: Measurements
    masks: list[NDArray[np.uint8]] = field(default_factory=list)  # per slice [len(mask_phases), rows, cols]
    slices: list[SliceRef] = field(default_factory=list)  # base -> apex
    mask_phases: list[int] = field(default_factory=list)  # the common phase of each mask frame
    phase_index: list[NDArray[np.intp]] = field(default_factory=list)  # per slice: common phase -> own phase
    slice_spacing_mm: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # segmenter stages + measure

    def masks_at(self, k: int, common_phase: int) -> NDArray[np.uint8] | None:
        """Slice k's mask at a common phase, when that phase was segmented."""
        if common_phase not in self.mask_phases:
            return None
        return self.masks[k][self.mask_phases.index(common_phase)]

    def images(self, k: int) -> NDArray[np.float32]:
        """Slice k's images at the phases its masks cover, frame for frame."""
        s, i = self.slices[k]
        return s.pixels[i][[int(self.phase_index[k][p]) for p in self.mask_phases]]

    def to_dict(self) -> dict[str, Any]:
        return {**self.measurements.to_dict(), "slice_spacing_mm": self.slice_spacing_mm,
                "n_slices": len(self.slices), "phases_segmented": len(self.mask_phases)}


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


def stack_of(study: Study) -> Stack | str:
    """The study's short-axis cine stack, or why it cannot be measured."""
    axis = estimate_long_axis(study.series)
    refs = sax_stack(study, "cine", axis)
    if not refs:
        return "no short-axis cine stack in the study"
    if len(refs) < 2:
        return "one short-axis cine slice only: volumes need a stack"
    notes: list[str] = []
    spacing = _stack_spacing(refs, axis.direction)
    if spacing is None:
        spacing = _ASSUMED_SPACING_MM
        notes.append(f"slice positions do not give a spacing: {spacing:g} mm assumed")
    n, maps = _phase_maps(refs)
    return Stack(refs, [_slice_images(r) for r in refs], spacing, n, maps, notes)


def _discs(stack: Stack, masks: list[NDArray[np.uint8]]) -> dict[int, NDArray[np.float64]]:
    """label -> [slices, mask frames] disc volumes (ml) of full-resolution masks."""
    return {label: np.asarray([(m == label).sum(axis=(1, 2)) * stack.voxel_ml(k) for k, m in enumerate(masks)],
                              dtype=np.float64) for label in _MEASURED}


def measure_study(study: Study, segmenter: Segmenter, *, all_phases: bool = False) -> StudyMeasurement:
    """Segment the study's short-axis cine stack and measure it (see the module doc for the two ways). Never
    raises for a study without a stack: the measurements are then all None with the reason."""
    stack = stack_of(study)
    if isinstance(stack, str):
        refs = sax_stack(study, "cine", estimate_long_axis(study.series))
        return StudyMeasurement(Measurements.unmeasurable(stack, segmenter.version), slices=refs)
    t0 = time.perf_counter()
    centre, found = segmenter.locate_heart(stack.slices)
    seconds: dict[str, float] = {"locate": time.perf_counter() - t0}
    notes = list(stack.notes)
    if not found:
        notes.append("the heart was not found in the first pass; the image centre was used")
    kw: dict[str, Any] = {"height_m": study.patient_height_m, "weight_kg": study.patient_weight_kg,
                          "notes": notes, "model": segmenter.version}
    if all_phases or stack.n_phases < 2:
        common = list(range(stack.n_phases))
        seg = segmenter.segment(stack.slices, phases=stack.own_phases(common), centre=centre, found=found)
        t1 = time.perf_counter()
        m = measurements_from_discs(_discs(stack, seg.masks), confidence=seg.confidence, **kw)
    else:
        t1 = time.perf_counter()
        areas = segmenter.area_curves(stack.slices, centre)  # per slice [own phases, classes] mm^2
        curve = {label: np.asarray([areas[k][pm, label] * stack.spacing_mm / 1000.0
                                    for k, pm in enumerate(stack.phase_maps)]).sum(axis=0)
                 for label in (LV_CAVITY, RV_CAVITY)}
        seconds["curve"] = time.perf_counter() - t1
        ed, es = ed_es_phases(curve[LV_CAVITY])
        common = [ed, es]
        seg = segmenter.segment(stack.slices, phases=stack.own_phases(common), centre=centre, found=found)
        t1 = time.perf_counter()
        discs = _discs(stack, seg.masks)
        lv_full = discs[LV_CAVITY].sum(axis=0)
        if ed != es and lv_full[1] > lv_full[0]:
            # The full-resolution masks are the better judge of which of the two phases is the larger: the
            # quick pass had them the other way round (seen on real scans with thick walls or dark blood).
            common, seg.masks = [es, ed], [m[::-1].copy() for m in seg.masks]
            discs = {label: d[:, ::-1] for label, d in discs.items()}
            kw["notes"].append("end-diastole and end-systole were swapped by the full-resolution masks: the "
                               "quick volume curve is unreliable for this study")
        m = measurements_from_discs(discs, confidence=seg.confidence, phases=(common[0], common[1]),
                                    curves=(curve[LV_CAVITY], curve[RV_CAVITY]), **kw)
    seconds.update({k: v for k, v in seg.seconds.items() if k != "locate"})
    seconds["measure"] = time.perf_counter() - t1
    return StudyMeasurement(m, seg.masks, stack.refs, common, stack.phase_maps, stack.spacing_mm, seconds)


def segment_phases(study: Study, segmenter: Segmenter, common_phases: Sequence[int]) -> tuple[Stack, list[NDArray[np.uint8]]] | None:
    """Full-resolution masks of chosen phases of the stack (e.g. the frames a reference was drawn on)."""
    stack = stack_of(study)
    if isinstance(stack, str):
        return None
    seg = segmenter.segment(stack.slices, phases=stack.own_phases(common_phases))
    return stack, seg.masks
