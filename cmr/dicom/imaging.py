"""Pixel operations shared by exam assembly and rendering: robust windowing, resampling of images onto a
square millimetre grid, and resampling of cine phases in time."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

_MAX_PERCENTILE_SAMPLES = 2_000_000


def robust_window(pixels: NDArray[np.floating], lo_pct: float = 1.0, hi_pct: float = 99.5) -> tuple[float, float]:
    """Intensity window (low, high) from percentiles of a whole series, so all its frames share one window."""
    flat = np.asarray(pixels, dtype=np.float32).ravel()
    if flat.size > _MAX_PERCENTILE_SAMPLES:
        # A strided subsample gives the same percentiles to well under 1% and keeps big stacks fast.
        flat = flat[:: flat.size // _MAX_PERCENTILE_SAMPLES + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(flat, [lo_pct, hi_pct])
    return float(lo), float(hi)


def apply_window(pixels: NDArray[np.floating], window: tuple[float, float]) -> NDArray[np.float32]:
    """Map `window` linearly onto 0..1 and clip; a flat window gives zeros."""
    lo, hi = window
    if not hi > lo:
        return np.zeros(np.shape(pixels), dtype=np.float32)
    out = (np.asarray(pixels, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def resample_to_grid(
    images: NDArray[np.floating], pixel_spacing: tuple[float, float], size: int, fov_mm: float,
    centre: tuple[float, float] | None = None, categorical: bool = False,
) -> NDArray[np.float32]:
    """Resample images [N, rows, cols] (bilinear) onto a size x size grid spanning fov_mm x fov_mm centred on
    `centre` (row, col in input pixels; default the image centre); regions outside the image are zero.

    Downsampling is preceded by a Gaussian low-pass (sigma = (factor - 1) / 2 input pixels), the usual
    anti-aliasing choice, so thin bright structures do not shimmer between frames. `categorical` images hold
    class ids (label maps): nearest neighbour, no low-pass, so every output pixel is one of the input ids.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim == 2:
        imgs = imgs[None]
    n, rows, cols = imgs.shape
    out_mm = fov_mm / size
    step = np.array([out_mm / pixel_spacing[0], out_mm / pixel_spacing[1]])  # input pixels per output pixel
    sigma = np.maximum(0.0, (step - 1.0) / 2.0)
    if np.any(sigma > 0.05) and not categorical:
        imgs = ndimage.gaussian_filter(imgs, sigma=(0.0, sigma[0], sigma[1]), mode="nearest")
    centre_in = np.array(centre if centre is not None else ((rows - 1) / 2.0, (cols - 1) / 2.0), dtype=np.float64)
    centre_out = (size - 1) / 2.0
    offset = centre_in - step * centre_out
    # The first axis maps identically, so order=1 leaves frames unmixed.
    return ndimage.affine_transform(
        imgs,
        matrix=np.array([1.0, step[0], step[1]]),
        offset=np.array([0.0, offset[0], offset[1]]),
        output_shape=(n, size, size),
        order=0 if categorical else 1,
        mode="constant",
        cval=0.0,
        prefilter=False,
    ).astype(np.float32, copy=False)


def resample_phases(phases: NDArray[np.floating], frames: int, categorical: bool = False) -> NDArray[np.float32]:
    """Resample a cardiac cycle [P, ...] to `frames` evenly spaced phases, linearly and cyclically (the phase
    after the last is the first), so every cine yields the same number of frames whatever its phase count.
    `categorical` phases hold class ids: the nearest phase instead of a blend."""
    p = np.asarray(phases, dtype=np.float32)
    n = p.shape[0]
    if n == frames:
        return p.copy()
    t = np.arange(frames) * (n / frames)
    if categorical:
        return p[np.round(t).astype(int) % n]
    i0 = np.floor(t).astype(int) % n
    i1 = (i0 + 1) % n
    w = (t - np.floor(t)).astype(np.float32).reshape((-1,) + (1,) * (p.ndim - 1))
    return (1.0 - w) * p[i0] + w * p[i1]


def even_indices(n: int, k: int) -> NDArray[np.intp]:
    """k indices spread evenly over 0..n-1: the centres of k equal segments (the middle for k == 1).

    Segment centres rather than both ends, because the ends of a clinical SAX stack usually lie outside the
    ventricle (atria above the base, nothing beyond the apex). Repeats when k > n."""
    centres = (np.arange(k) + 0.5) * (n / k) - 0.5
    return np.clip(np.round(centres), 0, n - 1).astype(np.intp)
