"""Segmentation and measurement agreement: Dice per structure and measurement errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from cmr.quant.labels import STRUCTURES


def dice(pred: NDArray[np.integer], ref: NDArray[np.integer], label: int) -> float | None:
    """Dice of one label; None when the label is absent from both (nothing to agree on)."""
    p, r = np.asarray(pred) == label, np.asarray(ref) == label
    denom = int(p.sum()) + int(r.sum())
    if denom == 0:
        return None
    return 2.0 * float((p & r).sum()) / denom


def volume_dice(pred: NDArray[np.integer], ref: NDArray[np.integer]) -> dict[str, float | None]:
    """Dice of every structure over a whole volume (all its slices at once, as the ACDC challenge scores)."""
    return {name: dice(pred, ref, label) for name, label in STRUCTURES.items()}


def mean_or_none(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def abs_errors(pred: Sequence[float | None], ref: Sequence[float | None]) -> NDArray[np.float64]:
    """|pred - ref| over the pairs where both exist."""
    return np.array([abs(p - r) for p, r in zip(pred, ref) if p is not None and r is not None], dtype=np.float64)


def error_summary(pred: Sequence[float | None], ref: Sequence[float | None]) -> dict[str, float | int | None]:
    """MAE, bias (mean signed error), limits of agreement (Bland-Altman 1.96 SD), n and n missing."""
    pairs = [(p, r) for p, r in zip(pred, ref) if p is not None and r is not None]
    missing = sum(1 for p, r in zip(pred, ref) if r is not None and p is None)
    if not pairs:
        return {"mae": None, "bias": None, "loa": None, "n": 0, "n_missing": missing}
    d = np.array([p - r for p, r in pairs], dtype=np.float64)
    return {"mae": float(np.mean(np.abs(d))), "bias": float(np.mean(d)),
            "loa": float(1.96 * np.std(d, ddof=1)) if len(d) > 1 else None, "n": len(d), "n_missing": missing}
