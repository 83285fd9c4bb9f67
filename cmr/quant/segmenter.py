"""Segment a short-axis cine stack: two passes of one network, then 3-D clean-up.

1. Localise: on the middle slices, over the whole field of view at the coarse pixel size, where the image
   moves over the cycle, where the network sees heart, near the image centre; refined to the centroid of the
   LV the fine pass finds there (in patient coordinates, so slices of different series agree).
2. Segment: every slice and phase, resampled to a heart-centred crop at the fine pixel size; class
   probabilities are mapped back onto each image's own pixel grid (bilinear), so masks and measurements
   use the scanner's pixels.
3. Clean up per phase: the largest 3-D connected LV (cavity + myocardium) and RV, holes in the LV cavity
   filled (papillary muscles belong to the cavity).

Inference runs in bfloat16 on CPUs that have it (AVX-512 BF16 / AMX) and in float32 elsewhere; argmax masks
are the same in both to within a few boundary pixels (checked by a test).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from scipy import ndimage

from cmr.dicom import imaging
from cmr.quant.labels import BACKGROUND, LV_CAVITY, LV_MYOCARDIUM, N_CLASSES, RV_CAVITY
from cmr.quant.randomize import normalize
from cmr.quant.unet import SegmenterConfig, UNet

FORMAT = "cmr-segmenter/1"
SHIPPED = Path(__file__).resolve().parent.parent / "model" / "weights" / "cmr-seg-small.pt"
# Fewer LV cavity pixels than this on a 128-pixel canvas is no LV (a speck, not a ventricle).
MIN_LV_PIXELS = 20


@dataclass
class SliceImages:
    """One short-axis slice over time, with what is needed to place it in the patient."""

    pixels: NDArray[np.floating]  # [phases, rows, cols]
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    position: NDArray[np.float64]  # ImagePositionPatient (top-left pixel centre)
    orientation: NDArray[np.float64]  # ImageOrientationPatient (row direction, column direction)


@dataclass
class StackSegmentation:
    masks: list[NDArray[np.uint8]]  # per slice [phases, rows, cols], classes of cmr.quant.labels
    confidence: float  # mean top-class probability over the pixels labelled heart
    centre: NDArray[np.float64]  # heart centre found by the first pass (patient mm)
    found_heart: bool  # False: the first pass found no LV anywhere; the image centres were used
    seconds: dict[str, float] = field(default_factory=dict)  # locate, segment, clean-up wall times


# The symmetries of the square, most different first: (quarter turns, mirrored first).
_DIHEDRAL: tuple[tuple[int, bool], ...] = ((0, False), (2, True), (1, False), (3, True),
                                           (2, False), (0, True), (3, False), (1, True))


def bf16_supported() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Segmenter:
    """The network plus its two-pass geometry. Thread-safe for inference (no state is mutated)."""

    def __init__(self, net: UNet, cfg: SegmenterConfig, name: str = "cmr-seg-small", version: str = "",
                 meta: dict[str, Any] | None = None, bf16: bool | None = None, tta: int | None = None) -> None:
        self.net = net.eval().to(memory_format=torch.channels_last)
        # The network's answer can change with the image's orientation (seen on real scans, e.g. the CC0
        # Sunnybrook stacks): the full-resolution pass averages several orientations.
        self.tta = cfg.tta if tta is None else tta
        self.cfg = cfg
        self.name = name
        self.version = version or name
        self.meta = meta or {}
        self.bf16 = bf16_supported() if bf16 is None else bf16

    # ------------------------------------------------------------------------------------------ network
    @torch.inference_mode()
    def predict(self, images: NDArray[np.floating], batch: int = 20, tta: int = 1) -> torch.Tensor:
        """Class probabilities [N, C, S, S] (float32) of images [N, S, S] already on the network's canvas.

        `tta` > 1 averages the probabilities over that many of the 8 rotations/reflections of the square (test-
        time augmentation: the network was trained on every orientation, and averaging removes the answers
        that depend on one). Batches of ~20 images are the fastest on a CPU (they stay in cache)."""
        out = []
        views = _DIHEDRAL[:max(1, min(tta, len(_DIHEDRAL)))]
        x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
        for i in range(0, len(x_all), batch):
            x = normalize(x_all[i:i + batch])
            acc = None
            for k, flip in views:
                xt = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1)).contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    p = torch.softmax(self.net(xt).float(), dim=1)
                p = torch.rot90(p, -k, dims=(-2, -1))
                p = p.flip(-1) if flip else p
                acc = p if acc is None else acc + p
            out.append(acc / len(views))
        return torch.cat(out) if out else torch.zeros(0, N_CLASSES, self.cfg.size, self.cfg.size)

    # ------------------------------------------------------------------------------------------ geometry
    def _canvas(self, images: NDArray[np.floating], spacing: tuple[float, float], pixel_mm: float,
                centre_rc: tuple[float, float] | None) -> NDArray[np.float32]:
        return imaging.resample_to_grid(images, spacing, self.cfg.size, self.cfg.size * pixel_mm, centre=centre_rc)

    @staticmethod
    def _pixel_to_patient(sl: SliceImages, r: float, c: float) -> NDArray[np.float64]:
        row_dir, col_dir = sl.orientation[:3], sl.orientation[3:]
        return sl.position + col_dir * r * sl.pixel_spacing[0] + row_dir * c * sl.pixel_spacing[1]

    @staticmethod
    def _patient_to_pixel(sl: SliceImages, p: NDArray[np.float64]) -> tuple[float, float]:
        row_dir, col_dir = sl.orientation[:3], sl.orientation[3:]
        rel = p - sl.position
        return float(rel @ col_dir) / sl.pixel_spacing[0], float(rel @ row_dir) / sl.pixel_spacing[1]

    def _canvas_to_image(self, canvas_rc: NDArray[np.floating], sl: SliceImages, pixel_mm: float,
                         centre_rc: tuple[float, float]) -> NDArray[np.float64]:
        step = np.array([pixel_mm / sl.pixel_spacing[0], pixel_mm / sl.pixel_spacing[1]])
        return np.asarray(centre_rc) + (canvas_rc - (self.cfg.size - 1) / 2.0) * step

    def locate_heart(self, slices: Sequence[SliceImages]) -> tuple[NDArray[np.float64], bool]:
        """First pass: the heart centre in patient coordinates, and whether the LV was found.

        Over the middle slices of the stack (where the ventricles are largest), on the whole field of view
        at the coarse pixel size, three cues are multiplied: where the image moves over the cycle (the
        temporal standard deviation, the classic first-harmonic localiser of cine CMR: the ventricles move
        most), where the network sees heart, and a weak prior for the image centre (the heart is planned
        near it). The peak is then refined by the fine pass on the middle slices: the centroid of the LV
        it finds there, if it finds one."""
        px = self.cfg.coarse_pixel_mm
        n = len(slices)
        middle = list(range(n))[max(0, n // 5): max(1, n - n // 5)] or list(range(n))
        ref = slices[middle[len(middle) // 2]]
        rows, cols = ref.pixels.shape[1:]
        ref_centre = ((rows - 1) / 2.0, (cols - 1) / 2.0)
        size = self.cfg.size
        motion = np.zeros((size, size), np.float64)
        first_phase = []
        for k in middle:
            sl = slices[k]
            c = self._patient_to_pixel(sl, self._pixel_to_patient(ref, *ref_centre))  # same point in every slice
            canvas = self._canvas(sl.pixels, sl.pixel_spacing, px, c)  # [P, S, S]
            lo, hi = np.percentile(canvas, [1.0, 99.5])
            canvas = np.clip((canvas - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
            if len(canvas) > 1:
                motion += canvas.std(axis=0)
            first_phase.append(canvas[0])
        heart = 1.0 - self.predict(np.stack(first_phase))[:, BACKGROUND].numpy().mean(axis=0)
        yy, xx = np.mgrid[0:size, 0:size]
        r_mm = np.hypot(yy - (size - 1) / 2.0, xx - (size - 1) / 2.0) * px
        prior = np.exp(-0.5 * (r_mm / 90.0) ** 2)
        motion = ndimage.gaussian_filter(motion, 12.0 / px)
        motion = motion / motion.max() if motion.max() > 0 else np.ones_like(motion)
        score = (0.2 + motion) * (0.2 + ndimage.gaussian_filter(heart, 6.0 / px)) * (0.3 + prior)
        peak = np.unravel_index(int(np.argmax(score)), score.shape)
        rc = self._canvas_to_image(np.array(peak, dtype=np.float64), ref, px, ref_centre)
        centre = self._pixel_to_patient(ref, rc[0], rc[1])
        refined = self._refine(slices, middle, centre)
        return (refined, True) if refined is not None else (centre, False)

    def _refine(self, slices: Sequence[SliceImages], middle: list[int], centre: NDArray[np.float64]
                ) -> NDArray[np.float64] | None:
        """The LV centroid the fine pass finds on the middle slices (first phase) around `centre`: the
        largest LV blob of each slice, combined by a weighted median. None when no slice shows an LV."""
        px = self.cfg.fine_pixel_mm
        canvases, placed = [], []
        for k in middle:
            sl = slices[k]
            c = self._patient_to_pixel(sl, centre)
            canvases.append(self._canvas(sl.pixels[:1], sl.pixel_spacing, px, c)[0])
            placed.append((sl, c))
        labels = self.predict(np.stack(canvases), tta=self.tta).argmax(1).numpy()
        points, weights = [], []
        for (sl, c), lab in zip(placed, labels):
            lv = (lab == LV_CAVITY) | (lab == LV_MYOCARDIUM)
            if lv.sum() < MIN_LV_PIXELS:
                continue
            comp, n = ndimage.label(lv)
            sizes = np.bincount(comp.ravel())[1:]
            rr, cc = np.nonzero(comp == 1 + int(np.argmax(sizes)))
            rc = self._canvas_to_image(np.array([rr.mean(), cc.mean()]), sl, px, c)
            points.append(self._pixel_to_patient(sl, rc[0], rc[1]))
            weights.append(float(len(rr)))
        if not points:
            return None
        pts = np.asarray(points)
        order = np.argsort(pts, axis=0)
        w = np.asarray(weights)
        out = np.empty(3)
        for d in range(3):  # weighted median per axis: robust to a slice that found something else
            cw = np.cumsum(w[order[:, d]])
            out[d] = pts[order[np.searchsorted(cw, cw[-1] / 2.0), d], d]
        return out

    # ------------------------------------------------------------------------------------------ segment
    def segment(self, slices: Sequence[SliceImages], phases: Sequence[Sequence[int]] | None = None,
                centre: NDArray[np.float64] | None = None, found: bool = True) -> StackSegmentation:
        """Masks of a short-axis stack (slices in stack order) at full resolution: every phase, or per slice
        the phases `phases[k]` (indices into that slice's own phases, masks in that order). `centre` skips the
        localisation when the caller has it (`locate_heart`)."""
        if not slices:
            raise ValueError("no slices to segment")
        t0 = time.perf_counter()
        if centre is None:
            centre, found = self.locate_heart(slices)
        t1 = time.perf_counter()
        px = self.cfg.fine_pixel_mm
        size = self.cfg.size
        masks: list[NDArray[np.uint8]] = []
        probs_top: list[NDArray[np.float32]] = []
        for k, sl in enumerate(slices):
            images = sl.pixels if phases is None else sl.pixels[list(phases[k])]
            # The heart centre projected into this slice (along the slice normal).
            c_rc = self._patient_to_pixel(sl, centre)
            canvas = self._canvas(images, sl.pixel_spacing, px, c_rc)
            probs = self._second_look(canvas, self.predict(canvas, tta=self.tta), px)  # [P, C, S, S]
            rows, cols = sl.pixels.shape[1:]
            # Back onto the image grid, inside the part of the image the crop covers (the rest is
            # background): image pixel -> canvas coordinate -> grid_sample (bilinear).
            step = np.array([px / sl.pixel_spacing[0], px / sl.pixel_spacing[1]])
            rr = (np.arange(rows) - c_rc[0]) / step[0] + (size - 1) / 2.0
            cc = (np.arange(cols) - c_rc[1]) / step[1] + (size - 1) / 2.0
            r_in = np.flatnonzero((rr >= 0) & (rr <= size - 1))
            c_in = np.flatnonzero((cc >= 0) & (cc <= size - 1))
            lab = np.zeros((len(probs), rows, cols), np.uint8)
            top = np.ones((len(probs), rows, cols), np.float32)
            if r_in.size and c_in.size:
                gy = torch.from_numpy((rr[r_in] / (size - 1) * 2 - 1).astype(np.float32))
                gx = torch.from_numpy((cc[c_in] / (size - 1) * 2 - 1).astype(np.float32))
                grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).unsqueeze(0)
                on = F.grid_sample(probs, grid.expand(len(probs), -1, -1, -1), mode="bilinear",
                                   padding_mode="border", align_corners=True)
                t, lb = on.max(dim=1)
                box = np.ix_(np.arange(len(probs)), r_in, c_in)
                lab[box] = lb.numpy().astype(np.uint8)
                top[box] = t.numpy()
            masks.append(lab)
            probs_top.append(top)
        t2 = time.perf_counter()
        masks = clean_masks(masks)
        heart = [(m != BACKGROUND) for m in masks]
        n = sum(int(h.sum()) for h in heart)
        conf = float(sum(float(t[h].sum()) for t, h in zip(probs_top, heart)) / n) if n else 0.0
        seconds = {"locate": t1 - t0, "segment": t2 - t1, "clean_up": time.perf_counter() - t2}
        return StackSegmentation(masks, conf, centre, found, seconds)

    def _second_look(self, canvas: NDArray[np.floating], probs: torch.Tensor, pixel_mm: float) -> torch.Tensor:
        """`probs` with the images that show no LV cavity segmented again without their surroundings (beyond
        cfg.context_radius_mm of the canvas centre, the heart centre, blanked to zero signal); inside that disc
        the second answer replaces the first. Images where the first pass found an LV are left as they were."""
        radius = self.cfg.context_radius_mm / pixel_mm
        if radius <= 0:
            return probs
        empty = [i for i in range(len(probs)) if int((probs[i].argmax(0) == LV_CAVITY).sum()) < MIN_LV_PIXELS]
        if not empty:
            return probs
        size = canvas.shape[-1]
        yy, xx = np.mgrid[0:size, 0:size]
        disc = np.hypot(yy - (size - 1) / 2.0, xx - (size - 1) / 2.0) <= radius
        again = self.predict(np.where(disc, canvas[empty], 0.0), tta=self.tta)
        out = probs.clone()
        inside = torch.from_numpy(disc)
        out[empty] = torch.where(inside, again, probs[empty])
        return out

    def area_curves(self, slices: Sequence[SliceImages], centre: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """Per slice, [its phases, classes] area (mm^2) of each class in every phase, from a quick pass at the
        curve resolution (the fine crop's field of view on `curve_size` pixels, one orientation, no clean-up):
        enough to find end-diastole and end-systole and draw the volume curve; the measurements themselves
        come from full-resolution masks of those two phases. Slices may differ in phase count."""
        size = self.cfg.curve_size
        px = self.cfg.fine_pixel_mm * self.cfg.size / size
        out = []
        for sl in slices:
            canvas = imaging.resample_to_grid(sl.pixels, sl.pixel_spacing, size, size * px,
                                              centre=self._patient_to_pixel(sl, centre))
            labels = self.predict(canvas).argmax(1).numpy()
            out.append(np.stack([(labels == c).sum(axis=(1, 2)) for c in range(N_CLASSES)], axis=1)
                       .astype(np.float64) * px * px)
        return out

    # ------------------------------------------------------------------------------------------ files
    def save(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": FORMAT, "name": self.name, "config": self.cfg.to_dict(),
                 "state_dict": self.net.state_dict(), "meta": {**self.meta, **(meta or {})}}
        torch.save(state, path)


def clean_masks(masks: list[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
    """Per phase, over the stack: keep the largest 3-D connected LV (cavity and myocardium together) and RV,
    fill holes in the LV cavity slice by slice. Slices may differ in matrix; connectivity is then checked
    between slices of equal shape only (a stack of mixed matrices is rare and cleaned per slice).

    Work happens inside the bounding box of everything labelled (the heart crop), not the whole field of
    view: a few per cent of the pixels."""
    shapes = {m.shape[1:] for m in masks}
    out = [m.copy() for m in masks]
    if len(shapes) != 1:
        for m in out:
            m[:] = np.stack([_clean_volume(m[p][None])[0] for p in range(m.shape[0])])
        return out
    n_phases = min(m.shape[0] for m in out)
    vol = np.stack([m[:n_phases] for m in out], axis=1)  # [phases, slices, rows, cols]
    fg = np.nonzero((vol != BACKGROUND).any(axis=(0, 1)))
    if not fg[0].size:
        return out
    r0, r1 = max(0, fg[0].min() - 2), fg[0].max() + 3
    c0, c1 = max(0, fg[1].min() - 2), fg[1].max() + 3
    crop = vol[:, :, r0:r1, c0:c1]
    cleaned = np.stack([_clean_volume(crop[p]) for p in range(n_phases)])
    vol[:, :, r0:r1, c0:c1] = cleaned
    for k, m in enumerate(out):
        m[:n_phases] = vol[:, k]
    return out


def _largest(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    comp, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(comp.ravel())[1:]
    return comp == 1 + int(np.argmax(sizes))


# Hole filling within each slice only: connectivity in-plane, none across slices.
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _clean_volume(vol: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """vol [slices, rows, cols] of one phase."""
    lv = _largest((vol == LV_CAVITY) | (vol == LV_MYOCARDIUM))
    rv = _largest(vol == RV_CAVITY)
    out = np.zeros_like(vol)
    myo = lv & (vol == LV_MYOCARDIUM)
    out[myo] = LV_MYOCARDIUM
    # Inside the epicardium, what is not myocardium is cavity (a bright, flat blood pool the network left
    # unlabelled is still blood); then enclosed papillary muscles and trabeculae are cavity too.
    inside = ndimage.binary_fill_holes(lv, structure=_IN_PLANE) & ~myo
    cav = ndimage.binary_fill_holes((lv & (vol == LV_CAVITY)) | inside, structure=_IN_PLANE)
    out[cav] = LV_CAVITY
    out[rv & ~cav & (out != LV_MYOCARDIUM)] = RV_CAVITY
    return out


def load_segmenter(path: Path | None = None, bf16: bool | None = None) -> Segmenter:
    """The shipped segmenter (or a checkpoint written by `cmr quant train`)."""
    path = Path(path) if path is not None else SHIPPED
    if not path.is_file():
        raise FileNotFoundError(f"segmentation checkpoint not found: {path}")
    raw = path.read_bytes()
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    cfg = SegmenterConfig.from_dict(state["config"])
    net = UNet(cfg)
    net.load_state_dict(state["state_dict"])
    name = str(state.get("name", "cmr-seg"))
    version = f"{name}@{hashlib.sha256(raw).hexdigest()[:12]}"
    return Segmenter(net, cfg, name=name, version=version, meta=state.get("meta", {}), bf16=bf16)

