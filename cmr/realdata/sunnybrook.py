"""Sunnybrook Cardiac Data (CC0): short-axis cine stacks with manual LV contours, as reference masks.

Layout (one folder per patient): `dicom/N.dcm`, `i-contours/IM-0001-NNNN-icontour-manual.txt` (LV
endocardium) and `o-contours/...-ocontour-manual.txt` (LV epicardium), each contour a closed polygon of
"x y" pixel coordinates of the image whose InstanceNumber is NNNN. Readers contoured end-diastole and
end-systole on the slices they chose (epicardium mostly at end-diastole only).

Contoured images are located in a loaded series by their own header (ImagePositionPatient along the slice
normal and TriggerTime), never by file-name arithmetic, so the mapping survives any file naming.
Because the set is CC0 it may be used for anything, including choosing a checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from matplotlib.path import Path as PolygonPath
from numpy.typing import NDArray

from cmr.dicom.series import Series
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM

_CONTOUR = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$")


@dataclass
class ContouredImage:
    """One contoured image: where it is, and its reference masks (pixel grid of the DICOM image)."""

    instance: int
    file: Path
    position: NDArray[np.float64]  # ImagePositionPatient
    trigger_time_ms: float
    endo: NDArray[np.bool_] | None  # LV cavity (inside the endocardial contour)
    epi: NDArray[np.bool_] | None  # inside the epicardial contour

    def labels(self) -> NDArray[np.uint8] | None:
        """Classes of cmr.quant.labels where both contours exist (cavity + myocardium), else None."""
        if self.endo is None or self.epi is None:
            return None
        out = np.zeros(self.endo.shape, np.uint8)
        out[self.epi] = LV_MYOCARDIUM
        out[self.endo] = LV_CAVITY
        return out


@dataclass
class SunnybrookStack:
    name: str
    folder: Path
    pathology: str
    images: list[ContouredImage]

    @property
    def dicom_dir(self) -> Path:
        return self.folder / "dicom"

    def locate(self, series: Series) -> dict[tuple[int, int], ContouredImage]:
        """(slice index, phase index) in a loaded series -> contoured image (nearest position and time)."""
        offsets = series.slice_offsets
        normal = series.normal
        times = series.trigger_times
        out: dict[tuple[int, int], ContouredImage] = {}
        for im in self.images:
            d = float(im.position @ normal)
            k = int(np.argmin(np.abs(offsets - d)))
            if abs(offsets[k] - d) > 1.0:
                continue  # not a slice of this series
            t = times[k]
            p = int(np.nanargmin(np.abs(t - im.trigger_time_ms))) if np.isfinite(t).any() else 0
            out[(k, p)] = im
        return out

    def reference_lvef(self, series: Series) -> tuple[float, int, int] | None:
        """LVEF (%) from the endocardial contours: slice areas summed at the two contoured phases (ED = the
        larger), over the slices contoured at both. Returns (lvef, ed phase, es phase) or None."""
        located = self.locate(series)
        by_phase: dict[int, dict[int, float]] = {}
        for (k, p), im in located.items():
            if im.endo is not None:
                by_phase.setdefault(p, {})[k] = float(im.endo.sum())
        if len(by_phase) < 2:
            return None
        phases = sorted(by_phase, key=lambda p: -len(by_phase[p]))[:2]
        common = set(by_phase[phases[0]]) & set(by_phase[phases[1]])
        if not common:
            return None
        vols = {p: sum(by_phase[p][k] for k in common) for p in phases}
        ed, es = max(vols, key=lambda p: vols[p]), min(vols, key=lambda p: vols[p])
        return 100.0 * (1.0 - vols[es] / vols[ed]), ed, es


def _polygon_mask(points: NDArray[np.float64], shape: tuple[int, int]) -> NDArray[np.bool_]:
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    inside = PolygonPath(points).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    return inside.reshape(rows, cols)


def _read_contour(path: Path) -> NDArray[np.float64]:
    pts = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"{path}: not a polygon of 'x y' points")
    return pts


def load_stack(folder: Path, pathology: str = "") -> SunnybrookStack:
    """One patient folder with dicom/ and contour folders."""
    contours: dict[int, dict[str, Path]] = {}
    for sub in ("i-contours", "o-contours"):
        for f in sorted((folder / sub).glob("*.txt")):
            m = _CONTOUR.search(f.name)
            if m:
                contours.setdefault(int(m.group(1)), {})[m.group(2)] = f
    by_instance: dict[int, Path] = {}
    for f in sorted((folder / "dicom").glob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_instance[int(ds.InstanceNumber)] = f
    images = []
    for inst, files in sorted(contours.items()):
        if inst not in by_instance:
            continue
        ds = pydicom.dcmread(by_instance[inst], stop_before_pixels=True)
        shape = (int(ds.Rows), int(ds.Columns))
        endo = _polygon_mask(_read_contour(files["i"]), shape) if "i" in files else None
        epi = _polygon_mask(_read_contour(files["o"]), shape) if "o" in files else None
        images.append(ContouredImage(inst, by_instance[inst], np.array([float(v) for v in ds.ImagePositionPatient]),
                                     float(getattr(ds, "TriggerTime", 0.0) or 0.0), endo, epi))
    return SunnybrookStack(folder.name, folder, pathology, images)


def find_stacks(root: Path) -> list[SunnybrookStack]:
    """Every patient folder under `root` that has a dicom/ folder and contours."""
    pathology: dict[str, str] = {}
    csv = root / "scd_patientdata.csv"
    if csv.is_file():
        for line in csv.read_text(encoding="utf-8-sig").splitlines()[1:]:
            parts = line.split(",")
            if len(parts) >= 5:
                pathology[parts[0]] = parts[4]
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "dicom").is_dir() and (folder / "i-contours").is_dir():
            out.append(load_stack(folder, pathology.get(folder.name.split("_")[0], "")))
    return out
