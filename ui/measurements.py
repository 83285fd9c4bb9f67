"""Cardiac measurements in the UI, without Streamlit (so they are testable on their own): the clinical panel's
text (values with units, "not measured: <reason>" for absent ones, the quality flag), the one-line summary of a
result card, the cohort table's columns, measurement range filters (number bounds and free `where` text, parsed
as the CLI parses it), and the contours of a study computed on this host (the masks are in no RPC).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY
from cmr.quant.volumes import MEASUREMENT_FIELDS, MEASUREMENT_UNITS, Measurements
from cmr.v1 import common_pb2

LABELS: dict[str, str] = {
    "lvef_pct": "LVEF", "lvedv_ml": "LVEDV", "lvesv_ml": "LVESV", "lvsv_ml": "LVSV",
    "lv_mass_g": "LV mass", "rvef_pct": "RVEF", "rvedv_ml": "RVEDV", "rvesv_ml": "RVESV",
    "lvedvi_ml_m2": "LVEDV index", "lvesvi_ml_m2": "LVESV index", "lv_mass_index_g_m2": "LV mass index",
    "rvedvi_ml_m2": "RVEDV index", "rvesvi_ml_m2": "RVESV index", "bsa_m2": "BSA",
}

# The panel's rows: a measurement and its indexed (per m² BSA) counterpart, if it has one.
PANEL_ROWS: tuple[tuple[str, str | None], ...] = (
    ("lvef_pct", None), ("lvedv_ml", "lvedvi_ml_m2"), ("lvesv_ml", "lvesvi_ml_m2"), ("lvsv_ml", None),
    ("lv_mass_g", "lv_mass_index_g_m2"),
    ("rvef_pct", None), ("rvedv_ml", "rvedvi_ml_m2"), ("rvesv_ml", "rvesvi_ml_m2"),
)
INDEXED: tuple[str, ...] = tuple(i for _, i in PANEL_ROWS if i is not None)
# The measurements offered as min/max filters (any other through the `where` text).
FILTER_MEASURES: tuple[str, ...] = ("lvef_pct", "lvedv_ml", "lv_mass_g", "rvef_pct")
WHERE_HELP = ("Conditions on any measurement, separated by ';' (or 'and'): NAME<X, NAME<=X, NAME>X, NAME>=X or "
              "NAME=A..B, e.g. 'rvef_pct<45; lvedvi_ml_m2>=100'. Names: " + ", ".join(MEASUREMENT_FIELDS) + ".")
NO_REASON = "no value was sent"


def unit(name: str) -> str:
    return MEASUREMENT_UNITS.get(name, "")


def format_value(name: str, value: float) -> str:
    """A measurement as a report writes it: whole numbers with the unit, BSA with two decimals."""
    number = f"{value:.2f}" if name == "bsa_m2" else f"{value:.0f}"
    if number == "-0":
        number = "0"
    return f"{number} {unit(name)}".strip()


def reason(m: Measurements, name: str) -> str:
    return m.unavailable.get(name) or NO_REASON


def value_text(m: Measurements, name: str) -> str:
    """The formatted value, or 'not measured: <reason>'."""
    v = getattr(m, name)
    return format_value(name, v) if v is not None else f"not measured: {reason(m, name)}"


@dataclass(frozen=True)
class PanelRow:
    label: str
    value: str
    indexed: str = ""  # "" when the measure has no indexed form


@dataclass(frozen=True)
class Panel:
    """What the clinical panel shows for one study's measurements."""

    rows: tuple[PanelRow, ...]
    quality: str  # "ok", "check" or "failed"
    quality_reasons: tuple[str, ...]
    model: str
    headline: str = ""  # set when nothing could be measured: "not measured: <reason>" instead of the rows
    indexed_note: str = ""  # why no indexed value is shown, when the indexed column is left out
    bsa: str = ""  # "1.74 m²" when indexed values are shown

    @property
    def show_indexed(self) -> bool:
        return any(r.indexed for r in self.rows)

    def markdown(self) -> str:
        """The panel as a markdown table (the numbers; a value never breaks from its unit) with its notes."""
        if self.headline:
            return self.headline[:1].upper() + self.headline[1:]
        if self.show_indexed:
            lines = ["| | value | indexed |", "| --- | --- | --- |"]
            lines += [f"| **{r.label}** | {_cell(r.value)} | {_cell(r.indexed)} |" for r in self.rows]
        else:
            lines = ["| | value |", "| --- | --- |"] + [f"| **{r.label}** | {_cell(r.value)} |" for r in self.rows]
        text = "\n".join(lines)
        if self.show_indexed and self.bsa:
            text += f"\n\nIndexed to the body surface area, BSA {self.bsa} (Mosteller)."
        if self.indexed_note:
            text += f"\n\nIndexed values not measured: {self.indexed_note}."
        return text

    def quality_text(self) -> str:
        reasons = "; ".join(self.quality_reasons)
        return f"quality {self.quality}" + (f": {reasons}" if reasons else "")


