"""A stand-in for cmr.quant.segmenter.Segmenter whose masks are drawn, not predicted: subclasses draw every
phase of a slice; this base answers the calls cmr.quant.measure.measure_study makes (locate the heart, the
quick volume-curve pass, full-resolution masks of chosen phases) from those drawings, so the measuring code
under test runs unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cmr.quant.segmenter import StackSegmentation

N_CLASSES = 4


class DrawnMaskSegmenter:
    version = "drawn-masks@000000000000"

    def draw(self, k: int, n_slices: int, phases: int, rows: int, cols: int) -> NDArray[np.uint8]:
        """Slice k's masks [phases, rows, cols]."""
        raise NotImplementedError

    def _all(self, slices: Sequence[Any]) -> list[NDArray[np.uint8]]:
        return [self.draw(k, len(slices), *s.pixels.shape) for k, s in enumerate(slices)]

    def locate_heart(self, slices: Sequence[Any]) -> tuple[NDArray[np.float64], bool]:
        return np.zeros(3), True

    def area_curves(self, slices: Sequence[Any], centre: Any) -> NDArray[np.float64]:
        out = []
        for s, m in zip(slices, self._all(slices)):
            px = float(s.pixel_spacing[0]) * float(s.pixel_spacing[1])
            out.append(np.stack([(m == c).sum(axis=(1, 2)) for c in range(N_CLASSES)], axis=1) * px)
        return np.asarray(out, dtype=np.float64)

    def segment(self, slices: Sequence[Any], phases: Sequence[Sequence[int]] | None = None,
                centre: Any = None, found: bool = True) -> StackSegmentation:
        masks = self._all(slices)
        if phases is not None:
            masks = [m[list(p)] for m, p in zip(masks, phases)]
        return StackSegmentation(masks, 0.95, np.zeros(3), True)
