"""The segmentation training bank: tissue label maps of short-axis planes drawn from many synthetic hearts.

Only label maps are stored, never images: the images are drawn from the labels at training time with random
contrasts, textures and artefacts (cmr.quant.randomize), so no appearance of the phantom can become a
shortcut. Each heart contributes a short-axis stack that starts above the valve plane (atria, aortic root,
outflow tract, as real stacks do) and ends below the apex, at end-diastole, end-systole and one random phase,
on a 1.5 mm grid that covers the whole thorax (408 mm), so both the localisation pass (coarse, whole field of
view) and the fine pass (heart crop) can be trained from it.

Diseases are drawn with equal shares, so dilated, hypertrophied and infarcted hearts are as common as normal
ones: the segmenter must measure the hearts that matter most.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from cmr.dicom.geometry import unit
from cmr.labels import DISEASES
from cmr.synth.acquisition import Plane, SeriesPlan, render_label_maps
from cmr.synth.generate import study_rng
from cmr.synth.phantom import AnatomyVariation, HeartPhantom
from cmr.synth.tissues import TISSUES
from cmr.synth.truth import sample_truth

BANK_PIXEL_MM = 1.5
BANK_SIZE = 272  # 408 mm
FORMAT = "cmr-seg-bank/1"


@dataclass
class LabelBank:
    """Tissue label maps [N, BANK_SIZE, BANK_SIZE] (uint8, cmr.synth.tissues ids) and where each came from."""

    maps: NDArray[np.uint8]
    heart: NDArray[np.int32]  # index of the synthetic heart (same heart = same anatomy)
    level: NDArray[np.float32]  # 0 at the apex .. 1 at the LV base (outside 0..1: beyond the ventricle)
    phase: NDArray[np.float32]  # fraction of the cardiac cycle
    pixel_mm: float = BANK_PIXEL_MM

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, format=np.array(FORMAT), tissues=np.array(TISSUES), maps=self.maps,
                            heart=self.heart, level=self.level, phase=self.phase, pixel_mm=np.array(self.pixel_mm))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabelBank:
        with np.load(path) as z:
            if str(z["format"]) != FORMAT or tuple(z["tissues"]) != TISSUES:
                raise ValueError(f"{path} is not a {FORMAT} bank of this tissue table")
            return cls(z["maps"], z["heart"], z["level"], z["phase"], float(z["pixel_mm"]))

    def split(self, val_fraction: float, seed: int = 0) -> tuple[LabelBank, LabelBank]:
        """Train / validation banks that share no heart."""
        hearts = np.unique(self.heart)
        rng = np.random.default_rng(seed)
        val = set(rng.choice(hearts, size=max(1, int(round(len(hearts) * val_fraction))), replace=False).tolist())
        is_val = np.array([h in val for h in self.heart])
        return self._subset(~is_val), self._subset(is_val)

    def _subset(self, keep: NDArray[np.bool_]) -> LabelBank:
        return LabelBank(self.maps[keep], self.heart[keep], self.level[keep], self.phase[keep], self.pixel_mm)


def heart_stack_plan(ph: HeartPhantom, rng: np.random.Generator) -> tuple[SeriesPlan, NDArray[np.float32]]:
    """A short-axis stack over this heart, from above the valve plane to below the apex, with a few degrees of
    planning error; returns the plan and each plane's level (0 apex .. 1 base)."""
    tilt = rng.normal(0, 0.08, 3)
    normal = unit(ph.w + tilt - (tilt @ ph.w) * ph.w)  # the LV axis, tilted by planning error (apex -> base)
    row = unit(-ph.s - (-ph.s @ normal) * normal)
    col = unit(np.cross(normal, row))
    if col @ ph.a > 0:  # anterior at the top of the image, as a planned SAX
        col = -col
    spacing = float(rng.uniform(6.0, 10.0))
    top = ph.lv_c + float(rng.uniform(4.0, 26.0))
    bottom = -float(rng.uniform(4.0, 14.0))
    levels_mm = np.arange(top, bottom, -spacing)
    # The field of view is centred near, not on, the heart: real planning centres the thorax.
    offset = rng.normal(0, 25.0, 2)
    planes = [Plane(ph.apex + normal * h + row * offset[0] + col * offset[1], row, col) for h in levels_mm]
    phases = sorted({0.0, round(ph.cycle.t_es, 3), round(float(rng.uniform(0.05, 0.95)), 3)})
    fov = BANK_SIZE * BANK_PIXEL_MM
    plan = SeriesPlan("cine_sax", "sax", "cine", planes, phases, (BANK_SIZE, BANK_SIZE), (fov, fov),
                      float(rng.uniform(6.0, 10.0)), 0, "bank")
    return plan, (levels_mm / ph.lv_c).astype(np.float32)


def _render_heart(args: tuple[int, int, bool]) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.float32]]:
    seed, index, vary_anatomy = args
    rng = study_rng(seed, index)
    truth = sample_truth(rng, {d: 1.0 for d in DISEASES})
    variation = AnatomyVariation.sample(np.random.default_rng(np.random.SeedSequence([seed, index, 7]))) \
        if vary_anatomy else None
    ph = HeartPhantom(truth, rng, variation)
    plan, levels = heart_stack_plan(ph, rng)
    maps = render_label_maps(ph, plan)  # [planes, phases, H, W]
    n_planes, n_phases = maps.shape[:2]
    level = np.repeat(levels, n_phases)
    phase = np.tile(np.asarray(plan.trigger_fracs, np.float32), n_planes)
    return maps.reshape(-1, BANK_SIZE, BANK_SIZE), level, phase


def build_bank(hearts: int, seed: int = 0, workers: int = 0, progress: bool = True,
               vary_anatomy: bool = False) -> LabelBank:
    """Render `hearts` synthetic hearts into a label bank (deterministic for a seed, whatever the workers).

    `vary_anatomy` draws the phantom's free shape parameters per heart (cmr.synth.phantom.AnatomyVariation:
    outflow tract above the base, papillary muscle size and place, RV proportions); False renders the
    hearts exactly as `cmr synth` would."""
    if hearts < 1:
        raise ValueError("hearts must be >= 1")
    workers = workers or os.cpu_count() or 1
    jobs = [(seed, i, vary_anatomy) for i in range(hearts)]
    maps, heart, level, phase = [], [], [], []
    bar = tqdm(total=hearts, desc="label bank", unit="heart", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, (m, lv, ph) in enumerate(pool.map(_render_heart, jobs, chunksize=4)):
            maps.append(m)
            level.append(lv)
            phase.append(ph)
            heart.append(np.full(len(m), i, np.int32))
            bar.update()
    bar.close()
    return LabelBank(np.concatenate(maps), np.concatenate(heart), np.concatenate(level), np.concatenate(phase))
