"""Exam augmentations suited to MRI, applied to a whole batch on the training device.

One geometric transform per exam (all its frames move together, as they share a patient position), random
gamma and gain (scanner and windowing differences), Rician-like noise, and dropped frames and views (real
exams miss series). No colour jitter, and no flips by default: a flip would turn a normal heart into
dextrocardia.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cmr.dicom.exam import ExamSpec
from cmr.model.config import TrainConfig


def augment_exams(pixels: Tensor, mask: Tensor, slot_ids: Tensor, cfg: TrainConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """pixels [B, T, H, W] in 0..1, mask [B, T], slot_ids [T] -> augmented copies."""
    b, t, h, w = pixels.shape
    dev = pixels.device

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=gen).to(dev)

    lo, hi = cfg.aug_crop_scale
    scale = lo + (hi - lo) * rand(b)  # zoom in: crop a fraction of the field of view
    angle = (2 * rand(b) - 1) * math.radians(cfg.aug_rotate_deg)
    shift = (2 * rand(b, 2) - 1) * (1 - scale)[:, None]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    if cfg.aug_flip:
        flip = (rand(b) < 0.5).float() * -2 + 1
        theta[:, 0, 0] *= flip
        theta[:, 1, 0] *= flip
    grid = F.affine_grid(theta, [b, t, h, w], align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    gamma = torch.exp(torch.randn(b, generator=gen).to(dev) * cfg.aug_gamma)[:, None, None, None]
    gain = (0.9 + 0.2 * rand(b))[:, None, None, None]
    out = out.clamp(0, 1) ** gamma * gain
    sigma = cfg.aug_noise * rand(b)[:, None, None, None]
    noise = torch.randn(2, *out.shape, generator=gen).to(dev) * sigma
    out = torch.sqrt((out + noise[0]) ** 2 + noise[1] ** 2).clamp(0, 1)

    orig = mask.bool()
    mask = orig.clone()
    mask &= rand(b, t) >= cfg.aug_drop_frame
    n_slots = int(slot_ids.max()) + 1
    drop_slot = rand(b, n_slots) < cfg.aug_drop_view
    mask &= ~drop_slot[:, slot_ids.to(dev)]
    empty = ~mask.any(1)  # never drop everything: such an exam keeps its original frames
    mask[empty] = orig[empty]
    return out * mask[:, :, None, None], mask


@dataclass(frozen=True)
class ShortAxisLayout:
    """Where the cine short-axis stack sits in the exam tensor: `frames` [T] True on its frames, and
    `reversed_order` [T] the frame permutation that puts its slices in the opposite order (identity elsewhere)."""

    frames: Tensor
    reversed_order: Tensor

    @classmethod
    def of(cls, spec: ExamSpec) -> ShortAxisLayout | None:
        """The layout of the spec's first cine SAX slot, or None when it has none."""
        order, frames, start = list(range(spec.length)), [False] * spec.length, 0
        for slot in spec.slots:
            if slot.sequence == "cine" and slot.view == "sax":
                for k in range(slot.slices):  # slice k's block of phases takes slice (slices - 1 - k)'s place
                    src = start + (slot.slices - 1 - k) * slot.frames
                    for f in range(slot.frames):
                        order[start + k * slot.frames + f] = src + f
                frames[start:start + slot.length] = [True] * slot.length
                return cls(torch.tensor(frames), torch.tensor(order))
            start += slot.length
        return None


