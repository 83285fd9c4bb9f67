"""Exam augmentation: shapes and ranges kept, masks sensible, dropped frames zeroed, deterministic per seed,
and the identity when every strength is zero."""

from __future__ import annotations

from dataclasses import replace

import torch

from cmr.model.config import TrainConfig
from cmr.train.augment import augment_exams, numbers_only

SLOT_IDS = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])  # the tiny spec: cine_sax x4, cine_4ch x2, lge_sax x2
T, S = len(SLOT_IDS), 32

OFF = TrainConfig(aug_crop_scale=(1.0, 1.0), aug_rotate_deg=0.0, aug_flip=False, aug_gamma=0.0, aug_noise=0.0,
                  aug_drop_frame=0.0, aug_drop_view=0.0)
STRONG = TrainConfig(aug_crop_scale=(0.5, 1.0), aug_rotate_deg=30.0, aug_flip=True, aug_gamma=0.8, aug_noise=0.2,
                     aug_drop_frame=0.5, aug_drop_view=0.5)


def _batch(b: int = 6, seed: int = 0, hi: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    px = torch.rand(b, T, S, S, generator=g) * hi
    mk = torch.ones(b, T, dtype=torch.bool)
    mk[1, 4:6] = False  # a missing view
    mk[2, [0, 3, 7]] = False
    px[~mk] = 0.0
    return px, mk


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_dtypes_and_range() -> None:
    px, mk = _batch()
    out, m = augment_exams(px, mk, SLOT_IDS, STRONG, _gen())
    assert out.shape == px.shape and out.dtype == px.dtype
    assert m.shape == mk.shape and m.dtype == torch.bool
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.isfinite(out).all()
    # The input is not modified in place.
    px2, mk2 = _batch()
    assert torch.equal(px, px2) and torch.equal(mk, mk2)


def test_defaults_keep_range() -> None:
    px, mk = _batch(hi=1.0)
    out, _ = augment_exams(px, mk, SLOT_IDS, TrainConfig(), _gen(1))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_mask_never_all_false_and_never_adds_frames() -> None:
    cfg = replace(STRONG, aug_drop_frame=0.9, aug_drop_view=0.9)
    for seed in range(5):
        px, mk = _batch(b=16, seed=seed)
        _, m = augment_exams(px, mk, SLOT_IDS, cfg, _gen(seed))
        assert m.any(1).all()
        assert not (m & ~mk).any()  # a missing frame never comes back
    # Dropping everything falls back to the exam's own frames.
    px, mk = _batch()
    _, m = augment_exams(px, mk, SLOT_IDS, replace(OFF, aug_drop_frame=1.0, aug_drop_view=1.0), _gen())
    assert torch.equal(m, mk)


def test_dropped_frames_are_zeroed() -> None:
    px, mk = _batch(b=8)
    out, m = augment_exams(px, mk, SLOT_IDS, replace(STRONG, aug_drop_frame=0.4, aug_drop_view=0.3), _gen(2))
    assert (~m & mk).any(), "the test needs some frames dropped"
    assert (out[~m] == 0).all()
    assert (out[m].flatten(1).amax(1) > 0).all()  # kept frames are not blanked


def test_drop_view_drops_whole_slots() -> None:
    px = torch.rand(32, T, S, S, generator=_gen(3))
    mk = torch.ones(32, T, dtype=torch.bool)
    _, m = augment_exams(px, mk, SLOT_IDS, replace(OFF, aug_drop_view=0.5), _gen(3))
    assert (~m).any()
    for k in range(3):
        part = m[:, SLOT_IDS == k]
        assert (part.all(1) | ~part.any(1)).all()  # each slot kept or dropped as a whole


def test_zero_strengths_are_identity_up_to_gain() -> None:
    # The per-exam gain (0.9..1.1) has no strength setting in TrainConfig, so "off" leaves it: the output is
    # the input times one factor per exam. Inputs stay below 0.9 so that the gain never clips.
    px, mk = _batch(hi=0.9)
    out, m = augment_exams(px, mk, SLOT_IDS, OFF, _gen(5))
    assert torch.equal(m, mk)
    present = mk[:, :, None, None].expand_as(px)
    for i in range(len(px)):
        sel = present[i] & (px[i] > 0.05)
        gain = (out[i][sel] / px[i][sel]).median()
        assert 0.9 - 1e-4 <= float(gain) <= 1.1 + 1e-4
        assert torch.allclose(out[i], px[i] * gain, atol=1e-5)


def test_flip_mirrors_whole_exams() -> None:
    px, mk = _batch(b=12, hi=0.9)
    out, _ = augment_exams(px, mk, SLOT_IDS, replace(OFF, aug_flip=True), _gen(6))
    flipped = 0
    for i in range(len(px)):
        sel = px[i] > 0.05
        straight = torch.allclose(out[i], px[i] * (out[i][sel] / px[i][sel]).median(), atol=1e-5)
        mirror = px[i].flip(-1)
        msel = mirror > 0.05
        mirrored = torch.allclose(out[i], mirror * (out[i][msel] / mirror[msel]).median(), atol=1e-5)
        assert straight != mirrored, i  # exactly one of the two
        flipped += mirrored
    assert 0 < flipped < len(px)


def test_geometry_moves_all_frames_of_an_exam_together() -> None:
    # Identical frames stay identical after augmentation (one transform per exam, not per frame).
    frame = torch.rand(S, S, generator=_gen(7))
    px = frame.expand(4, T, S, S).clone()
    mk = torch.ones(4, T, dtype=torch.bool)
    cfg = replace(OFF, aug_crop_scale=(0.6, 0.9), aug_rotate_deg=20.0, aug_gamma=0.5)
    out, _ = augment_exams(px, mk, SLOT_IDS, cfg, _gen(7))
    for i in range(4):
        assert torch.allclose(out[i], out[i, :1].expand(T, S, S), atol=1e-6)
    assert not torch.allclose(out[0], out[1], atol=1e-3)  # but exams differ from each other
    assert not torch.allclose(out[0, 0], frame, atol=1e-3)


def test_same_seed_same_output_and_different_seed_differs() -> None:
    px, mk = _batch()
    a = augment_exams(px, mk, SLOT_IDS, STRONG, _gen(42))
    b = augment_exams(px, mk, SLOT_IDS, STRONG, _gen(42))
    c = augment_exams(px, mk, SLOT_IDS, STRONG, _gen(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_measurement_augmentation_keeps_ratios_scales_volumes_and_drops_numbers() -> None:
    from dataclasses import replace

    from cmr.model.config import TrainConfig
    from cmr.train.augment import augment_measurements

    names = ("lvef_pct", "lvedvi_ml_m2", "rvedvi_ml_m2", "rv_lv_edv_ratio")
    values = torch.tensor([[50.0, 100.0, 80.0, 0.8]]).repeat(400, 1)
    cfg = replace(TrainConfig(), aug_measure_noise=0.0, aug_drop_measure=0.0, aug_drop_all_measures=0.0)
    out = augment_measurements(values, names, cfg, torch.Generator().manual_seed(0))
    # one volume scale per study, shared by its volumes; ratios untouched; EF moved by a few points
    torch.testing.assert_close(out[:, 1] / 100.0, out[:, 2] / 80.0)
    assert out[:, 1].std() > 5.0 and torch.equal(out[:, 3], values[:, 3])
    assert 2.0 < (out[:, 0] - 50.0).std() < 8.0
    dropped = augment_measurements(values, names, replace(TrainConfig(), aug_drop_all_measures=1.0),
                                   torch.Generator().manual_seed(0))
    assert torch.isnan(dropped).all()
    some = augment_measurements(values, names, TrainConfig(), torch.Generator().manual_seed(0))
    frac = torch.isnan(some).float().mean().item()
    assert 0.15 < frac < 0.45  # 20 % of studies without numbers, 10 % of the rest's numbers
    assert augment_measurements(values[:, :0], (), TrainConfig(), torch.Generator()).shape == (400, 0)


def test_numbers_only_masks_every_frame_of_some_exams_that_have_numbers() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(400, 6, dtype=torch.bool)
    values = torch.full((400, 2), 50.0)
    values[:100] = float("nan")  # no numbers: these keep their frames whatever p is
    out = numbers_only(mask, values, 0.5, g)
    emptied = ~out.any(1)
    assert not emptied[:100].any()
    assert 0.35 < emptied[100:].float().mean() < 0.65
    assert torch.equal(out[~emptied], mask[~emptied])  # the others are untouched, not thinned
    assert torch.equal(numbers_only(mask, values, 0.0, g), mask)
    assert torch.equal(numbers_only(mask, values[:, :0], 0.9, g), mask)


def test_single_number_keeps_one_measured_number_of_some_numbers_only_exams() -> None:
    from cmr.train.augment import single_number

    nan = float("nan")
    values = torch.tensor([[30.0, 120.0, 1.4]] * 40 + [[nan, 90.0, nan]] * 10)
    mask = torch.zeros(50, 6, dtype=torch.bool)
    mask[:20] = True  # the first 20 exams still have frames: never touched
    out = single_number(mask, values, 0.5, torch.Generator().manual_seed(0))
    kept = (~torch.isnan(out)).sum(1)
    torch.testing.assert_close(out[:20], values[:20])
    assert set(kept[20:40].tolist()) == {1, 3} and 3 < int((kept[20:40] == 1).sum()) < 18  # about half
    assert (kept[40:] == 1).all() and (out[40:, 1] == 90.0).all()  # the one measured number is the one kept
    chosen = (~torch.isnan(out[20:40][kept[20:40] == 1])).float().sum(0)
    assert (chosen > 0).sum() >= 2  # which number stays is drawn, not always the first
    torch.testing.assert_close(single_number(mask, values, 0.0, torch.Generator()), values, equal_nan=True)


def test_short_axis_layout_reverses_the_slices_of_the_sax_stack_only() -> None:
    from cmr.dicom.exam import ExamSpec
    from cmr.train.augment import ShortAxisLayout

    spec = ExamSpec.from_dict({"image_size": 8, "fov_mm": 200.0, "slots": [
        {"name": "cine_4ch", "sequence": "cine", "view": "4ch", "frames": 2},
        {"name": "cine_sax", "sequence": "cine", "view": "sax", "frames": 2, "slices": 3},
        {"name": "lge_sax", "sequence": "lge", "view": "sax", "frames": 2}]})
    layout = ShortAxisLayout.of(spec)
    assert layout is not None
    assert layout.frames.tolist() == [False, False, True, True, True, True, True, True, False, False]
    assert layout.reversed_order.tolist() == [0, 1, 6, 7, 4, 5, 2, 3, 8, 9]
    no_sax = ExamSpec.from_dict({"image_size": 8, "fov_mm": 200.0, "slots": [
        {"name": "cine_4ch", "sequence": "cine", "view": "4ch", "frames": 2}]})
    assert ShortAxisLayout.of(no_sax) is None


def test_sax_only_and_reversed_stacks() -> None:
    from cmr.dicom.exam import ExamSpec
    from cmr.train.augment import ShortAxisLayout, augment_short_axis

    spec = ExamSpec.from_dict({"image_size": 8, "fov_mm": 200.0, "slots": [
        {"name": "cine_sax", "sequence": "cine", "view": "sax", "frames": 2, "slices": 2},
        {"name": "cine_4ch", "sequence": "cine", "view": "4ch", "frames": 2}]})
    layout = ShortAxisLayout.of(spec)
    b = 200
    px = torch.arange(6, dtype=torch.float32).view(1, 6, 1, 1).expand(b, 6, 4, 4).clone()
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[:20, :4] = False  # no SAX stack: never touched
    out, m = augment_short_axis(px, mask, layout, 0.3, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:20], px[:20] * mask[:20, :, None, None])
    assert m[:20].tolist() == mask[:20].tolist()
    only = ~m[20:, 4:].any(1)
    assert 30 < int(only.sum()) < 80 and m[20:, :4].all()  # about 30 % keep the stack alone
    assert (out[20:][only][:, 4:] == 0).all()
    first = out[20:, 0, 0, 0]
    assert set(first.tolist()) == {0.0, 2.0}  # slice 1's frames (2, 3) moved to the front in some exams
    flipped = first == 2.0
    assert 60 < int(flipped.sum()) < 120
    assert (out[20:][flipped][:, :4, 0, 0] == torch.tensor([2.0, 3.0, 0.0, 1.0])).all()
    none, _ = augment_short_axis(px, mask, layout, 0.0, 0.0, torch.Generator())
    torch.testing.assert_close(none, px)
