"""Segmenting and measuring studies with the shipped checkpoint: geometry, clean-up, precision, failure
reasons, and accuracy on a synthetic study (its label maps are the reference; never a real yardstick here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cmr.dicom.reader import load_study
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.measure import measure_study
from cmr.quant.segmenter import SHIPPED, Segmenter, clean_masks, load_segmenter
from cmr.quant.validate import synthetic_agreement
from cmr.synth.generate import generate_dataset
from realdata_paths import SUNNYBROOK_LOCALIZERS, SUNNYBROOK_MIDSLICE


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return load_segmenter()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, studies=2, seed=21, workers=1, progress=False, scanner="ge_premier_3T")
    return out


@pytest.fixture(scope="module")
def full_cycle(seg: Segmenter, synth: Path):  # noqa: ANN201
    """study_00000 segmented at every phase: the slowest call here, shared by the tests that read it."""
    return measure_study(load_study(synth / "studies" / "study_00000"), seg, all_phases=True)


def test_checkpoint_files_are_checked(tmp_path: Path) -> None:
    assert SHIPPED.is_file()
    assert load_segmenter().cfg.context_radius_mm > 0  # the shipped segmenter takes its second look
    with pytest.raises(FileNotFoundError, match="not found"):
        load_segmenter(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError, match="cmr-segmenter"):
        load_segmenter(bad)


def test_masks_cover_every_slice_and_phase_on_each_image_grid(seg: Segmenter, full_cycle) -> None:  # noqa: ANN001
    sm = full_cycle
    assert len(sm.masks) == len(sm.slices) >= 8
    n_phases = sm.slices[0][0].n_phases
    assert sm.mask_phases == list(range(n_phases))
    for k, ((s, i), m) in enumerate(zip(sm.slices, sm.masks)):
        assert m.shape == (s.n_phases, s.rows, s.cols) and m.dtype == np.uint8
        assert sm.images(k).shape == m.shape
    assert sm.measurements.model == seg.version
    assert len(sm.measurements.lv_volume_curve_ml) == n_phases


def test_the_default_segments_ed_and_es_at_full_resolution_and_agrees_with_all_phases(
        seg: Segmenter, synth: Path, full_cycle) -> None:  # noqa: ANN001
    fast, full = measure_study(load_study(synth / "studies" / "study_00000"), seg), full_cycle
    m = fast.measurements
    assert m.ed_phase is not None and m.es_phase is not None
    assert fast.mask_phases == [m.ed_phase, m.es_phase]
    for k, ((s, _), mask) in enumerate(zip(fast.slices, fast.masks)):
        assert mask.shape == (2, s.rows, s.cols)
        assert fast.masks_at(k, m.ed_phase) is not None and fast.masks_at(k, -1) is None
    # the whole cycle's curve comes from the quick pass; the reported numbers from full resolution
    assert len(m.lv_volume_curve_ml) == fast.slices[0][0].n_phases
    assert full.measurements.lvef_pct is not None and m.lvef_pct is not None
    assert abs(m.lvef_pct - full.measurements.lvef_pct) < 6.0
    assert abs(m.lvedv_ml - full.measurements.lvedv_ml) < 0.15 * full.measurements.lvedv_ml


def test_accuracy_on_a_synthetic_held_out_style_study(seg: Segmenter, synth: Path) -> None:
    res = synthetic_agreement(seg, synth)
    assert res["dice_ed"]["lv_cavity"] > 0.85 and res["dice_es"]["lv_cavity"] > 0.75
    assert res["dice_ed"]["lv_myocardium"] > 0.65 and res["dice_ed"]["rv_cavity"] > 0.65
    assert res["lvef_pct"]["mae"] < 10.0


def test_bfloat16_and_float32_agree(seg: Segmenter, synth: Path) -> None:
    study = load_study(synth / "studies" / "study_00001")
    fp32 = Segmenter(seg.net, seg.cfg, bf16=False)
    bf16 = Segmenter(seg.net, seg.cfg, bf16=True)
    a, b = measure_study(study, fp32), measure_study(study, bf16)
    same = np.mean([np.mean(x == y) for x, y in zip(a.masks, b.masks)])
    assert same > 0.995
    if a.measurements.lvef_pct is not None and b.measurements.lvef_pct is not None:
        assert abs(a.measurements.lvef_pct - b.measurements.lvef_pct) < 2.0


def test_clean_up_keeps_the_heart_and_fills_the_cavity() -> None:
    vol = np.zeros((3, 1, 40, 40), np.uint8)
    for k in range(3):
        vol[k, 0, 10:30, 10:30] = LV_MYOCARDIUM
        vol[k, 0, 14:26, 14:26] = LV_CAVITY
        vol[k, 0, 19:21, 19:21] = LV_MYOCARDIUM  # a papillary muscle inside the cavity
        vol[k, 0, 12:28, 2:8] = RV_CAVITY
    vol[1, 0, 35:38, 35:38] = LV_CAVITY  # a stray blob far from the heart
    vol[2, 0, 0:2, 30:33] = RV_CAVITY  # a smaller stray RV blob
    out = clean_masks([vol[k] for k in range(3)])
    assert out[1][0, 36, 36] == 0 and out[2][0, 0, 31] == 0
    assert all(o[0, 20, 20] == LV_CAVITY for o in out)  # enclosed papillary muscle belongs to the cavity
    assert all((o[0] == RV_CAVITY).sum() == 16 * 6 for o in out)


def test_studies_without_a_stack_say_why(seg: Segmenter) -> None:
    localizers = measure_study(load_study(SUNNYBROOK_LOCALIZERS), seg).measurements
    assert localizers.quality == "failed" and "no short-axis cine" in localizers.quality_reasons[0]
    single = measure_study(load_study(SUNNYBROOK_MIDSLICE), seg).measurements
    assert single.lvef_pct is None and "one short-axis cine slice" in single.unavailable["lvef_pct"]
    json.dumps(single.to_dict())  # JSON-able for the CLI and the services


def test_a_stack_of_series_with_different_phase_counts_is_measured_the_fast_way(seg: Segmenter) -> None:
    """Parallel SAX series of one stack may differ in phase count (one series per slice, re-acquired): the
    quick volume-curve pass works per slice and the curve is on the longest slice's phase grid."""
    import copy
    import dataclasses

    study = load_study(SUNNYBROOK_MIDSLICE)
    s = study.series[0]
    normal = np.cross(s.orientation[:3], s.orientation[3:])
    other = dataclasses.replace(copy.deepcopy(s), key=s.key + "-b", series_instance_uid=s.series_instance_uid + ".2",
                                series_number=(s.series_number or 0) + 1, pixels=s.pixels[:, ::2].copy(),
                                positions=s.positions + 8.0 * normal, trigger_times=s.trigger_times[:, ::2].copy(),
                                distinct_phases=s.pixels.shape[1] // 2)
    study.series.append(other)
    sm = measure_study(study, seg)
    assert {r[0].n_phases for r in sm.slices} == {20, 10}
    assert len(sm.measurements.lv_volume_curve_ml) == 20 and len(sm.mask_phases) == 2
    assert [m.shape[0] for m in sm.masks] == [2, 2]


def test_second_look_resegments_only_images_without_an_lv_and_only_inside_the_disc(
        seg: Segmenter, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from cmr.quant.labels import BACKGROUND, N_CLASSES

    size = seg.cfg.size
    canvas = np.ones((2, size, size), np.float32)
    first = torch.zeros(2, N_CLASSES, size, size)
    first[:, BACKGROUND] = 1.0  # image 0: nothing found
    first[1, BACKGROUND, 40:80, 40:80] = 0.0
    first[1, LV_CAVITY, 40:80, 40:80] = 1.0  # image 1: an LV found
    seen: list[np.ndarray] = []

    def blind(images: np.ndarray, tta: int = 1) -> torch.Tensor:  # the second look finds LV everywhere it looks
        seen.append(images)
        out = torch.zeros(len(images), N_CLASSES, size, size)
        out[:, LV_CAVITY] = 1.0
        return out

    monkeypatch.setattr(seg, "predict", blind)
    monkeypatch.setattr(seg, "cfg", dataclasses.replace(seg.cfg, context_radius_mm=0.0))
    assert seg._second_look(canvas, first, 1.5) is first  # off: no second call
    assert not seen
    monkeypatch.setattr(seg, "cfg", dataclasses.replace(seg.cfg, context_radius_mm=30.0))
    out = seg._second_look(canvas, first, 1.5)
    assert len(seen) == 1 and seen[0].shape == (1, size, size)  # only the image without an LV
    c, r = (size - 1) / 2.0, 30.0 / 1.5
    assert seen[0][0, int(c), int(c)] == 1.0 and seen[0][0, 0, 0] == 0.0  # the surroundings blanked
    assert torch.equal(out[1], first[1])
    assert out[0, :, int(c), int(c)].argmax() == LV_CAVITY  # inside the disc: the second answer
    assert out[0, :, 0, 0].argmax() == BACKGROUND and out[0, :, int(c), int(c + r + 3)].argmax() == BACKGROUND
