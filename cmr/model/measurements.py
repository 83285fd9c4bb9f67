"""Measurement tokens: the numbers a segmentation measures (LVEF, indexed volumes, mass, ratios) as extra tokens
of the exam transformer, beside the frame tokens.

Why: a measured number is the most transferable signal between the synthetic training data and real scans.
Pixels of a phantom differ from a real scanner's in texture, shape and intensity, but an LVEF of 30 % is an
LVEF of 30 % on both, and report impressions speak in these numbers. The exam encoder attends to them like to
any frame, so the embedding can read "dilated LV, reduced EF" from the numbers even where the pixels are out of
the training distribution; and where a number is missing (no short-axis stack, no height/weight) its token is
masked out exactly like a missing view.

A measurement vector is float32 [M] in the order of the model's `measurements` config, NaN where unknown. The
values are raw clinical units; `MeasurementEncoder` standardises them with the fixed centres and scales below
(textbook adult ranges, not fitted on any data set).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from cmr.quant.volumes import plausible_ef, plausible_lvedv

# A typical adult body surface area, used for the indexed values of a study without height and weight: the
# ratio features below do not depend on it, and a rank of studies by an indexed volume barely moves.
DEFAULT_BSA_M2: Final[float] = 1.9

# name -> (centre, scale) in clinical units; z = (x - centre) / scale (the encoder's ramps saturate beyond
# z = -3.5 and z = 3.5).
MEASUREMENT_SCALES: Final[dict[str, tuple[float, float]]] = {
    "lvef_pct": (58.0, 12.0),
    "rvef_pct": (55.0, 12.0),
    "lvedvi_ml_m2": (80.0, 25.0),
    "lvesvi_ml_m2": (35.0, 20.0),
    "rvedvi_ml_m2": (80.0, 25.0),
    "lv_mass_index_g_m2": (60.0, 18.0),
    # Ratios: independent of body size and of a segmentation's overall scale error.
    "rv_lv_edv_ratio": (1.0, 0.25),
    "lv_mass_edv_ratio": (0.8, 0.3),  # g/ml: concentric remodelling and hypertrophy raise it
}
MEASUREMENT_NAMES: Final[tuple[str, ...]] = tuple(MEASUREMENT_SCALES)
# The tokens that rest on each ventricle's segmentation (the RV/LV ratio on both).
_LV_TOKENS: Final = frozenset({"lvef_pct", "lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "lv_mass_edv_ratio",
                               "rv_lv_edv_ratio"})
_RV_TOKENS: Final = frozenset({"rvef_pct", "rvedvi_ml_m2", "rv_lv_edv_ratio"})
# How each token is named on screens and charts.
MEASUREMENT_LABELS: Final[dict[str, str]] = {
    "lvef_pct": "LVEF (%)", "rvef_pct": "RVEF (%)", "lvedvi_ml_m2": "LVEDV index (ml/m²)",
    "lvesvi_ml_m2": "LVESV index (ml/m²)", "rvedvi_ml_m2": "RVEDV index (ml/m²)",
    "lv_mass_index_g_m2": "LV mass index (g/m²)", "rv_lv_edv_ratio": "RV/LV EDV ratio",
    "lv_mass_edv_ratio": "LV mass/EDV (g/ml)",
}


def _num(values: Mapping[str, Any], key: str) -> float | None:
    v = values.get(key)
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _indexed(values: Mapping[str, Any], indexed: str, raw: str) -> float | None:
    v = _num(values, indexed)
    if v is not None:
        return v
    r = _num(values, raw)
    if r is None:
        return None
    bsa = _num(values, "bsa_m2")
    return r / (bsa if bsa and bsa > 0 else DEFAULT_BSA_M2)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def derive(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Every token value of MEASUREMENT_NAMES from a `Measurements.values()`-style dict (None where unknown).

    A ventricle whose numbers the quantification's own quality check calls implausible (an EF outside
    PLAUSIBLE_EF, an LVEDV outside PLAUSIBLE_LVEDV_ML: a segmentation that failed at end-diastole or end-systole)
    gives no tokens at all: a missing number is read as missing, a wrong one as a finding."""
    lvef, rvef = _num(values, "lvef_pct"), _num(values, "rvef_pct")
    lvedv, rvedv, mass = _num(values, "lvedv_ml"), _num(values, "rvedv_ml"), _num(values, "lv_mass_g")
    lv_ok = plausible_ef(lvef) and plausible_lvedv(lvedv)
    rv_ok = plausible_ef(rvef)
    out = {
        "lvef_pct": lvef,
        "rvef_pct": rvef,
        "lvedvi_ml_m2": _indexed(values, "lvedvi_ml_m2", "lvedv_ml"),
        "lvesvi_ml_m2": _indexed(values, "lvesvi_ml_m2", "lvesv_ml"),
        "rvedvi_ml_m2": _indexed(values, "rvedvi_ml_m2", "rvedv_ml"),
        "lv_mass_index_g_m2": _indexed(values, "lv_mass_index_g_m2", "lv_mass_g"),
        "rv_lv_edv_ratio": _ratio(rvedv, lvedv),
        "lv_mass_edv_ratio": _ratio(mass, lvedv),
    }
    dropped = (_LV_TOKENS if not lv_ok else frozenset()) | (_RV_TOKENS if not rv_ok else frozenset())
    return {k: None if k in dropped else v for k, v in out.items()}