def _cell(text: str) -> str:
    return text if text.startswith("not measured") else text.replace(" ", "\u00a0")


def panel(m: Measurements) -> Panel:
    values = m.values()
    model = m.model or "reference masks"
    reasons = tuple(m.quality_reasons)
    if all(v is None for v in values.values()):
        why = sorted({reason(m, k) for k in MEASUREMENT_FIELDS})
        return Panel((), m.quality, reasons, model, headline="not measured: " + "; ".join(why))
    indexed_why = {reason(m, k) for k in INDEXED if values[k] is None}
    drop_indexed = all(values[k] is None for k in INDEXED)
    rows = []
    for name, indexed in PANEL_ROWS:
        idx = "" if indexed is None or drop_indexed else value_text(m, indexed)
        if indexed is not None and values[name] is None and values[indexed] is None:
            idx = "" if drop_indexed else "–"  # the raw value already says why
        rows.append(PanelRow(LABELS[name], value_text(m, name), idx))
    return Panel(tuple(rows), m.quality, reasons, model,
                 indexed_note="; ".join(sorted(indexed_why)) if drop_indexed else "",
                 bsa="" if m.bsa_m2 is None else format_value("bsa_m2", m.bsa_m2))


def card_summary(m: Measurements | None) -> str:
    """One line for a result card: 'LVEF 55 % · LVEDV 150 ml · LV mass 120 g', or why not."""
    if m is None:
        return "not measured"
    parts = [f"LVEF {format_value('lvef_pct', m.lvef_pct)}" if m.lvef_pct is not None
             else f"LVEF not measured: {reason(m, 'lvef_pct')}"]
    for name in ("lvedv_ml", "lv_mass_g"):
        v = getattr(m, name)
        if v is not None:
            parts.append(f"{LABELS[name]} {format_value(name, v)}")
    line = " · ".join(parts)
    return line + (" (quality: check)" if m.quality == "check" else "")


def table_columns(m: Measurements | None) -> dict[str, float | None]:
    """The cohort table's measurement columns (numbers, empty where not measured)."""
    return {"LVEF (%)": None if m is None else m.lvef_pct, "LVEDV (ml)": None if m is None else m.lvedv_ml}


# --- filters ------------------------------------------------------------------------------------------------
Bound = tuple[str, float | None, float | None]  # measure, min, max (None = open)
_WHERE_SPLIT = re.compile(r"\s*(?:[;,\n]|\band\b)\s*", re.IGNORECASE)


