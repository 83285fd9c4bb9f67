"""measure_study's default way (quick volume curve, then ED and ES at full resolution) with drawn masks: what
it does when the quick curve and the full-resolution masks disagree."""

from __future__ import annotations

import copy


from cmr.dicom.reader import load_study
from cmr.quant.labels import LV_CAVITY
from cmr.quant.measure import measure_study
from fake_segmenter import DrawnMaskSegmenter, two_slice_stack
from realdata_paths import SUNNYBROOK_MIDSLICE


class BeatingHeart(DrawnMaskSegmenter):
    """A cavity largest at phase 0 and smallest half-way through the cycle, on every slice."""

    cavity_px, systole_px, wall_px = 20.0, 8.0, 5.0
    rv_half_height_px, rv_gap_px, rv_width_px = 8, 10, 20


class UpsideDownCurve(BeatingHeart):
    """The quick pass gets the cycle the wrong way round (systole looks like diastole)."""

    def area_curves(self, slices, centre):  # noqa: ANN001, ANN201
        return [a.max(axis=0, keepdims=True) + a.min(axis=0, keepdims=True) - a
                for a in super().area_curves(slices, centre)]


def _two_slice_stack():  # noqa: ANN202
    return two_slice_stack(load_study(SUNNYBROOK_MIDSLICE))


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
