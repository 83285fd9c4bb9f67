"""Domain randomisation: frames drawn from tissue ids keep the anatomy, change the look, leave other frames."""

from __future__ import annotations

import torch

from cmr.data.tissue_cache import NOT_DRAWN
from cmr.synth.tissues import TISSUE_ID
from cmr.train.render import draw_frames, randomize_exams, tissue_means


def _tissues(b: int = 3, t: int = 6, s: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """A disc of LV blood in myocardium in lung; the last two frames (an LGE slot) have no ids."""
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    r = ((yy - s / 2) ** 2 + (xx - s / 2) ** 2).sqrt()
    frame = torch.full((s, s), TISSUE_ID["lung"], dtype=torch.uint8)
    frame[r < 8] = TISSUE_ID["lv_myocardium"]
    frame[r < 5] = TISSUE_ID["lv_blood"]
    tis = frame.expand(b, t, s, s).clone()
    tis[:, 4:] = NOT_DRAWN
    return tis, torch.tensor([0, 0, 0, 0, 1, 1])


def test_drawn_frames_are_images_of_the_same_anatomy() -> None:
    tis, slots = _tissues()
    img, drawn = draw_frames(tis, slots, torch.Generator().manual_seed(0))
    assert img.shape == tis.shape and drawn[:, :4].all() and not drawn[:, 4:].any()
    assert img.min() >= 0 and img.max() <= 1 and (img[:, 4:] == 0).all()
    blood, myo = tis == TISSUE_ID["lv_blood"], tis == TISSUE_ID["lv_myocardium"]
    # blood and myocardium keep their own means in every frame of an exam: the anatomy is what stays
    gap = torch.stack([img[i, :4][blood[i, :4]].mean() - img[i, :4][myo[i, :4]].mean() for i in range(len(tis))])
    assert gap.abs().mean() > 0.1


def test_contrast_differs_between_exams_and_draws_repeat_with_the_seed() -> None:
    tis, slots = _tissues(b=8)
    a, _ = draw_frames(tis, slots, torch.Generator().manual_seed(1))
    b, _ = draw_frames(tis, slots, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    blood = (tis == TISSUE_ID["lv_blood"])[:, 0]
    means = torch.stack([a[i, 0][blood[i]].mean() for i in range(8)])
    assert means.std() > 0.05  # the same heart, eight looks


def test_blood_pools_and_walls_share_a_contrast() -> None:
    mu = tissue_means(500, torch.Generator().manual_seed(2))
    lv, rv = mu[:, TISSUE_ID["lv_blood"]], mu[:, TISSUE_ID["rv_blood"]]
    assert (lv - rv).abs().max() < 0.2 and (mu[:, TISSUE_ID["lv_blood"]] - mu[:, TISSUE_ID["lung"]]).abs().mean() > 0.1


def test_randomize_replaces_only_picked_exams_and_drawn_frames() -> None:
    tis, slots = _tissues(b=6)
    px = torch.rand(6, 6, 24, 24)
    out = randomize_exams(px, tis, slots, 0.5, torch.Generator().manual_seed(1))
    changed = (out != px).flatten(2).any(2)  # [B, T]
    assert changed[:, 4:].sum() == 0  # frames without ids keep their images
    picked = changed[:, :4].all(1)
    assert 0 < picked.sum() < 6 and (changed[:, :4].any(1) == picked).all()
    torch.testing.assert_close(randomize_exams(px, tis, slots, 0.0, torch.Generator()), px)
    none = torch.full_like(tis, NOT_DRAWN)
    torch.testing.assert_close(randomize_exams(px, none, slots, 1.0, torch.Generator().manual_seed(1)), px)
