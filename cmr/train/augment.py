"""Exam augmentations suited to MRI, applied to a whole batch on the training device.

One geometric transform per exam (all its frames move together, as they share a patient position), random
gamma and gain (scanner and windowing differences), Rician-like noise, and dropped frames and views (real
exams miss series). No colour jitter, and no flips by default: a flip would turn a normal heart into
dextrocardia.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

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
