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


def test_normalize_maps_quantiles_to_unit_range() -> None:
    x = torch.linspace(0, 1000, 64 * 64).reshape(1, 1, 64, 64)
    n = normalize(x)
    assert float(n.min()) == 0.0 and float(n.max()) == 1.0
    assert torch.allclose(normalize(x * 7 + 3), n, atol=1e-5)  # scale and offset of the scanner do not matter
