"""Render a loaded study as a labelled montage: an animated GIF of the cine views (LGE as still tiles) or a
static PNG at mid-cycle. Each series is windowed once (robust percentiles) so its frames do not flicker."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from cmr.dicom import imaging
from cmr.dicom.classify import estimate_long_axis
from cmr.dicom.errors import NoCineError
from cmr.dicom.exam import LAX_ORDER, best_series, sax_stack
from cmr.dicom.model import Study
from cmr.dicom.series import Series

log = logging.getLogger(__name__)

TILE_PX = 160
MAX_GIF_FRAMES = 16  # cine views are resampled to at most this many phases: smooth enough, files stay small
GIF_GREY_LEVELS = 64  # fewer grey levels compress ~2x better in GIF's LZW; invisible on a preview
GRID_COLUMNS = 4


@dataclass
class Tile:
    """One labelled panel: the frames of one slice, windowed to 0..1 and resampled to the tile grid."""

    label: str
    frames: NDArray[np.float32]  # [phases, tile, tile]
    animated: bool


def _tile(label: str, s: Series, slice_index: int, animated: bool, size: int, fov_mm: float) -> Tile:
    images = s.pixels[slice_index] if animated else s.pixels[slice_index, :1]
    window = imaging.robust_window(s.pixels)
    grid = imaging.resample_to_grid(imaging.apply_window(images, window), s.pixel_spacing, size, fov_mm)
    return Tile(label, grid, animated)


def collect_tiles(study: Study, size: int = TILE_PX, fov_mm: float = 280.0) -> list[Tile]:
    """Tiles in display order: cine SAX base/mid/apex, cine 4CH/2CH/3CH (or LAX), LGE SAX mid, LGE LAX."""
    axis = estimate_long_axis(study.series)
    tiles: list[Tile] = []
    cine_sax = sax_stack(study, "cine", axis)
    if len(cine_sax) >= 3:
        # Centres of the basal, mid and apical thirds: the stack's end slices often miss the ventricle.
        picks = list(zip(("SAX base", "SAX mid", "SAX apex"), imaging.even_indices(len(cine_sax), 3)))
    else:
        picks = [("SAX", (len(cine_sax) - 1) // 2)] if cine_sax else []
    for label, k in picks:
        s, i = cine_sax[k]
        tiles.append(_tile(label, s, i, True, size, fov_mm))
    used: set[str] = set()
    for view in (*LAX_ORDER, "lax"):
        s = best_series(study, "cine", (view,))
        if s is not None and s.key not in used:
            used.add(s.key)
            tiles.append(_tile(view.upper(), s, (s.n_slices - 1) // 2, True, size, fov_mm))
    lge_sax = sax_stack(study, "lge", axis)
    if lge_sax:
        s, i = lge_sax[(len(lge_sax) - 1) // 2]
        tiles.append(_tile("LGE SAX", s, i, False, size, fov_mm))
    for view in (*LAX_ORDER, "lax"):
        s = best_series(study, "lge", (view,))
        if s is not None and s.key not in used:
            used.add(s.key)
            tiles.append(_tile(f"LGE {view.upper()}", s, (s.n_slices - 1) // 2, False, size, fov_mm))
    return tiles


def _label(img: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((3, 2), text, font=font)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=0)  # keeps the label legible on bright tissue
    draw.text((3, 2), text, fill=255, font=font)


def _montage(tiles: list[Tile], frame: int, size: int, levels: int = 256) -> Image.Image:
    cols = min(GRID_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("L", (cols * size, rows * size), 0)
    for k, t in enumerate(tiles):
        img = t.frames[frame % t.frames.shape[0]] if t.animated else t.frames[0]
        grey = np.round(img * (levels - 1)) * (255.0 / (levels - 1))
        tile = Image.fromarray(grey.astype(np.uint8), mode="L")
        _label(tile, t.label)
        sheet.paste(tile, ((k % cols) * size, (k // cols) * size))
    return sheet


def _cycle_ms(study: Study) -> float:
    """Length of the cardiac cycle from cine trigger times (for GIF speed); 900 ms when unknown."""
    for s in study.of_kind("cine"):
        t = s.phase_times
        if t.size >= 2 and np.all(np.isfinite(t)):
            return float(t[-1] - t[0] + np.median(np.diff(t)))
    return 900.0


def render_study(study: Study, out: Path, *, tile: int = TILE_PX, fov_mm: float = 280.0,
                 only: Collection[str] | None = None) -> Path:
    """Write `out` (.gif: animated montage of the cine views; .png: static montage at mid-cycle). `only`: the
    tile labels to keep (e.g. {"SAX mid", "4CH"}, for a small preview), in display order."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".png"):
        raise ValueError(f"{out.name}: output must end with .gif or .png")
    tiles = collect_tiles(study, tile, fov_mm)
    if only is not None:
        tiles = [t for t in tiles if t.label in only]
    if not tiles:
        raise NoCineError("nothing to render: the study has no cine or LGE series")
    animated = [t for t in tiles if t.animated]
    n_frames = min(MAX_GIF_FRAMES, max((t.frames.shape[0] for t in animated), default=1))
    for t in animated:  # one common frame count so all cine tiles beat together
        t.frames = imaging.resample_phases(t.frames, n_frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        _montage(tiles, n_frames // 2, tile).save(out)
    else:
        frames = [_montage(tiles, f, tile, GIF_GREY_LEVELS) for f in range(n_frames)]
        duration = int(np.clip(_cycle_ms(study) / n_frames, 20, 200))
        frames[0].save(out, save_all=True, append_images=frames[1:], duration=duration, loop=0)
    log.info("wrote %s (%d tiles, %d frames)", out, len(tiles), n_frames)
    return out
