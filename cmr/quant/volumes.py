"""From short-axis masks to the numbers of a CMR report: volumes by the disc summation (Simpson) method,
ejection fractions, LV mass, indexed values, ED/ES from the LV volume curve, and a quality flag.

Pure numpy, so the same code measures a network's masks, the expert masks of a reference set and the
phantom's own label maps.

Conventions (SCMR 2020 post-processing recommendations, and the ACDC reference):
- volume of a structure at a phase = sum over slices of (pixel count x pixel area) x slice spacing, where the
  spacing is the centre-to-centre distance of the slices (not the slice thickness);
- ED = the phase of largest LV cavity volume, ES = the phase of smallest; the RV is measured at the same two
  phases (as the ACDC reference is), which keeps a noisy RV curve from picking its own minimum;
- LV mass = myocardial volume at ED x 1.05 g/ml; papillary muscles count as cavity (ACDC convention);
- indexed values divide by the Mosteller body surface area when the study has height and weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY

MYOCARDIAL_DENSITY_G_PER_ML: Final[float] = 1.05

# Every numeric measurement, in the order reports and tables list them; the keys of Measurements.values().
MEASUREMENT_FIELDS: Final[tuple[str, ...]] = (
    "lvef_pct", "lvedv_ml", "lvesv_ml", "lvsv_ml", "lv_mass_g",
    "rvef_pct", "rvedv_ml", "rvesv_ml",
    "lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2", "rvesvi_ml_m2",
    "bsa_m2",
)
MEASUREMENT_UNITS: Final[dict[str, str]] = {
    "lvef_pct": "%", "lvedv_ml": "ml", "lvesv_ml": "ml", "lvsv_ml": "ml", "lv_mass_g": "g",
    "rvef_pct": "%", "rvedv_ml": "ml", "rvesv_ml": "ml",
    "lvedvi_ml_m2": "ml/m²", "lvesvi_ml_m2": "ml/m²", "lv_mass_index_g_m2": "g/m²", "rvedvi_ml_m2": "ml/m²",
    "rvesvi_ml_m2": "ml/m²", "bsa_m2": "m²",
}

Quality = Literal["ok", "check", "failed"]

# A ventricle smaller than this at ED is read as "not found" (a stray blob, not a heart).
_MIN_VENTRICLE_ML: Final[float] = 5.0
# Outside these the numbers are physiologically implausible: flagged for review, still reported.
PLAUSIBLE_EF: Final[tuple[float, float]] = (5.0, 85.0)
PLAUSIBLE_LVEDV_ML: Final[tuple[float, float]] = (40.0, 500.0)


def plausible_ef(ef: float | None) -> bool:
    """An ejection fraction within PLAUSIBLE_EF, or none measured."""
    return ef is None or PLAUSIBLE_EF[0] <= ef <= PLAUSIBLE_EF[1]


def plausible_lvedv(ml: float | None) -> bool:
    """An LV end-diastolic volume within PLAUSIBLE_LVEDV_ML, or none measured."""
    return ml is None or PLAUSIBLE_LVEDV_ML[0] <= ml <= PLAUSIBLE_LVEDV_ML[1]
_LOW_CONFIDENCE: Final[float] = 0.80
_END_SLICE_COVERAGE: Final[float] = 0.3  # LV cavity in an end slice, as a share of the largest slice's


def mosteller_bsa(height_m: float | None, weight_kg: float | None) -> float | None:
    """Body surface area (m²) = sqrt(height_cm x weight_kg / 3600); None without plausible height and weight."""
    if height_m is None or weight_kg is None:
        return None
    if not (0.4 <= height_m <= 2.6 and 2.0 <= weight_kg <= 400.0):
        return None
    return math.sqrt(height_m * 100.0 * weight_kg / 3600.0)


@dataclass
class Measurements:
    """The measured numbers of one study; a value is None where it cannot be measured, with the reason."""

    lvef_pct: float | None = None
    lvedv_ml: float | None = None
    lvesv_ml: float | None = None
    lvsv_ml: float | None = None
    lv_mass_g: float | None = None
    rvef_pct: float | None = None
    rvedv_ml: float | None = None
    rvesv_ml: float | None = None
    lvedvi_ml_m2: float | None = None
    lvesvi_ml_m2: float | None = None
    lv_mass_index_g_m2: float | None = None
    rvedvi_ml_m2: float | None = None
    rvesvi_ml_m2: float | None = None
    bsa_m2: float | None = None
    ed_phase: int | None = None
    es_phase: int | None = None
    quality: Quality = "failed"
    quality_reasons: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # field -> why it is None
    lv_volume_curve_ml: list[float] = field(default_factory=list)  # LV cavity volume at every phase
    rv_volume_curve_ml: list[float] = field(default_factory=list)
    model: str = ""  # the segmentation model that made the masks ("" for reference masks)

    def values(self) -> dict[str, float | None]:
        """The numeric fields only (MEASUREMENT_FIELDS order)."""
        return {k: getattr(self, k) for k in MEASUREMENT_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.values(),
            "ed_phase": self.ed_phase, "es_phase": self.es_phase,
            "quality": self.quality, "quality_reasons": list(self.quality_reasons),
            "unavailable": dict(self.unavailable),
            "lv_volume_curve_ml": list(self.lv_volume_curve_ml), "rv_volume_curve_ml": list(self.rv_volume_curve_ml),
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurements:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def unmeasurable(cls, reason: str, model: str = "") -> Measurements:
        """Nothing could be measured (e.g. no short-axis cine stack): every value None with this reason."""
        return cls(quality="failed", quality_reasons=[reason], unavailable={k: reason for k in MEASUREMENT_FIELDS},
                   model=model)


def _r(x: float, nd: int = 1) -> float:
    return float(round(x, nd))


def ed_es_phases(lv: NDArray[np.float64]) -> tuple[int, int]:
    """ED = largest, ES = smallest LV volume. With five phases or more the curve is first median-filtered over
    three neighbouring phases (circularly: the cycle wraps), so one phase the segmentation got wrong cannot be
    chosen as ED or ES; the volumes reported are still those of the chosen phases themselves."""
    if len(lv) >= 5:
        ext = np.concatenate([lv[-1:], lv, lv[:1]])
        smooth = np.median(np.stack([ext[:-2], ext[1:-1], ext[2:]]), axis=0)
    else:
        smooth = lv
    return int(np.argmax(smooth)), int(np.argmin(smooth))


def structure_volumes_ml(masks: NDArray[np.integer], pixel_spacing: tuple[float, float], slice_spacing_mm: float,
                         label: int) -> NDArray[np.float64]:
    """Volume (ml) of one label in every slice and phase of masks [slices, phases, rows, cols] -> [slices, phases]."""
    voxel_ml = float(pixel_spacing[0]) * float(pixel_spacing[1]) * float(slice_spacing_mm) / 1000.0
    return (np.asarray(masks) == label).sum(axis=(2, 3)).astype(np.float64) * voxel_ml


def measurements_from_masks(
    masks: NDArray[np.integer],
    pixel_spacing: tuple[float, float],
    slice_spacing_mm: float,
    *,
    height_m: float | None = None,
    weight_kg: float | None = None,
    confidence: float | None = None,
    notes: list[str] | None = None,
    model: str = "",
) -> Measurements:
    """Measure masks [slices, phases, rows, cols] (labels of cmr.quant.labels), slices ordered base -> apex."""
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise ValueError(f"masks must be [slices, phases, rows, cols], got shape {masks.shape}")
    if not slice_spacing_mm > 0 or not all(s > 0 for s in pixel_spacing):
        raise ValueError(f"spacing must be positive (pixel {pixel_spacing}, slice {slice_spacing_mm})")
    disc = {label: structure_volumes_ml(masks, pixel_spacing, slice_spacing_mm, label)
            for label in (LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY)}
    return measurements_from_discs(disc, height_m=height_m, weight_kg=weight_kg, confidence=confidence,
                                   notes=notes, model=model)


def measurements_from_discs(
    disc_ml: dict[int, NDArray[np.floating]],
    *,
    height_m: float | None = None,
    weight_kg: float | None = None,
    confidence: float | None = None,
    notes: list[str] | None = None,
    model: str = "",
    phases: tuple[int, int] | None = None,
    curves: tuple[NDArray[np.floating], NDArray[np.floating]] | None = None,
) -> Measurements:
    """Measure from disc volumes: label -> [slices, phases] ml (area x slice spacing), slices base -> apex.

    The general form: slices of one stack may come from series with different matrices or pixel sizes.
    `confidence` (mean network probability inside the predicted heart) and `notes` (what the caller already
    knows, e.g. an assumed slice spacing) feed the quality flag. With `phases` = (ED, ES) the discs hold just
    those two phases (in that order), chosen by the caller on `curves` (LV, RV volume over the cycle), which
    are reported as the volume curves."""
    lv_disc = np.asarray(disc_ml[LV_CAVITY], dtype=np.float64)
    if lv_disc.ndim != 2:
        raise ValueError(f"disc volumes must be [slices, phases], got shape {lv_disc.shape}")
    n_slices, n_phases = lv_disc.shape
    lv = lv_disc.sum(axis=0)
    rv = np.asarray(disc_ml[RV_CAVITY], dtype=np.float64).sum(axis=0)
    myo = np.asarray(disc_ml[LV_MYOCARDIUM], dtype=np.float64).sum(axis=0)
    m = Measurements(model=model)
    reasons = list(notes or [])
    m.lv_volume_curve_ml = [_r(v) for v in (lv if curves is None else curves[0])]
    m.rv_volume_curve_ml = [_r(v) for v in (rv if curves is None else curves[1])]

    if phases is None:
        ed, es = ed_es_phases(lv)
        m.ed_phase, m.es_phase = ed, es
    else:
        if n_phases != 2:
            raise ValueError(f"with phases=(ED, ES) the discs hold those two phases, not {n_phases}")
        ed, es = 0, 1
        m.ed_phase, m.es_phase = int(phases[0]), int(phases[1])
        n_phases = 2 if phases[0] != phases[1] else 1
    if lv[ed] < _MIN_VENTRICLE_ML:
        out = Measurements.unmeasurable("no left ventricle found in the short-axis stack", model)
        out.lv_volume_curve_ml, out.rv_volume_curve_ml = m.lv_volume_curve_ml, m.rv_volume_curve_ml
        return out
    m.lvedv_ml = _r(lv[ed])
    m.lv_mass_g = _r(myo[ed] * MYOCARDIAL_DENSITY_G_PER_ML)
    if n_phases < 2:
        for k in ("lvef_pct", "lvesv_ml", "lvsv_ml", "rvef_pct", "rvesv_ml", "lvesvi_ml_m2", "rvesvi_ml_m2"):
            m.unavailable[k] = "one cardiac phase only: end-systole cannot be found"
    else:
        m.lvesv_ml = _r(lv[es])
        m.lvsv_ml = _r(lv[ed] - lv[es])
        m.lvef_pct = _r(100.0 * (lv[ed] - lv[es]) / lv[ed])
    if rv[ed] < _MIN_VENTRICLE_ML:
        for k in ("rvef_pct", "rvedv_ml", "rvesv_ml", "rvedvi_ml_m2", "rvesvi_ml_m2"):
            m.unavailable.setdefault(k, "no right ventricle found in the short-axis stack")
    else:
        m.rvedv_ml = _r(rv[ed])
        if n_phases >= 2:
            m.rvesv_ml = _r(rv[es])
            m.rvef_pct = _r(100.0 * (rv[ed] - rv[es]) / rv[ed])

    bsa = mosteller_bsa(height_m, weight_kg)
    if bsa is None:
        why = "the study has no patient height and weight" if height_m is None or weight_kg is None \
            else "the study's height/weight are implausible"
        for k in ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2", "rvesvi_ml_m2", "bsa_m2"):
            m.unavailable.setdefault(k, why)
    else:
        m.bsa_m2 = _r(bsa, 2)
        for indexed, raw in (("lvedvi_ml_m2", m.lvedv_ml), ("lvesvi_ml_m2", m.lvesv_ml),
                             ("lv_mass_index_g_m2", m.lv_mass_g), ("rvedvi_ml_m2", m.rvedv_ml),
                             ("rvesvi_ml_m2", m.rvesv_ml)):
            if raw is not None:
                setattr(m, indexed, _r(raw / bsa))

    # Quality: each reason is something a reader should look at before trusting the numbers.
    if n_slices < 4:
        reasons.append(f"only {n_slices} short-axis slices: volumes are coarse")
    elif min(lv_disc[0, ed], lv_disc[-1, ed]) > _END_SLICE_COVERAGE * lv_disc[:, ed].max():
        # The base is wide and the apex a small cap, so a full stack has one small end. Both ends are checked,
        # not "the last": without long-axis views the stack's base-to-apex direction is a guess (on converted
        # ACDC stacks it came out apex-first for most patients).
        reasons.append("the LV is still large at both ends of the stack: it may not cover the apex")
    for name, ef in (("LVEF", m.lvef_pct), ("RVEF", m.rvef_pct)):
        if not plausible_ef(ef):
            reasons.append(f"{name} {ef:g} % is outside {PLAUSIBLE_EF[0]:g}-{PLAUSIBLE_EF[1]:g} %")
    if not plausible_lvedv(lv[ed]):
        reasons.append(f"LVEDV {lv[ed]:.0f} ml is outside {PLAUSIBLE_LVEDV_ML[0]:g}-{PLAUSIBLE_LVEDV_ML[1]:g} ml")
    if confidence is not None and confidence < _LOW_CONFIDENCE:
        reasons.append(f"low segmentation confidence ({confidence:.2f})")
    if m.rvedv_ml is None:
        reasons.append("right ventricle not found")
    m.quality = "ok" if not reasons else "check"
    m.quality_reasons = reasons
    return m
