"""Domain randomisation: training images drawn from tissue label maps (the SynthSeg approach).

A network trained only on images drawn from label maps with random intensities, textures and artefacts
learns the shapes, not an appearance, and so transfers to real scanners it never saw. Per sample:

- geometry: a crop of the bank map at a random pixel size (fine samples near the heart at 1.3-2.0 mm, coarse
  ones of the whole thorax at 2.4-3.4 mm, as the two inference passes see them), any rotation, a flip,
  anisotropic scaling and a smooth random deformation (shape variety beyond the phantom's);
- contrast: every tissue gets a random mean, either anywhere in 0..1 or near its SSFP value; all blood pools
  share one mean and all walls another (in a real scan the LV and RV blood look alike, so intensity must not
  tell them apart); per-tissue noise and low-frequency texture;
- anatomy the phantom lacks: trabeculae (dark dots of wall signal along the inner border of the cavities,
  labelled cavity, as ACDC and the SCMR guidelines trace), and clutter (blobs of random signal in the
  background: bowel, stomach, vessels, arms);
- context swap: for a share of the samples, everything outside the heart (and a random margin round it)
  comes from another bank map, cropped independently, whose own heart is filled with a background tissue.
  The phantom's thorax ties context to level (its liver shows only below the apex, its chest wall never
  crowds the heart), and a network trained on it alone learns "liver in view, no heart": on real mid and
  apical slices, where the diaphragm and liver abut the inferior wall, it then labels nothing;
- imaging: blur, reduced resolution along one axis, a coil bias field, gamma, Rician noise, motion ghosts;
- the same intensity normalisation as inference (`normalize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cmr.quant.labels import classes_from_tissues
from cmr.synth.tissues import TISSUE_ID, TISSUES

N_TISSUES = len(TISSUES)
_T = TISSUE_ID
BLOOD = [_T[k] for k in ("lv_blood", "rv_blood", "la_blood", "ra_blood", "aortic_blood", "descending_aorta")]
WALLS = [_T[k] for k in ("lv_myocardium", "rv_myocardium", "la_wall", "ra_wall", "aortic_wall", "papillary_muscle")]
CAVITIES = [_T["lv_blood"], _T["rv_blood"]]
# What a context swap keeps of a sample: the pericardial sac and everything in it (ventricles, atria, great
# vessels' roots, epicardial fat, effusion).
HEART_AND_SAC = [_T[k] for k in ("pericardium", "effusion", "epicardial_fat", "lv_myocardium", "rv_myocardium",
                                 "la_wall", "ra_wall", "aortic_wall", "lv_blood", "rv_blood", "la_blood", "ra_blood",
                                 "aortic_blood", "papillary_muscle")]
HEART = [_T[k] for k in ("lv_myocardium", "lv_blood", "rv_blood", "papillary_muscle")]
BACKGROUND_TISSUES = [_T[k] for k in ("subcutaneous_fat", "muscle", "soft_tissue", "lung", "liver")]

# Rough balanced-SSFP signal (0..1) of each tissue: the "realistic" half of the contrast draws centres here.
_SSFP_PRIOR = {
    "air": 0.02, "subcutaneous_fat": 0.75, "muscle": 0.25, "soft_tissue": 0.35, "lung": 0.06, "liver": 0.32,
    "bone": 0.3, "descending_aorta": 0.8, "pericardial_fat": 0.75, "pericardium": 0.1, "effusion": 0.85,
    "epicardial_fat": 0.75, "lv_myocardium": 0.25, "rv_myocardium": 0.25, "la_wall": 0.25, "ra_wall": 0.25,
    "aortic_wall": 0.25, "lv_blood": 0.85, "rv_blood": 0.85, "la_blood": 0.85, "ra_blood": 0.85,
    "aortic_blood": 0.85, "papillary_muscle": 0.25,
}
SSFP_PRIOR = torch.tensor([_SSFP_PRIOR[t] for t in TISSUES], dtype=torch.float32)


def normalize(x: torch.Tensor, lo_q: float = 0.005, hi_q: float = 0.995) -> torch.Tensor:
    """Per image [B, 1, H, W]: map the (0.5 %, 99.5 %) quantiles to 0..1 and clip. Training and inference use
    this same function, so the network never sees a scanner's raw scale."""
    flat = x.reshape(x.shape[0], -1).float()
    lo = torch.quantile(flat, lo_q, dim=1).view(-1, 1, 1, 1)
    hi = torch.quantile(flat, hi_q, dim=1).view(-1, 1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class RandomizeConfig:
    size: int = 128
    fine_fraction: float = 0.9
    fine_pixel_mm: tuple[float, float] = (1.3, 2.0)
    coarse_pixel_mm: tuple[float, float] = (2.4, 3.4)
    fine_jitter_mm: float = 25.0
    coarse_jitter_mm: float = 40.0
    deform_mm: float = 7.0
    prior_contrast_fraction: float = 0.8
    trabeculae_fraction: float = 0.7
    # Share of samples that get each of papillary_max dark blobs in the LV cavity (labelled cavity). Off for the
    # base run; the shipped cmr-seg-small's fine-tune used 0.5 (docs/model/segmenter.md).
    papillary_fraction: float = 0.0
    papillary_max: int = 3
    # Share of samples whose context (all outside the heart and a 0..context_margin_px margin) comes from
    # another map; off for the shipped runs before cmr-seg-small run 4 (docs/model/segmenter.md).
    context_swap_fraction: float = 0.0
    context_margin_px: int = 8
    # Share of samples whose blood pools (LV, RV, atria, aorta) get independent means (sd pool_spread) instead
    # of one shared mean: slow flow darkens a dilated RV, inflow brightens one pool. Off before run 4.
    pool_spread_fraction: float = 0.0
    pool_spread: float = 0.15
    clutter_max: int = 5
    noise_max: float = 0.09
    bias_max: float = 0.45
    ghost_fraction: float = 0.2


def _smooth_field(b: int, size: int, cells: int, gen: torch.Generator) -> torch.Tensor:
    """[b, 1, size, size] smooth random field of unit-ish amplitude (bicubic upsampling of a coarse grid)."""
    coarse = torch.randn(b, 1, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample isotropic Gaussian blur; sigma [B] in pixels (0 = none)."""
    r = 3
    k = torch.arange(-r, r + 1, dtype=torch.float32)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    w = torch.exp(-0.5 * (k.view(1, -1) / s) ** 2)
    w = w / w.sum(1, keepdim=True)  # [B, 2r+1]
    b = x.shape[0]
    xr = x.reshape(1, b, *x.shape[2:])
    xr = F.conv2d(F.pad(xr, (r, r, 0, 0), mode="replicate"), w.view(b, 1, 1, -1), groups=b)
    xr = F.conv2d(F.pad(xr, (0, 0, r, r), mode="replicate"), w.view(b, 1, -1, 1), groups=b)
    return xr.reshape_as(x)


class Randomizer:
    """Draws (image [B,1,S,S] float 0..1, target [B,S,S] int64 classes) batches from a label bank."""

    def __init__(self, maps: np.ndarray, pixel_mm: float, cfg: RandomizeConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or RandomizeConfig()
        self.maps = torch.from_numpy(np.ascontiguousarray(maps))  # uint8 [N, H, W]
        self.pixel_mm = pixel_mm
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.heart_centre = self._heart_centres(maps)  # [N, 2] (row, col) in bank pixels
        self.lut = torch.from_numpy(classes_from_tissues(np.arange(256)).astype(np.int64))

    @staticmethod
    def _heart_centres(maps: np.ndarray) -> torch.Tensor:
        n, h, w = maps.shape
        out = np.tile(np.array([[(h - 1) / 2, (w - 1) / 2]], np.float32), (n, 1))
        heart = np.isin(maps, np.array(HEART + [_T["la_blood"], _T["ra_blood"], _T["aortic_blood"]], np.uint8))
        for i in range(n):
            rr, cc = np.nonzero(heart[i])
            if rr.size:
                out[i] = (rr.mean(), cc.mean())
        return torch.from_numpy(out)

    # ---------------------------------------------------------------------------------------- geometry
    def _grid(self, idx: torch.Tensor) -> torch.Tensor:
        """Sampling grid [B, S, S, 2] into the bank maps (normalised coordinates for grid_sample)."""
        c = self.cfg
        b, s = len(idx), c.size
        h, w = self.maps.shape[1:]
        fine = torch.rand(b, generator=self.gen) < c.fine_fraction
        lo = torch.where(fine, torch.tensor(c.fine_pixel_mm[0]), torch.tensor(c.coarse_pixel_mm[0]))
        hi = torch.where(fine, torch.tensor(c.fine_pixel_mm[1]), torch.tensor(c.coarse_pixel_mm[1]))
        px = torch.exp(torch.log(lo) + torch.rand(b, generator=self.gen) * (torch.log(hi) - torch.log(lo)))
        jitter = torch.where(fine, torch.tensor(c.fine_jitter_mm), torch.tensor(c.coarse_jitter_mm))
        centre = torch.where(fine.view(-1, 1), self.heart_centre[idx],
                             torch.tensor([(h - 1) / 2, (w - 1) / 2]).view(1, 2).expand(b, 2))
        centre = centre + torch.randn(b, 2, generator=self.gen) * (jitter / self.pixel_mm).view(-1, 1)
        theta = torch.rand(b, generator=self.gen) * 2 * math.pi
        flip = torch.where(torch.rand(b, generator=self.gen) < 0.5, -1.0, 1.0)
        aniso = torch.exp(torch.randn(b, 2, generator=self.gen) * 0.06)
        # Output pixel (u, v) centred at 0, in mm -> bank pixels.
        u = (torch.arange(s, dtype=torch.float32) - (s - 1) / 2)
        vv, uu = torch.meshgrid(u, u, indexing="ij")  # rows, cols
        scale = (px / self.pixel_mm).view(-1, 1, 1)
        ru = uu.unsqueeze(0) * scale * aniso[:, 1].view(-1, 1, 1) * flip.view(-1, 1, 1)
        rv = vv.unsqueeze(0) * scale * aniso[:, 0].view(-1, 1, 1)
        cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
        col = cos * ru - sin * rv
        row = sin * ru + cos * rv
        # Smooth deformation: a few mm at a scale of ~4 cells over the crop.
        amp = torch.rand(b, 1, 1, generator=self.gen) * c.deform_mm / self.pixel_mm
        row = row + amp * _smooth_field(b, s, 5, self.gen)[:, 0]
        col = col + amp * _smooth_field(b, s, 5, self.gen)[:, 0]
        row = row + centre[:, 0].view(-1, 1, 1)
        col = col + centre[:, 1].view(-1, 1, 1)
        return torch.stack([col / (w - 1) * 2 - 1, row / (h - 1) * 2 - 1], dim=-1)

    # ---------------------------------------------------------------------------------------- contrast
    def _means(self, b: int) -> torch.Tensor:
        """[B, N_TISSUES] tissue means: uniform, or near the SSFP prior; blood pools and walls tied."""
        g = self.gen
        uniform = torch.rand(b, N_TISSUES, generator=g)
        prior = (SSFP_PRIOR.view(1, -1) + torch.randn(b, N_TISSUES, generator=g) * 0.12).clamp(0, 1)
        use_prior = (torch.rand(b, 1, generator=g) < self.cfg.prior_contrast_fraction)
        mu = torch.where(use_prior, prior, uniform)
        spread = torch.full((b,), 0.03)
        if self.cfg.pool_spread_fraction > 0:  # off: the random stream stays that of the older recipes
            spread = torch.where(torch.rand(b, generator=g) < self.cfg.pool_spread_fraction,
                                 torch.tensor(self.cfg.pool_spread), spread)
        for group, sd in ((BLOOD, spread), (WALLS, torch.full((b,), 0.03))):
            shared = mu[:, group[0]].clone()
            for t in group:
                mu[:, t] = (shared + torch.randn(b, generator=g) * sd).clamp(0, 1)
        return mu

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, g = self.cfg, self.gen
        s = c.size
        idx = torch.randint(0, len(self.maps), (batch,), generator=g)
        grid = self._grid(idx)
        lab = self._sample_maps(idx, grid)
        lab = self._swap_context(lab)
        target = self.lut[lab]

        mu = self._means(batch)
        img = torch.gather(mu, 1, lab.view(batch, -1)).view(batch, 1, s, s)
        sd = torch.rand(batch, N_TISSUES, generator=g) * 0.06
        img = img + torch.gather(sd, 1, lab.view(batch, -1)).view(batch, 1, s, s) * torch.randn(batch, 1, s, s, generator=g)
        tex = torch.rand(batch, N_TISSUES, generator=g) * 0.12
        img = img + torch.gather(tex, 1, lab.view(batch, -1)).view(batch, 1, s, s) * _smooth_field(batch, s, 12, g)

        img = self._trabeculae(img, lab, mu)
        img = self._papillary_blobs(img, lab, mu)
        img = self._clutter(img, lab)

        # Imaging chain.
        img = _gaussian_blur(img, torch.rand(batch, generator=g) * 1.0)
        img = self._low_resolution(img)
        bias = torch.exp(_smooth_field(batch, s, 3, g) * torch.rand(batch, 1, 1, 1, generator=g) * c.bias_max)
        img = img.clamp_min(0) * bias
        img = img / img.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
        img = img ** torch.exp(torch.randn(batch, 1, 1, 1, generator=g) * 0.25)
        sigma = (torch.rand(batch, 1, 1, 1, generator=g) * c.noise_max)
        n1 = torch.randn(batch, 1, s, s, generator=g) * sigma
        n2 = torch.randn(batch, 1, s, s, generator=g) * sigma
        img = torch.sqrt((img + n1) ** 2 + n2**2)
        img = self._ghosts(img)
        return normalize(img), target

    def _sample_maps(self, idx: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """[B, S, S] tissue ids of the bank maps `idx` on the sampling grids (0 = air outside the map)."""
        return F.grid_sample(self.maps[idx].unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros",
                             align_corners=True).long()[:, 0]

    def _swap_context(self, lab: torch.Tensor) -> torch.Tensor:
        """For a share of the samples: keep the heart and its sac (plus a random margin of their own
        surroundings), take everything else from another map cropped independently, with that map's heart
        and sac filled with one background tissue (so no second heart appears)."""
        c, g = self.cfg, self.gen
        if c.context_swap_fraction <= 0:
            return lab  # off: the random stream stays that of the older recipes
        b = lab.shape[0]
        swap = torch.rand(b, generator=g) < c.context_swap_fraction
        if not bool(swap.any()):
            return lab
        donor_idx = torch.randint(0, len(self.maps), (b,), generator=g)
        donor = self._sample_maps(donor_idx, self._grid(donor_idx))
        sac = torch.from_numpy(np.array(HEART_AND_SAC))
        fill = torch.tensor(BACKGROUND_TISSUES)[torch.randint(0, len(BACKGROUND_TISSUES), (b,), generator=g)]
        donor = torch.where(torch.isin(donor, sac), fill.view(-1, 1, 1), donor)
        keep = torch.isin(lab, sac).float().unsqueeze(1)
        margin = torch.randint(0, c.context_margin_px + 1, (b,), generator=g)
        for i in range(b):  # a per-sample margin: dilation by a (2m+1)-square
            m = int(margin[i])
            if m > 0:
                keep[i] = F.max_pool2d(keep[i:i + 1], 2 * m + 1, stride=1, padding=m)[0]
        take = swap.view(-1, 1, 1) & (keep[:, 0] < 0.5)
        return torch.where(take, donor, lab)

    def _trabeculae(self, img: torch.Tensor, lab: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Dark wall-signal dots along the inner border of the LV and RV cavities (labelled cavity)."""
        g = self.gen
        b, _, s, _ = img.shape
        cav = torch.zeros_like(lab, dtype=torch.bool)
        for t in CAVITIES + [_T["papillary_muscle"]]:
            cav |= lab == t
        cavf = cav.float().unsqueeze(1)
        k = 5
        eroded = -F.max_pool2d(-cavf, k, stride=1, padding=k // 2)
        ring = (cavf - eroded).clamp(0, 1)
        dots = (_smooth_field(b, s, 40, g) > torch.rand(b, 1, 1, 1, generator=g) * 0.8 + 0.5).float()
        on = (torch.rand(b, 1, 1, 1, generator=g) < self.cfg.trabeculae_fraction).float()
        wall = mu[:, _T["lv_myocardium"]].view(-1, 1, 1, 1)
        mix = ring * dots * on * (0.4 + 0.6 * torch.rand(b, 1, 1, 1, generator=g))
        return img * (1 - mix) + wall * mix

    def _papillary_blobs(self, img: torch.Tensor, lab: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Dark wall-signal blobs anywhere inside the LV cavity (papillary muscles and chordae cut at odd angles,
        large at end-systole), still labelled cavity: a dark island in the blood pool is not myocardium."""
        if self.cfg.papillary_fraction <= 0:
            return img  # off: the random stream stays that of the recipe without blobs
        g = self.gen
        b, _, s, _ = img.shape
        cav = (lab == _T["lv_blood"]).unsqueeze(1)
        u = torch.arange(s, dtype=torch.float32)
        vv, uu = torch.meshgrid(u, u, indexing="ij")
        wall = mu[:, _T["lv_myocardium"]].view(-1, 1, 1, 1)
        out = img
        for _ in range(self.cfg.papillary_max):
            on = (torch.rand(b, 1, 1, 1, generator=g) < self.cfg.papillary_fraction)
            # A random cavity pixel per sample as the blob centre (none when the sample shows no LV).
            flat = cav.view(b, -1).float() + 1e-6 * torch.rand(b, s * s, generator=g)
            idx = flat.argmax(dim=1)
            cy, cx = (idx // s).float().view(-1, 1, 1), (idx % s).float().view(-1, 1, 1)
            r = 1.5 + torch.rand(b, 1, 1, generator=g) * 3.5
            blob = (((vv - cy) ** 2 + (uu - cx) ** 2) < r**2).unsqueeze(1) & cav & on
            mix = 0.5 + 0.5 * torch.rand(b, 1, 1, 1, generator=g)
            out = torch.where(blob, out * (1 - mix) + wall * mix, out)
        return out

    def _clutter(self, img: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """Random ellipses of random signal over background tissues (never over the heart's classes)."""
        g = self.gen
        b, _, s, _ = img.shape
        bg = torch.zeros_like(lab, dtype=torch.bool)
        for t in BACKGROUND_TISSUES:
            bg |= lab == t
        u = torch.arange(s, dtype=torch.float32)
        vv, uu = torch.meshgrid(u, u, indexing="ij")
        out = img.clone()
        for _ in range(self.cfg.clutter_max):
            on = (torch.rand(b, generator=g) < 0.6).view(-1, 1, 1)
            cy, cx = (torch.rand(2, b, 1, 1, generator=g) * s)
            ay, ax = (torch.rand(2, b, 1, 1, generator=g) * 0.15 * s + 3)
            ang = torch.rand(b, 1, 1, generator=g) * math.pi
            dy, dx = vv - cy, uu - cx
            r = ((dy * torch.cos(ang) + dx * torch.sin(ang)) / ay) ** 2 + ((dx * torch.cos(ang) - dy * torch.sin(ang)) / ax) ** 2
            m = ((r < 1) & bg & on).unsqueeze(1)
            val = torch.rand(b, 1, 1, 1, generator=g)
            out = torch.where(m, val + 0.04 * torch.randn(b, 1, s, s, generator=g), out)
        return out

    def _low_resolution(self, img: torch.Tensor) -> torch.Tensor:
        """Acquired at a lower resolution along one axis (phase encoding) for half the samples."""
        b, _, s, _ = img.shape
        out = img.clone()
        for i in range(b):
            if float(torch.rand(1, generator=self.gen)) < 0.5:
                f = 1.0 + float(torch.rand(1, generator=self.gen)) * 1.0
                n = max(8, int(round(s / f)))
                if float(torch.rand(1, generator=self.gen)) < 0.5:
                    low = F.interpolate(img[i:i + 1], size=(n, s), mode="area")
                else:
                    low = F.interpolate(img[i:i + 1], size=(s, n), mode="area")
                out[i:i + 1] = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
        return out

    def _ghosts(self, img: torch.Tensor) -> torch.Tensor:
        """Motion ghosts: faint shifted copies along one axis."""
        b, _, s, _ = img.shape
        out = img.clone()
        for i in range(b):
            if float(torch.rand(1, generator=self.gen)) < self.cfg.ghost_fraction:
                shift = int(torch.randint(s // 8, s // 2, (1,), generator=self.gen))
                dim = 2 + int(torch.randint(0, 2, (1,), generator=self.gen))
                a = 0.05 + 0.15 * float(torch.rand(1, generator=self.gen))
                out[i] = img[i] + a * (torch.roll(img[i], shift, dims=dim - 1) + torch.roll(img[i], -shift, dims=dim - 1)) / 2
        return out