def augment_short_axis(pixels: Tensor, mask: Tensor, layout: ShortAxisLayout | None, p_only: float,
                       p_reverse: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Exams as real archives also hold them: a fraction `p_only` keep nothing but their cine short-axis stack
    (studies of SAX cine alone, like research sets and many follow-ups: without it the model never sees one),
    and a fraction `p_reverse` have the stack's slices in the opposite order (without long-axis planes the
    loader cannot always tell the base from the apex). Exams without a SAX stack are left as they are."""
    if layout is None or (p_only <= 0 and p_reverse <= 0):
        return pixels, mask
    b, dev = pixels.shape[0], pixels.device
    sax = layout.frames.to(dev)
    has_sax = (mask & sax).any(1)
    only = has_sax & (torch.rand(b, generator=gen).to(dev) < p_only)
    rev = has_sax & (torch.rand(b, generator=gen).to(dev) < p_reverse)
    order = layout.reversed_order.to(dev)
    pixels = torch.where(rev[:, None, None, None], pixels[:, order], pixels)
    mask = torch.where(rev[:, None], mask[:, order], mask)
    mask = mask & ~(only[:, None] & ~sax)
    return pixels * mask[:, :, None, None], mask


_EF_TOKENS = ("lvef_pct", "rvef_pct")
_RATIO_TOKENS = ("rv_lv_edv_ratio", "lv_mass_edv_ratio")


def augment_measurements(values: Tensor, names: tuple[str, ...], cfg: TrainConfig, gen: torch.Generator) -> Tensor:
    """values [B, M] (raw units, NaN = missing, columns named by `names`) -> a noisy copy with dropped numbers.

    The training numbers come from perfect (label-map) segmentations; a network's differ by an overall volume
    scale per study (shared by every volume, so ratios keep it out), independent error per number and a few
    EF points; sometimes a number or all numbers are missing."""
    if values.shape[1] == 0:
        return values
    b, m = values.shape
    dev = values.device

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen).to(dev)

    is_ef = torch.tensor([n in _EF_TOKENS for n in names], device=dev)
    is_volume = torch.tensor([n not in _EF_TOKENS and n not in _RATIO_TOKENS for n in names], device=dev)
    scale = torch.exp(randn(b, 1) * cfg.aug_measure_scale) * is_volume + ~is_volume  # ratios and EFs: 1
    factor = torch.exp(randn(b, m) * cfg.aug_measure_noise)
    out = torch.where(is_ef, values + randn(b, m) * cfg.aug_measure_ef_points, values * scale * torch.where(is_ef, 1.0, factor))
    out = torch.where(is_ef, out.clamp(1.0, 95.0), out)
    drop = torch.rand(b, m, generator=gen).to(dev) < cfg.aug_drop_measure
    drop |= (torch.rand(b, 1, generator=gen).to(dev) < cfg.aug_drop_all_measures)
    return out.masked_fill(drop, float("nan"))


def numbers_only(mask: Tensor, values: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """mask [B, T] with every frame dropped for a fraction `p` of the exams that have any number: those exams are
    read from their numbers alone, so each number has to align with the report on its own instead of only
    refining what the (synthetic) pixels already say; it is the pixels that differ most on real scans."""
    if p <= 0 or values.shape[1] == 0:
        return mask
    has_numbers = ~torch.isnan(values).all(1)
    pick = (torch.rand(mask.shape[0], generator=gen).to(mask.device) < p) & has_numbers
    return mask & ~pick[:, None]


def single_number(mask: Tensor, values: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """values [B, M] with, for a fraction `p` of the exams read from their numbers alone (every frame masked),
    all numbers but one (drawn among those measured) dropped. Such an exam's embedding is that one number's
    token, which must then say on its own what the report says about it (an LVEF of 25 % alone says "severely
    reduced"): the numbers keep their meaning when a real scan combines them in ways the phantom never did."""
    if p <= 0 or values.shape[1] == 0:
        return values
    measured = ~torch.isnan(values)
    pick = (~mask.any(1)) & measured.any(1) & (torch.rand(values.shape[0], generator=gen).to(values.device) < p)
    if not pick.any():
        return values
    score = torch.rand(values.shape, generator=gen).to(values.device).masked_fill(~measured, -1.0)
    keep = torch.zeros_like(measured)
    keep.scatter_(1, score.argmax(1, keepdim=True), True)
    return torch.where(pick[:, None] & ~keep, torch.full_like(values, float("nan")), values)
