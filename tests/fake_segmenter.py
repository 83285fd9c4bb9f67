"""A stand-in for cmr.quant.segmenter.Segmenter whose masks are drawn, not predicted: subclasses draw every
phase of a slice; this base answers the calls cmr.quant.measure.measure_study makes (locate the heart, the
quick volume-curve pass, full-resolution masks of chosen phases) from those drawings, so the measuring code
under test runs unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.segmenter import StackSegmentation

N_CLASSES = 4


class DrawnMaskSegmenter:
    """By default every slice shows an LV cavity disc that shrinks from phase 0 to mid-cycle inside a
    myocardial ring, with an RV block beside it (sizes in pixels: the class attributes)."""

    version = "drawn-masks@000000000000"
    cavity_px, systole_px, wall_px = 14.0, 5.0, 4.0
    rv_half_height_px, rv_gap_px, rv_width_px = 6, 8, 16

    def draw(self, k: int, n_slices: int, phases: int, rows: int, cols: int) -> NDArray[np.uint8]:
        """Slice k's masks [phases, rows, cols]."""
        rr, cc = np.mgrid[:rows, :cols]
        d = np.hypot(rr - rows / 2, cc - cols / 2)
        m = np.zeros((phases, rows, cols), np.uint8)
        for p in range(phases):
            r = self.cavity_px - self.systole_px * np.sin(np.pi * p / phases)
            rv_start = cols / 2 + r + self.rv_gap_px
            m[p][(d > r) & (d <= r + self.wall_px)] = LV_MYOCARDIUM
            m[p][d <= r] = LV_CAVITY
            m[p][(np.abs(rr - rows / 2) < self.rv_half_height_px) & (cc > rv_start)
                 & (cc < rv_start + self.rv_width_px)] = RV_CAVITY
        return m

    def _all(self, slices: Sequence[Any]) -> list[NDArray[np.uint8]]:
        return [self.draw(k, len(slices), *s.pixels.shape) for k, s in enumerate(slices)]

    def locate_heart(self, slices: Sequence[Any]) -> tuple[NDArray[np.float64], bool]:
        return np.zeros(3), True

    def area_curves(self, slices: Sequence[Any], centre: Any) -> list[NDArray[np.float64]]:
        out = []
        for s, m in zip(slices, self._all(slices)):
            px = float(s.pixel_spacing[0]) * float(s.pixel_spacing[1])
            out.append(np.stack([(m == c).sum(axis=(1, 2)) for c in range(N_CLASSES)], axis=1) * px)
        return out

    def segment(self, slices: Sequence[Any], phases: Sequence[Sequence[int]] | None = None,
                centre: Any = None, found: bool = True) -> StackSegmentation:
        masks = self._all(slices)
        if phases is not None:
            masks = [m[list(p)] for m, p in zip(masks, phases)]
        return StackSegmentation(masks, 0.95, np.zeros(3), True)


def two_slice_stack(study: Any) -> Any:
    """A copy of a one-slice cine study with the slice twice, 8 mm apart along its normal: the smallest
    stack that reaches the network and the volume code."""
    import copy

    study = copy.deepcopy(study)
    s = study.series[0]
    normal = np.cross(s.orientation[:3], s.orientation[3:])
    s.pixels = np.concatenate([s.pixels, s.pixels])
    s.positions = np.vstack([s.positions, s.positions + 8.0 * normal])
    s.trigger_times = np.vstack([s.trigger_times, s.trigger_times])
    return study