def measurement_vector(values: Mapping[str, Any] | None, names: Sequence[str]) -> NDArray[np.float32]:
    """float32 [len(names)] in clinical units, NaN where unknown (also for values=None: nothing measured)."""
    if not names:
        return np.zeros(0, np.float32)
    d = derive(values or {})
    unknown = [n for n in names if n not in d]
    if unknown:
        raise ValueError(f"unknown measurement tokens {unknown}; known: {', '.join(MEASUREMENT_NAMES)}")
    return np.array([np.nan if d[n] is None else d[n] for n in names], np.float32)


def measurement_matrix(rows: Sequence[Mapping[str, Any] | None], names: Sequence[str]) -> NDArray[np.float32]:
    """[N, len(names)] of `measurement_vector` rows."""
    return (np.stack([measurement_vector(r, names) for r in rows]) if rows
            else np.zeros((0, len(names)), np.float32))


class MeasurementEncoder(nn.Module):
    """[B, M] raw values (NaN = missing) -> ([B, M, width] tokens, [B, M] True where missing).

    Each value is standardised and expanded into unit ramps at fixed knots, clip(z - k, 0, 1) for k in KNOTS:
    a piecewise-linear basis, so a per-measurement linear layer and a shared MLP can draw sharp thresholds such
    as "EF below 40 %", while the token is constant beyond the outer knots. That flat extrapolation matters on
    real scans: a dilated real LV may lie beyond anything the phantom drew, and it must read as "very dilated",
    not as whatever an oscillating (Fourier) feature happens to say out there. Each token also gets its own type
    embedding (which number it is)."""

    KNOTS: Final[tuple[float, ...]] = (-3.5, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5)

    def __init__(self, names: Sequence[str], width: int) -> None:
        super().__init__()
        unknown = [n for n in names if n not in MEASUREMENT_SCALES]
        if unknown:
            raise ValueError(f"unknown measurement tokens {unknown}; known: {', '.join(MEASUREMENT_NAMES)}")
        self.names = tuple(names)
        m = len(self.names)
        centre = torch.tensor([MEASUREMENT_SCALES[n][0] for n in self.names], dtype=torch.float32)
        scale = torch.tensor([MEASUREMENT_SCALES[n][1] for n in self.names], dtype=torch.float32)
        self.register_buffer("centre", centre, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("knots", torch.tensor(self.KNOTS), persistent=False)
        n_in = len(self.KNOTS)
        self.value_in = nn.Parameter(torch.randn(m, n_in, width) / math.sqrt(n_in))
        self.value_bias = nn.Parameter(torch.zeros(m, width))
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(width, width))
        self.type_emb = nn.Parameter(torch.randn(m, width) * 0.02)

    def features(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """([B, M, len(KNOTS)] ramp features, [B, M] missing); a missing value's features are all zero."""
        missing = ~torch.isfinite(values)
        z = ((torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0) - self.centre) / self.scale)
        ramps = (z.unsqueeze(-1) - self.knots).clamp(0.0, 1.0)  # [B, M, K]
        return ramps.masked_fill(missing.unsqueeze(-1), 0.0), missing

    def forward(self, values: Tensor) -> tuple[Tensor, Tensor]:
        feats, missing = self.features(values)
        h = torch.einsum("bmf,mfw->bmw", feats, self.value_in) + self.value_bias
        return self.mlp(h) + self.type_emb, missing
