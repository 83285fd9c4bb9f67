"""What `cmr measure --masks` writes for a study: the label maps (npz), and pictures a reader checks first:
the cine loop of the short-axis stack with the contours drawn on it (GIF) and the LV/RV volume curves (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from cmr.dicom import imaging
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.measure import StudyMeasurement

MASKS_FORMAT = "cmr-masks/1"
# Contour colours: RV cavity blue, LV myocardium (epicardium) green, LV cavity (endocardium) red.
COLOURS: dict[int, tuple[int, int, int]] = {RV_CAVITY: (60, 140, 255), LV_MYOCARDIUM: (60, 220, 90), LV_CAVITY: (255, 70, 70)}


def save_masks(sm: StudyMeasurement, path: Path) -> Path:
    """npz: `slice_NN` [frames, rows, cols] uint8 per slice (base -> apex; frame j is phase mask_phases[j]),
    with their series, position,
    pixel spacing and the measurements, so the maps can be overlaid on the DICOM again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"slice_{k:02d}": m for k, m in enumerate(sm.masks)}
    meta = {
        "format": MASKS_FORMAT,
        "classes": {"0": "background", str(RV_CAVITY): "rv_cavity", str(LV_MYOCARDIUM): "lv_myocardium",
                    str(LV_CAVITY): "lv_cavity"},
        "slices": [{"series_key": s.key, "series_number": s.series_number, "slice_index": int(i),
                    "position": [float(v) for v in s.positions[i]], "pixel_spacing": list(s.pixel_spacing)}
                   for s, i in sm.slices],
        "slice_spacing_mm": sm.slice_spacing_mm,
        "mask_phases": list(sm.mask_phases),  # the cardiac phase of each mask frame
        "measurements": sm.measurements.to_dict(),
    }
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_masks(path: Path) -> tuple[list[NDArray[np.uint8]], dict]:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != MASKS_FORMAT:
            raise ValueError(f"{path} is not a {MASKS_FORMAT} file")
        masks = [z[f"slice_{k:02d}"] for k in range(len(meta["slices"]))]
    return masks, meta


def _outline(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return mask & ~ndimage.binary_erosion(mask)


def overlay_frames(images: NDArray[np.floating], masks: NDArray[np.uint8], size: int = 256) -> list[Image.Image]:
    """RGB frames of one slice over time [phases, rows, cols] with the mask contours drawn on."""
    window = imaging.robust_window(images)
    frames = []
    for img, m in zip(imaging.apply_window(images, window), masks):
        rgb = np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=2)
        for label, colour in COLOURS.items():
            rgb[_outline(m == label)] = colour
        frames.append(Image.fromarray(rgb).resize((size, size * img.shape[0] // img.shape[1]), Image.NEAREST))
    return frames


def mid_slice(sm: StudyMeasurement) -> int:
    """The slice with the largest LV cavity at end-diastole (the mid-ventricle), else the middle one."""
    ed = sm.measurements.ed_phase or 0
    frame = sm.mask_phases.index(ed) if ed in sm.mask_phases else 0
    areas = [int((m[frame] == LV_CAVITY).sum()) for m in sm.masks]
    return int(np.argmax(areas)) if areas and max(areas) > 0 else len(sm.masks) // 2


def write_cine_overlay(sm: StudyMeasurement, path: Path, slice_k: int | None = None, frame_ms: int = 60) -> Path:
    """Animated GIF of one short-axis slice (default the mid-ventricle) with its contours."""
    if not sm.masks:
        raise ValueError("nothing was segmented")
    k = mid_slice(sm) if slice_k is None else slice_k
    frames = overlay_frames(sm.images(k), sm.masks[k])
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def write_volume_curve(sm: StudyMeasurement, path: Path, title: str = "") -> Path:
    """PNG of the LV and RV cavity volumes over the cycle, ED and ES marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = sm.measurements
    fig = Figure(figsize=(5.5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(m.lv_volume_curve_ml, "-o", ms=3, color="#c0392b", label="LV cavity")
    if any(m.rv_volume_curve_ml):
        ax.plot(m.rv_volume_curve_ml, "-o", ms=3, color="#2e6fd1", label="RV cavity")
    for phase, name in ((m.ed_phase, "ED"), (m.es_phase, "ES")):
        if phase is not None:
            ax.axvline(phase, color="k", lw=0.6, ls=":")
            ax.text(phase, ax.get_ylim()[1], name, ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("cardiac phase")
    ax.set_ylabel("volume (ml)")
    ef = "" if m.lvef_pct is None else f"LVEF {m.lvef_pct:.0f} %"
    ax.set_title(" ".join(t for t in (title, ef) if t), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
