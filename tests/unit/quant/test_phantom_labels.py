"""The phantom's label maps: they match the rendered images, cost no random draws, and measure what the
phantom was built to be (the reference for the segmenter on synthetic data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY, classes_from_tissues
from cmr.quant.volumes import measurements_from_masks
from cmr.synth.acquisition import cine_contrast, form_images, plan_exam, render_label_maps
from cmr.synth.generate import POSITIONS_SUFFIX, generate_dataset, read_label_maps, study_rng
from cmr.synth.phantom import HeartPhantom
from cmr.synth.scanners import STYLES
from cmr.synth.tissues import TISSUE_ID
from cmr.synth.truth import sample_truth


def _sax(seed: int = 3):
    rng = study_rng(seed, 0)
    style = STYLES["philips_ingenia_1.5T"]
    truth = sample_truth(rng)
    ph = HeartPhantom(truth, rng)
    plan = next(p for p in plan_exam(ph, style, rng) if p.slot == "cine_sax")
    return ph, plan, style, rng, truth


def test_label_maps_cost_no_random_draws_and_match_the_images() -> None:
    ph, plan, style, rng, _ = _sax()
    state = rng.bit_generator.state
    contrast = cine_contrast(style, rng)
    labels = np.zeros((len(plan.planes), len(plan.trigger_fracs), *plan.matrix), np.uint8)
    with_labels = form_images(ph, plan, style, rng, contrast, labels)
    rng.bit_generator.state = state
    without = form_images(ph, plan, style, rng, cine_contrast(style, rng))
    assert np.array_equal(with_labels, without)
    assert np.array_equal(render_label_maps(ph, plan), labels)
    # Blood is brighter than myocardium in cine: the labels sit on the right pixels.
    blood = with_labels[labels == TISSUE_ID["lv_blood"]].mean()
    myo = with_labels[labels == TISSUE_ID["lv_myocardium"]].mean()
    assert blood > 1.5 * myo


def test_label_maps_measure_the_phantom() -> None:
    ph, plan, style, _, truth = _sax()
    classes = classes_from_tissues(render_label_maps(ph, plan))
    spacing = style.slice_thickness_mm + style.slice_gap_mm
    m = measurements_from_masks(classes, plan.pixel_spacing, spacing)
    edv, esv = ph.lv_volumes_ml()
    assert m.lvedv_ml == pytest.approx(edv, rel=0.12)
    assert m.lvef_pct == pytest.approx(truth.lvef, abs=4.0)
    assert m.rvef_pct == pytest.approx(truth.rvef, abs=6.0)
    # The septum is LV myocardium (the RV wall is grown over it but labelled beneath the LV wall).
    mid = classes[len(classes) // 2, 0]
    assert (mid == LV_MYOCARDIUM).sum() > 0 and (mid == RV_CAVITY).sum() > 0 and (mid == LV_CAVITY).sum() > 0


def test_cmr_synth_writes_label_maps_and_the_reference(tmp_path: Path) -> None:
    records = generate_dataset(tmp_path, studies=1, seed=5, workers=1, progress=False)
    rec = records[0]
    maps = read_label_maps(tmp_path / rec["label_maps"])
    series = sorted(k for k in maps if not k.endswith(POSITIONS_SUFFIX))
    assert series and all(maps[k].dtype == np.uint8 and maps[k].ndim == 4 for k in series)
    assert all(maps[k + POSITIONS_SUFFIX].shape == (maps[k].shape[0], 3) for k in series)
    ref = rec["reference_measurements"]
    assert ref["lvef_pct"] == pytest.approx(rec["measured"]["lvef"], abs=4.0)
    assert ref["bsa_m2"] is not None  # synthetic headers carry height and weight
    assert json.loads((tmp_path / "reports.jsonl").read_text().splitlines()[0])["label_maps"] == rec["label_maps"]
