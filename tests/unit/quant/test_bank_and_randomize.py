"""The training bank and the domain randomisation: deterministic, heart-disjoint splits, images that are
normalised like inference inputs and targets that are the bank's tissues mapped to the four classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cmr.quant.bank import BANK_SIZE, LabelBank, build_bank
from cmr.quant.randomize import Randomizer, RandomizeConfig, normalize


@pytest.fixture(scope="module")
def bank() -> LabelBank:
    return build_bank(3, seed=11, workers=1, progress=False)


def test_bank_is_deterministic_and_round_trips(bank: LabelBank, tmp_path: Path) -> None:
    again = build_bank(3, seed=11, workers=2, progress=False)
    assert np.array_equal(bank.maps, again.maps) and np.array_equal(bank.level, again.level)
    assert bank.maps.shape[1:] == (BANK_SIZE, BANK_SIZE) and bank.maps.dtype == np.uint8
    # Stacks start above the valve plane and end below the apex, as real ones do.
    assert bank.level.max() > 1.0 and bank.level.min() < 0.0
    bank.save(tmp_path / "b.npz")
    loaded = LabelBank.load(tmp_path / "b.npz")
    assert np.array_equal(loaded.maps, bank.maps) and np.array_equal(loaded.heart, bank.heart)


def test_split_shares_no_heart(bank: LabelBank) -> None:
    train, val = bank.split(0.34, seed=0)
    assert len(train) + len(val) == len(bank)
    assert not set(train.heart.tolist()) & set(val.heart.tolist())


def test_randomised_batches_are_normalised_and_labelled(bank: LabelBank) -> None:
    r = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64), seed=3)
    x, y = r(12)
    assert x.shape == (12, 1, 64, 64) and y.shape == (12, 64, 64)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3}
    assert {1, 2, 3} <= set(torch.unique(y).tolist())  # hearts are in view
    # Same seed, same batch; another seed, another batch.
    x2, y2 = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64), seed=3)(12)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64), seed=4)(12)
    assert not torch.equal(x, x3)


def test_blood_pools_share_one_intensity_draw(bank: LabelBank) -> None:
    """LV and RV blood must look alike (as in real scans): intensity cannot tell the ventricles apart."""
    r = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=96, noise_max=0.0, trabeculae_fraction=0.0,
                                                             bias_max=0.0, clutter_max=0, ghost_fraction=0.0),
                   seed=5)
    x, y = r(24)
    diffs = []
    for i in range(len(x)):
        lv, rv = x[i, 0][y[i] == 3], x[i, 0][y[i] == 1]
        if lv.numel() > 50 and rv.numel() > 50:
            diffs.append(abs(float(lv.median()) - float(rv.median())))
    assert diffs and np.median(diffs) < 0.08


def test_papillary_blobs_darken_the_lv_cavity_and_nothing_else(bank: LabelBank) -> None:
    from cmr.synth.tissues import TISSUE_ID

    r = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64, papillary_fraction=1.0), seed=8)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    lab = torch.zeros(4, 64, 64, dtype=torch.long)
    lab[:, (yy - 32) ** 2 + (xx - 32) ** 2 < 15**2] = TISSUE_ID["lv_blood"]
    img = torch.full((4, 1, 64, 64), 0.9)
    mu = torch.zeros(4, int(lab.max()) + 40)
    mu[:, TISSUE_ID["lv_myocardium"]] = 0.2
    out = r._papillary_blobs(img, lab, mu)
    cavity = (lab == TISSUE_ID["lv_blood"]).unsqueeze(1)
    assert torch.equal(out[~cavity], img[~cavity])  # outside the cavity nothing changes
    assert all(bool((out[i][cavity[i]] < 0.8).any()) for i in range(4))  # every image got a dark island
    off = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64), seed=8)._papillary_blobs(img, lab, mu)
    assert torch.equal(off, img)  # the default recipe has none


def test_anatomy_variation_changes_the_hearts_only_when_asked() -> None:
    plain = build_bank(1, seed=11, workers=1, progress=False)
    varied = build_bank(1, seed=11, workers=1, progress=False, vary_anatomy=True)
    assert np.array_equal(plain.maps, build_bank(1, seed=11, workers=1, progress=False).maps)
    assert plain.maps.shape == varied.maps.shape and not np.array_equal(plain.maps, varied.maps)


def test_a_dilated_rv_variation_enlarges_the_rv_and_leaves_the_lv_and_the_defaults_alone() -> None:
    from cmr.labels import DISEASES
    from cmr.synth.generate import study_rng
    from cmr.synth.phantom import AnatomyVariation, HeartPhantom
    from cmr.synth.truth import sample_truth

    def phantom(variation: AnatomyVariation | None) -> HeartPhantom:
        rng = study_rng(4, 2)
        return HeartPhantom(sample_truth(rng, {d: 1.0 for d in DISEASES}), rng, variation)

    plain, default, dilated = phantom(None), phantom(AnatomyVariation()), phantom(
        AnatomyVariation(rv_volume_scale=2.2, rv_length_scale=1.2))
    assert default.rv_scale == plain.rv_scale and default.rv_volume_at(0, 0) == plain.rv_volume_at(0, 0)
    assert dilated.rv_volume_at(0, 0) == pytest.approx(2.2 * plain.rv_volume_at(0, 0), rel=0.05)
    assert dilated.lv_volume_at(0.0) == plain.lv_volume_at(0.0)
    # The bank draws dilated RVs for a share of its hearts, normal-sized ones for the rest.
    scales = np.array([AnatomyVariation.sample(np.random.default_rng(i)).rv_volume_scale for i in range(200)])
    assert 0.25 < (scales > 1.25).mean() < 0.55 and scales.max() <= AnatomyVariation.DILATED_RV_SCALE[1]


def test_context_swap_keeps_the_heart_and_replaces_the_rest_without_a_second_heart(bank: LabelBank) -> None:
    from cmr.quant.randomize import BACKGROUND_TISSUES, HEART_AND_SAC

    cfg = RandomizeConfig(size=64, context_swap_fraction=1.0, context_margin_px=0)
    r = Randomizer(bank.maps, bank.pixel_mm, cfg, seed=2)
    lab = r._sample_maps(torch.arange(8) * 13 % len(bank), r._grid(torch.arange(8) * 13 % len(bank)))
    out = r._swap_context(lab)
    sac = torch.isin(lab, torch.tensor(HEART_AND_SAC))
    assert torch.equal(out[sac], lab[sac])  # the heart and its sac are untouched: the targets stay
    assert torch.equal(r.lut[out][sac], r.lut[lab][sac]) and not bool(r.lut[out][~sac].any())
    assert not torch.equal(out[~sac], lab[~sac])  # the context did change
    assert not bool(torch.isin(out[~sac], torch.tensor(HEART_AND_SAC)).any())  # no second heart
    assert bool(torch.isin(out[~sac], torch.tensor(BACKGROUND_TISSUES)).any())
    # Off (the older recipes): nothing changes and no random number is drawn.
    off = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=64), seed=2)
    state = off.gen.get_state()
    assert torch.equal(off._swap_context(lab), lab) and torch.equal(off.gen.get_state(), state)


def test_pool_spread_lets_the_blood_pools_differ(bank: LabelBank) -> None:
    tied = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=32), seed=6)._means(400)
    spread = Randomizer(bank.maps, bank.pixel_mm, RandomizeConfig(size=32, pool_spread_fraction=1.0),
                        seed=6)._means(400)
    from cmr.synth.tissues import TISSUE_ID

    def gap(mu: torch.Tensor) -> float:
        return float((mu[:, TISSUE_ID["lv_blood"]] - mu[:, TISSUE_ID["rv_blood"]]).abs().mean())

    assert gap(tied) < 0.05 < 0.08 < gap(spread)


def test_normalize_maps_quantiles_to_unit_range() -> None:
    x = torch.linspace(0, 1000, 64 * 64).reshape(1, 1, 64, 64)
    n = normalize(x)
    assert float(n.min()) == 0.0 and float(n.max()) == 1.0
    assert torch.allclose(normalize(x * 7 + 3), n, atol=1e-5)  # scale and offset of the scanner do not matter