def measurement_ranges(bounds: Iterable[Bound] = (), where: str = "") -> list[common_pb2.MeasurementRange]:
    """Min/max bounds (both None = any) and free `where` text -> SearchFilter.measurements. ValueError with one
    line naming the measure for an empty range (min above max) or text that does not parse."""
    from search_svc.client import parse_where

    out: list[common_pb2.MeasurementRange] = []
    for name, lo, hi in bounds:
        if name not in MEASUREMENT_FIELDS:
            raise ValueError(f"unknown measurement {name!r}")
        if lo is None and hi is None:
            continue
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{LABELS[name]} range: the minimum {lo:g} is above the maximum {hi:g} {unit(name)}, "
                             "so no exam can match. Swap them or clear one.")
        r = common_pb2.MeasurementRange(measure=name)
        if lo is not None:
            r.min = float(lo)
        if hi is not None:
            r.max = float(hi)
        out.append(r)
    for part in _WHERE_SPLIT.split(where or ""):
        if part.strip():
            try:
                out.append(parse_where(part))
            except ValueError as exc:
                raise ValueError(f"Measurement condition: {exc}") from exc
    return out


def describe_range(r: common_pb2.MeasurementRange) -> str:
    label, u = LABELS.get(r.measure, r.measure), unit(r.measure)
    lo = f"{r.min:g}" if r.HasField("min") else ""
    hi = f"{r.max:g}" if r.HasField("max") else ""
    if lo and hi:
        return f"{label} {lo}–{hi} {u}".strip()
    return f"{label} ≥ {lo} {u}".strip() if lo else f"{label} ≤ {hi} {u}".strip()


# --- contours computed on this host ---------------------------------------------------------------------------
LEGEND: tuple[tuple[str, int], ...] = (("LV endocardium (cavity)", LV_CAVITY),
                                       ("LV epicardium (myocardium)", LV_MYOCARDIUM),
                                       ("RV endocardium (cavity)", RV_CAVITY))


@dataclass
class ContourView:
    """A study's masks over its short-axis cine slices (base -> apex), with the images windowed to uint8 so
    the view is small enough to cache, and the measurements the same masks give."""

    measurements: Measurements
    images: list[NDArray[np.uint8]] = field(default_factory=list)  # per slice [phases, rows, cols]
    masks: list[NDArray[np.uint8]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # per slice, its series ("series 7")
    mid: int = 0  # the mid-ventricular slice
    seconds: float = 0.0

    @property
    def n_slices(self) -> int:
        return len(self.masks)


def contour_view(source: Path | bytes, segmenter: Any) -> ContourView:
    """Load the study (folder, zip path or zip bytes) and segment its short-axis cine stack. Raises what the
    loader or the segmenter raise (the caller shows the numbers anyway)."""
    import time

    from cmr.dicom import imaging, load_study
    from cmr.quant.measure import measure_study
    from cmr.quant.outputs import mid_slice

    t0 = time.perf_counter()
    study = load_study(source)
    sm = measure_study(study, segmenter, all_phases=True)  # the cine loop: every phase
    images, labels = [], []
    for k, (s, i) in enumerate(sm.slices[: len(sm.masks)]):
        px = sm.images(k)
        images.append((imaging.apply_window(px, imaging.robust_window(px)) * 255).round().astype(np.uint8))
        labels.append(f"series {s.series_number if s.series_number is not None else s.key}")
    mid = mid_slice(sm) if sm.masks else 0
    return ContourView(sm.measurements, images, list(sm.masks), labels, mid, time.perf_counter() - t0)


def contour_gif(view: ContourView, k: int, size: int = 256, frame_ms: int = 60) -> bytes:
    """Slice k of the view as an animated GIF with the LV endocardium, epicardium and RV contours drawn."""
    import io

    from cmr.quant.outputs import overlay_frames

    frames = overlay_frames(view.images[k].astype(np.float32), view.masks[k], size=size)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return buf.getvalue()


def curve_rows(m: Measurements) -> list[dict[str, Any]]:
    """The volume curves as chart rows: phase, volume (ml), chamber."""
    rows = [{"phase": p, "volume_ml": float(v), "chamber": "LV"} for p, v in enumerate(m.lv_volume_curve_ml)]
    if any(m.rv_volume_curve_ml):
        rows += [{"phase": p, "volume_ml": float(v), "chamber": "RV"} for p, v in enumerate(m.rv_volume_curve_ml)]
    return rows


def content_key(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """A cheap content key of a study folder: every file's relative path, size and modification time."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + h.hexdigest()
