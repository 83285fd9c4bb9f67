"""measure_study's default way (quick volume curve, then ED and ES at full resolution) with drawn masks: what
it does when the quick curve and the full-resolution masks disagree."""

from __future__ import annotations

import copy

import numpy as np

from cmr.dicom.reader import load_study
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.measure import measure_study
from fake_segmenter import DrawnMaskSegmenter
from realdata_paths import SUNNYBROOK_MIDSLICE


class BeatingHeart(DrawnMaskSegmenter):
    """A cavity largest at phase 0 and smallest half-way through the cycle, on every slice."""

    def draw(self, k: int, n_slices: int, phases: int, rows: int, cols: int) -> np.ndarray:
        rr, cc = np.mgrid[:rows, :cols]
        d = np.hypot(rr - rows / 2, cc - cols / 2)
        m = np.zeros((phases, rows, cols), np.uint8)
        for p in range(phases):
            r = 20.0 - 8.0 * np.sin(np.pi * p / phases)
            m[p][(d > r) & (d <= r + 5)] = LV_MYOCARDIUM
            m[p][d <= r] = LV_CAVITY
            m[p][(np.abs(rr - rows / 2) < 8) & (cc > cols / 2 + r + 10) & (cc < cols / 2 + r + 30)] = RV_CAVITY
        return m


class UpsideDownCurve(BeatingHeart):
    """The quick pass gets the cycle the wrong way round (systole looks like diastole)."""

    def area_curves(self, slices, centre):  # noqa: ANN001, ANN201
        a = super().area_curves(slices, centre)
        return a.max(axis=1, keepdims=True) + a.min(axis=1, keepdims=True) - a


def _two_slice_stack():  # noqa: ANN202 - the Sunnybrook mid slice twice, 8 mm apart
    study = load_study(SUNNYBROOK_MIDSLICE)
    s = study.series[0]
    normal = np.cross(s.orientation[:3], s.orientation[3:])
    s.pixels = np.concatenate([s.pixels, s.pixels])
    s.positions = np.vstack([s.positions, s.positions + 8.0 * normal])
    s.trigger_times = np.vstack([s.trigger_times, s.trigger_times])
    return study


def test_the_default_segments_only_ed_and_es_and_matches_every_phase() -> None:
    study = _two_slice_stack()
    fast, full = measure_study(study, BeatingHeart()), measure_study(copy.deepcopy(study), BeatingHeart(),
                                                                    all_phases=True)
    ed, es = full.measurements.ed_phase, full.measurements.es_phase
    assert ed == 0 and es in (9, 10, 11) and fast.mask_phases == [ed, es] and len(full.mask_phases) == 20
    assert fast.measurements.lvef_pct == full.measurements.lvef_pct > 0
    assert fast.measurements.lv_volume_curve_ml == full.measurements.lv_volume_curve_ml
    assert not any("swapped" in r for r in fast.measurements.quality_reasons)


def test_full_resolution_masks_overrule_an_upside_down_quick_curve() -> None:
    study = _two_slice_stack()
    right = measure_study(study, BeatingHeart()).measurements
    sm = measure_study(study, UpsideDownCurve())
    m = sm.measurements
    assert (m.ed_phase, m.es_phase) == (right.ed_phase, right.es_phase) and sm.mask_phases == [0, right.es_phase]
    assert m.lvef_pct == right.lvef_pct and m.lvedv_ml == right.lvedv_ml and m.lvef_pct > 0
    assert m.quality == "check" and any("swapped" in r for r in m.quality_reasons)
    # the masks follow the phases they are labelled with: the ED frame holds the larger cavity
    assert (sm.masks_at(0, 0) == LV_CAVITY).sum() > (sm.masks_at(0, right.es_phase) == LV_CAVITY).sum()
