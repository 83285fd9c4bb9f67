"""Domain randomisation of exam frames: new images of a synthetic heart drawn from its tissue exam
(`cmr.data.tissue_cache`), with a random contrast, texture and imaging chain per exam (the SynthSeg idea that
made the segmenter transfer to real scans, `cmr.quant.randomize`, applied to the CLIP exam tensor).

The phantom's own images have one look per scanner style: smooth shapes, flat tissues, a handful of contrasts.
A model trained only on them learns that look, and on a real scan reads noise. Drawn frames keep what the
report describes (the anatomy and its motion: the same label maps, frame for frame) and randomise what it does
not (how bright each tissue is, its texture, blur, bias, noise), so the pixel path has to read shape.

Per exam: tissue means near their balanced-SSFP values or anywhere in 0..1 (blood pools tied, walls tied: in a
real scan LV and RV blood look alike), per-tissue speckle and smooth texture (one texture per exam, so it stays
put over the cardiac cycle as anatomy does), blur, a coil bias field, Rician noise, then each slot windowed to
its own 99.5th percentile like the loader windows a series. Frames without tissue ids keep their images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cmr.data.tissue_cache import NOT_DRAWN
from cmr.quant.randomize import BLOOD, N_TISSUES, SSFP_PRIOR, WALLS

PRIOR_CONTRAST_FRACTION = 0.7
TEXTURE_CELLS = 10  # coarse grid of the smooth texture over the frame
NOISE_MAX = 0.08
BIAS_MAX = 0.4
BLUR_MAX_PX = 1.2


def _rand(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=gen)


def _smooth(gen: torch.Generator, b: int, size: int, cells: int) -> Tensor:
    """[b, size, size] smooth random field of unit-ish amplitude."""
    coarse = torch.randn(b, 1, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[:, 0]


def _blur(x: Tensor, sigma: Tensor) -> Tensor:
    """x [B, T, S, S], a Gaussian blur of sigma [B] pixels per exam (separable, 7 taps)."""
    b, t, s, _ = x.shape
    k = torch.arange(-3, 4, dtype=x.dtype)
    w = torch.exp(-0.5 * (k.view(1, -1) / sigma.clamp_min(1e-3).view(-1, 1)) ** 2)
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(t, dim=0)  # [B*T, 7]
    y = x.reshape(1, b * t, s, s)
    y = F.conv2d(F.pad(y, (3, 3, 0, 0), mode="replicate"), w.view(b * t, 1, 1, 7), groups=b * t)
    y = F.conv2d(F.pad(y, (0, 0, 3, 3), mode="replicate"), w.view(b * t, 1, 7, 1), groups=b * t)
    return y.reshape(b, t, s, s)


def tissue_means(b: int, gen: torch.Generator, prior_fraction: float = PRIOR_CONTRAST_FRACTION) -> Tensor:
    """[B, N_TISSUES] mean signal per tissue: near the SSFP prior, or uniform in 0..1; blood and walls tied."""
    uniform = _rand(gen, b, N_TISSUES)
    prior = (SSFP_PRIOR.view(1, -1) + torch.randn(b, N_TISSUES, generator=gen) * 0.12).clamp(0, 1)
    mu = torch.where(_rand(gen, b, 1) < prior_fraction, prior, uniform)
    for group in (BLOOD, WALLS):
        shared = mu[:, group[0]].clone()
        for t in group:
            mu[:, t] = (shared + torch.randn(b, generator=gen) * 0.03).clamp(0, 1)
    return mu


def draw_frames(tissues: Tensor, slot_ids: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """tissues uint8 [B, T, S, S] (NOT_DRAWN where a frame has none), slot_ids [T] -> (images [B, T, S, S] in 0..1,
    drawn [B, T] bool: the frames that have tissue ids). Images of frames not drawn are 0."""
    b, t, s, _ = tissues.shape
    drawn = (tissues != NOT_DRAWN).flatten(2).all(dim=2)
    ids = tissues.long().clamp_max(N_TISSUES - 1)  # NOT_DRAWN pixels are discarded below
    mu = tissue_means(b, gen)
    speckle = _rand(gen, b, N_TISSUES) * 0.06
    texture = _rand(gen, b, N_TISSUES) * 0.15
    flat = ids.view(b, -1)
    img = torch.gather(mu, 1, flat).view(b, t, s, s)
    img = img + torch.gather(speckle, 1, flat).view(b, t, s, s) * torch.randn(b, t, s, s, generator=gen)
    field = _smooth(gen, b, s, TEXTURE_CELLS).unsqueeze(1)  # one texture per exam: it moves with nothing
    img = img + torch.gather(texture, 1, flat).view(b, t, s, s) * field
    img = _blur(img, 0.3 + _rand(gen, b) * (BLUR_MAX_PX - 0.3))
    bias = torch.exp(_smooth(gen, b, s, 3) * _rand(gen, b, 1, 1) * BIAS_MAX).unsqueeze(1)
    img = img.clamp_min(0) * bias
    sigma = (_rand(gen, b) * NOISE_MAX).view(b, 1, 1, 1)
    img = torch.sqrt((img + torch.randn(b, t, s, s, generator=gen) * sigma) ** 2
                     + (torch.randn(b, t, s, s, generator=gen) * sigma) ** 2)
    out = torch.zeros_like(img)
    for k in torch.unique(slot_ids).tolist():  # window each slot like the loader windows a series
        cols = (slot_ids == k) & drawn.any(0)
        if not cols.any():
            continue
        block = img[:, cols]
        hi = torch.quantile(block.reshape(b, -1), 0.995, dim=1).clamp_min(1e-6).view(b, 1, 1, 1)
        out[:, cols] = (block / hi).clamp(0, 1)
    return out * drawn[:, :, None, None], drawn


def randomize_exams(pixels: Tensor, tissues: Tensor, slot_ids: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """pixels [B, T, S, S] in 0..1 with, for a fraction `p` of the exams that have tissue ids, every frame that
    has them replaced by a drawn one (the rest of the exam, e.g. its LGE frames, keeps its images)."""
    if p <= 0:
        return pixels
    pick = (_rand(gen, pixels.shape[0]) < p).to(pixels.device)
    if not pick.any():
        return pixels
    drawn_px, drawn = draw_frames(tissues[pick.cpu()], slot_ids.cpu(), gen)
    out = pixels.clone()
    sub = out[pick]
    replace = drawn.to(pixels.device)[:, :, None, None]
    out[pick] = torch.where(replace, drawn_px.to(pixels.device, pixels.dtype), sub)
    return out
