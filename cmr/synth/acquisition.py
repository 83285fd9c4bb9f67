"""Plan the series of an exam (view planes, phases, timing) and form their images from the phantom.

Image formation adds what a scanner adds: a receive-coil bias field (anterior coil, so anterior is brighter),
Rician magnitude noise, off-resonance banding for 3 T SSFP, and imperfect myocardial nulling for LGE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmr.dicom.geometry import unit
from cmr.synth.phantom import HeartPhantom, Sequence
from cmr.synth.scanners import ScannerStyle

_LGE_TIME = 0.72  # mid-diastole, fraction of RR: when LGE is acquired


@dataclass(frozen=True)
class Plane:
    centre: np.ndarray  # patient LPS mm
    row_dir: np.ndarray  # direction of increasing column index (DICOM IOP first triplet)
    col_dir: np.ndarray  # direction of increasing row index (IOP second triplet)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)


@dataclass
class SeriesPlan:
    slot: str  # "localizer" | "cine_sax" | "cine_2ch" | "cine_3ch" | "cine_4ch" | "lge_sax" | "lge_lax"
    view: str  # "sax" | "2ch" | "3ch" | "4ch" | "axial" | "coronal" | "sagittal"
    sequence: Sequence
    planes: list[Plane]
    trigger_fracs: list[float]  # cardiac phases (fraction of RR) acquired at every plane
    matrix: tuple[int, int]
    fov_mm: tuple[float, float]
    slice_thickness: float
    series_number: int
    description: str
    inversion_time: float | None = None
    images: np.ndarray | None = field(default=None, repr=False)  # uint16 [planes, phases, rows, cols]
    # Header values that differ from what `slot` and `sequence` imply (None removes the element): how the
    # distractor series (cmr.synth.distractors) say what they are, as each vendor writes it.
    header: dict[str, Any] = field(default_factory=dict)
    triggered: bool = True  # False: no ECG trigger time per image (real-time imaging)

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        return self.fov_mm[0] / self.matrix[0], self.fov_mm[1] / self.matrix[1]

    def image_position(self, plane: Plane) -> np.ndarray:
        """ImagePositionPatient: centre of the top-left pixel."""
        dr, dc = self.pixel_spacing
        rows, cols = self.matrix
        return plane.centre - (cols - 1) / 2 * dc * plane.row_dir - (rows - 1) / 2 * dr * plane.col_dir


def plan_exam(ph: HeartPhantom, style: ScannerStyle, rng: np.random.Generator) -> list[SeriesPlan]:
    """The series a CMR protocol would acquire, with planes placed on this patient's anatomy."""
    names = dict(style.series_names)
    for key in names:
        if rng.random() < style.empty_description_rate:
            names[key] = ""
    w, s, a = ph.w, ph.s, ph.a
    mid = ph.apex + w * (0.55 * ph.lv_c)
    plans: list[SeriesPlan] = []

    def lax_plane(inplane: np.ndarray, centre_h: float) -> Plane:
        # Apex at the top of the image (col_dir points apex -> base); planning jitter of a few degrees.
        d = unit(inplane + rng.normal(0, 0.04, 3))
        d = unit(d - (d @ w) * w)
        centre = ph.apex + w * centre_h + rng.normal(0, 3.0, 3)
        return Plane(centre=centre, row_dir=d, col_dir=w)

    # Three-plane localizer through the heart: axial, coronal, sagittal, larger field of view.
    loc_planes = [
        Plane(mid.copy(), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
        Plane(mid.copy(), np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
        Plane(mid.copy(), np.array([0, 1.0, 0]), np.array([0, 0, -1.0])),
    ]
    for i, (pl, view) in enumerate(zip(loc_planes, ("axial", "coronal", "sagittal"))):
        # One series per plane, as many scanners store a 3-plane scout (same description on all three).
        plans.append(SeriesPlan("localizer", view, "cine", [pl], [0.7], (128, 128), (420.0, 420.0), 10.0,
                                i + 1, names["localizer"]))

    # Cine long-axis views. 4CH contains the septal axis, 2CH is orthogonal to it, 3CH passes the aortic valve.
    d_ao = unit(0.55 * s + 0.85 * a)
    lax_dirs = {"4ch": -s, "2ch": a, "3ch": d_ao}
    centre_h = 0.75 * ph.lv_c + 0.6 * ph.la_r_max
    phases = [k / style.phases for k in range(style.phases)]
    series_no = len(loc_planes) + 1
    lax_planes = {view: lax_plane(d, centre_h) for view, d in lax_dirs.items()}
    for view in ("4ch", "2ch", "3ch"):
        plans.append(SeriesPlan(f"cine_{view}", view, "cine", [lax_planes[view]], phases, style.matrix,
                                style.fov_mm, style.slice_thickness_mm, series_no, names[f"cine_{view}"]))
        series_no += 1

    # Short-axis stack from the mitral annulus to beyond the apex, with breath-hold misregistration.
    spacing = style.slice_thickness_mm + style.slice_gap_mm
    n_needed = int(np.ceil((ph.lv_c + ph.wall_apex + 6.0) / spacing)) + 1
    n = int(np.clip(n_needed, *style.sax_slices))
    first_h = ph.lv_c + 4.0 - rng.uniform(0, 4)
    sax_row = -s  # RV on the image left, anterior at the top
    sax_col = unit(np.cross(w, sax_row))
    if sax_col @ a > 0:  # make the column direction point inferiorly (anterior at the top)
        sax_col = -sax_col
    sax_planes = []
    for k in range(n):
        shift = rng.normal(0, style.misregistration_mm, 3)
        shift -= (shift @ w) * w
        centre = ph.apex + w * (first_h - k * spacing) + shift
        sax_planes.append(Plane(centre, sax_row, sax_col))
    plans.append(SeriesPlan("cine_sax", "sax", "cine", sax_planes, phases, style.matrix, style.fov_mm,
                            style.slice_thickness_mm, series_no, names["cine_sax"]))
    series_no += 1

    # LGE: short-axis stack at the same positions, then the three long-axis views, as separate series.
    ti = float(rng.normal(300 if style.field_strength < 2 else 350, 20))
    plans.append(SeriesPlan("lge_sax", "sax", "lge", sax_planes, [_LGE_TIME], style.matrix, style.fov_mm,
                            style.slice_thickness_mm, series_no, names["lge_sax"], inversion_time=ti))
    series_no += 1
    for view in ("4ch", "2ch", "3ch"):
        plans.append(SeriesPlan("lge_lax", view, "lge", [lax_planes[view]], [_LGE_TIME], style.matrix,
                                style.fov_mm, style.slice_thickness_mm, series_no, names["lge_lax"],
                                inversion_time=ti))
        series_no += 1
    return plans


def lge_contrast(ph: HeartPhantom, rng: np.random.Generator, nulling_error: float) -> dict[str, float]:
    """Tissue signal in an inversion-recovery LGE image (inversion time set to null normal myocardium)."""
    amyloid = ph.truth.disease == "amyloidosis"
    return {
        "blood": 0.18 if amyloid else float(rng.uniform(0.38, 0.52)),
        "myo": abs(float(rng.normal(0.03, nulling_error))) + (0.12 if amyloid else 0.0),
        "scar": float(rng.uniform(0.85, 1.0)),
        "fat": 0.5, "muscle": 0.08, "lung": 0.02, "liver": 0.24, "fluid": 0.1, "bone": 0.25, "air": 0.0,
        "pericardium": 0.3, "tissue": 0.22,
    }


def cine_contrast(style: ScannerStyle, rng: np.random.Generator) -> dict[str, float]:
    c = dict(style.cine_signal)
    c["myo"] = c["myo"] / style.blood_myo_contrast * float(rng.normal(1.0, 0.05))
    c["scar"] = c["myo"]  # scar is invisible on cine (wall thinning is what shows)
    return c


def plane_points(plan: SeriesPlan, plane: Plane) -> np.ndarray:
    """Patient coordinates (LPS mm) of every pixel centre of one plane of a series, row-major."""
    rows, cols = plan.matrix
    dr, dc = plan.pixel_spacing
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    ipp = plan.image_position(plane)
    return (ipp[None, :] + (jj.reshape(-1, 1) * dc) * plane.row_dir[None, :]
            + (ii.reshape(-1, 1) * dr) * plane.col_dir[None, :])


def form_images(
    ph: HeartPhantom, plan: SeriesPlan, style: ScannerStyle, rng: np.random.Generator, contrast: dict[str, float],
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Render every plane x phase of a series as uint16 magnitude images with scanner effects.

    `labels` (uint8 [planes, phases, rows, cols]) receives the tissue id of every pixel (cmr.synth.tissues):
    the ground truth the segmentation is trained and measured on. It costs no random draws, so a study renders
    the same images with or without it."""
    rows, cols = plan.matrix
    dr, dc = plan.pixel_spacing
    edge = float(min(dr, dc))
    out = np.empty((len(plan.planes), len(plan.trigger_fracs), rows, cols), dtype=np.uint16)
    scale = float(rng.uniform(900, 1600))  # arbitrary vendor scaling of magnitude to stored values
    noise = style.noise * (0.6 if plan.sequence == "lge" else 1.0)
    for k, plane in enumerate(plan.planes):
        pts = plane_points(plan, plane)
        bg_labels = None if labels is None else np.zeros(len(pts), dtype=np.uint8)
        background = ph.background(pts, contrast, edge, bg_labels)
        heart_pts = ph.prepare(pts)
        # Anterior surface coil: signal falls off posteriorly, plus a random lateral tilt.
        bias = 1.0 + style.bias * (np.exp(-(pts[:, 1] + 115.0) / 140.0) - 0.45 + 0.15 * rng.normal() * pts[:, 0] / 150.0)
        bias = np.clip(bias, 0.35, None).astype(np.float32)
        band = None
        if plan.sequence == "cine" and plan.slot != "localizer" and style.banding > 0:
            phase = ph.offresonance_phase(pts)
            band = (1.0 - style.banding * np.exp(-(1.0 + np.cos(2 * np.pi * phase)) / 0.05)).astype(np.float32)
        for f, t_frac in enumerate(plan.trigger_fracs):
            img = background.copy()
            lab = None if bg_labels is None else bg_labels.copy()
            ph.paint_heart(img, heart_pts, t_frac, plan.sequence, contrast, edge, lab)
            if labels is not None and lab is not None:
                labels[k, f] = lab.reshape(rows, cols)
            img *= bias
            if band is not None:
                img *= band
            n = rng.standard_normal((2, img.size), dtype=np.float32) * np.float32(noise)
            mag = np.hypot(img + n[0], n[1])
            out[k, f] = np.clip(mag * scale, 0, 4095).reshape(rows, cols).astype(np.uint16)
    return out


def render_label_maps(ph: HeartPhantom, plan: SeriesPlan) -> np.ndarray:
    """Tissue ids only (uint8 [planes, phases, rows, cols]), without forming images: the cheap path the
    segmentation training bank uses. Same geometry and edges as `form_images`."""
    rows, cols = plan.matrix
    dr, dc = plan.pixel_spacing
    edge = float(min(dr, dc))
    contrast = {k: 0.0 for k in ("fat", "muscle", "tissue", "lung", "liver", "bone", "blood", "pericardium",
                                 "fluid", "myo", "scar", "air")}
    out = np.zeros((len(plan.planes), len(plan.trigger_fracs), rows, cols), dtype=np.uint8)
    for k, plane in enumerate(plan.planes):
        pts = plane_points(plan, plane)
        bg_labels = np.zeros(len(pts), dtype=np.uint8)
        img0 = ph.background(pts, contrast, edge, bg_labels)
        heart_pts = ph.prepare(pts)
        for f, t_frac in enumerate(plan.trigger_fracs):
            lab = bg_labels.copy()
            ph.paint_heart(img0.copy(), heart_pts, t_frac, "cine", contrast, edge, lab)
            out[k, f] = lab.reshape(rows, cols)
    return out
