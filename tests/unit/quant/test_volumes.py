"""Measurements from masks: disc summation, EF, mass, indexing, ED/ES from the curve and what cannot be
measured, on masks whose volumes are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements, measurements_from_masks, mosteller_bsa


def _disc(shape: tuple[int, int], radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _heart(phases: int = 4, slices: int = 6, lv_r: tuple[float, ...] = (20, 18, 14, 16), rv: bool = True) -> np.ndarray:
    """LV cavity disc, a 4-pixel myocardial ring, an RV disc beside it; cavity radius per phase."""
    masks = np.zeros((slices, phases, 96, 96), np.uint8)
    for p in range(phases):
        r = lv_r[p % len(lv_r)]
        cav = _disc((96, 96), r, (48, 56))
        myo = _disc((96, 96), r + 4, (48, 56)) & ~cav
        rvm = _disc((96, 96), 10 + p % 2, (48, 22)) if rv else np.zeros((96, 96), bool)
        for s in range(slices - 1):  # the last (apical) slice is empty
            masks[s, p][rvm] = RV_CAVITY
            masks[s, p][myo] = LV_MYOCARDIUM
            masks[s, p][cav] = LV_CAVITY
    return masks


def test_volumes_ef_and_mass_follow_the_disc_method() -> None:
    masks = _heart()
    m = measurements_from_masks(masks, (1.5, 1.5), 8.0)
    voxel_ml = 1.5 * 1.5 * 8.0 / 1000.0
    lv = [(masks[:, p] == LV_CAVITY).sum() * voxel_ml for p in range(4)]
    myo_ed = (masks[:, 0] == LV_MYOCARDIUM).sum() * voxel_ml
    assert m.ed_phase == 0 and m.es_phase == 2
    assert m.lvedv_ml == pytest.approx(lv[0], abs=0.05)
    assert m.lvesv_ml == pytest.approx(lv[2], abs=0.05)
    assert m.lvef_pct == pytest.approx(100 * (lv[0] - lv[2]) / lv[0], abs=0.05)
    assert m.lvsv_ml == pytest.approx(lv[0] - lv[2], abs=0.1)
    assert m.lv_mass_g == pytest.approx(myo_ed * 1.05, abs=0.1)
    # The RV is measured at the LV's ED and ES phases (ACDC convention), not at its own extremes.
    rv = [(masks[:, p] == RV_CAVITY).sum() * voxel_ml for p in range(4)]
    assert m.rvedv_ml == pytest.approx(rv[0], abs=0.05)
    assert m.rvef_pct == pytest.approx(100 * (rv[0] - rv[2]) / rv[0], abs=0.05)
    assert m.lv_volume_curve_ml == pytest.approx([round(v, 1) for v in lv])
    assert m.quality == "check" and any("height and weight" in v for v in m.unavailable.values())


def test_indexed_values_use_the_mosteller_bsa() -> None:
    m = measurements_from_masks(_heart(), (1.5, 1.5), 8.0, height_m=1.80, weight_kg=81.0)
    bsa = mosteller_bsa(1.80, 81.0)
    assert bsa == pytest.approx(np.sqrt(180 * 81 / 3600))
    assert m.bsa_m2 == pytest.approx(bsa, abs=0.005)
    assert m.lvedvi_ml_m2 == pytest.approx(m.lvedv_ml / bsa, abs=0.1)
    assert m.lv_mass_index_g_m2 == pytest.approx(m.lv_mass_g / bsa, abs=0.1)
    assert not m.unavailable
    assert mosteller_bsa(1.8, None) is None and mosteller_bsa(18.0, 80.0) is None  # cm written as m


def test_what_cannot_be_measured_is_none_with_the_reason() -> None:
    one_phase = measurements_from_masks(_heart(phases=1), (1.5, 1.5), 8.0)
    assert one_phase.lvedv_ml is not None and one_phase.lvef_pct is None
    assert "one cardiac phase" in one_phase.unavailable["lvef_pct"]
    no_rv = measurements_from_masks(_heart(rv=False), (1.5, 1.5), 8.0)
    assert no_rv.rvef_pct is None and "right ventricle" in no_rv.unavailable["rvef_pct"]
    assert "right ventricle not found" in no_rv.quality_reasons
    empty = measurements_from_masks(np.zeros((5, 3, 32, 32), np.uint8), (1.5, 1.5), 8.0)
    assert empty.quality == "failed" and all(v is None for v in empty.values().values())
    assert set(empty.unavailable) == set(MEASUREMENT_FIELDS)


def test_quality_flags_a_stack_that_misses_the_apex_whichever_way_it_runs() -> None:
    masks = _heart()
    covered = measurements_from_masks(masks, (1.5, 1.5), 8.0, height_m=1.7, weight_kg=70)
    apex_first = measurements_from_masks(masks[::-1].copy(), (1.5, 1.5), 8.0, height_m=1.7, weight_kg=70)
    assert not any("apex" in r for r in covered.quality_reasons + apex_first.quality_reasons)
    masks[-1] = masks[-2]  # the LV now fills the last slice too: no end of the stack is a small cap
    m = measurements_from_masks(masks, (1.5, 1.5), 8.0, height_m=1.7, weight_kg=70)
    assert any("apex" in r for r in m.quality_reasons)


def test_bad_inputs_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="slices, phases, rows, cols"):
        measurements_from_masks(np.zeros((3, 32, 32), np.uint8), (1.5, 1.5), 8.0)
    with pytest.raises(ValueError, match="positive"):
        measurements_from_masks(_heart(), (1.5, 1.5), 0.0)


def test_round_trips_through_json_and_the_contract() -> None:
    from cmr.quant.proto import from_proto, to_proto

    m = measurements_from_masks(_heart(), (1.5, 1.5), 8.0, height_m=1.7, weight_kg=70, model="seg@x")
    assert Measurements.from_dict(m.to_dict()) == m
    back = from_proto(to_proto(m))
    assert back is not None
    for k, v in m.values().items():
        assert (back.values()[k] is None) == (v is None)
        if v is not None:
            assert back.values()[k] == pytest.approx(v, abs=0.01)
    assert back.quality == m.quality and back.ed_phase == m.ed_phase and back.es_phase == m.es_phase
    assert from_proto(to_proto(Measurements())) is not None  # "failed" is a state, not an empty message


def test_one_failed_phase_is_not_taken_for_end_systole() -> None:
    radii = (20, 19, 17, 15, 14, 15, 17, 19)
    masks = _heart(phases=8, lv_r=radii)
    masks[:, 5][masks[:, 5] == LV_CAVITY] = 0  # the segmentation lost the LV at phase 5
    m = measurements_from_masks(masks, (1.5, 1.5), 8.0)
    assert m.es_phase == 4 and m.ed_phase == 0
    assert m.lvef_pct == pytest.approx(100 * (1 - 14**2 / 20**2), abs=2.0)
