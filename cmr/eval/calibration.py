"""How well zero-shot probabilities are calibrated: expected calibration error, Brier score and reliability
curves (sklearn), per finding, and a reliability diagram."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss


def expected_calibration_error(labels: ArrayLike, probs: ArrayLike, bins: int = 10) -> float:
    """Mean |observed rate - mean predicted probability| over equal-width bins, weighted by bin size."""
    y = np.asarray(labels, bool)
    p = np.asarray(probs, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            err += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(err)


def calibration_summary(labels: ArrayLike, probs: ArrayLike, bins: int = 10) -> dict[str, Any]:
    y = np.asarray(labels, bool)
    p = np.asarray(probs, float)
    frac, mean = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    return {"ece": expected_calibration_error(y, p, bins), "brier": float(brier_score_loss(y, p)),
            "prevalence": float(y.mean()), "mean_probability": float(p.mean()),
            "curve": {"mean_predicted": mean.tolist(), "observed": frac.tolist()}}


def plot_reliability(summaries: Mapping[str, Mapping[str, Any]], out: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":", label="perfect")
    for name, s in summaries.items():
        c = s["curve"]
        ax.plot(c["mean_predicted"], c["observed"], marker="o", ms=3, lw=1, label=f"{name} (ECE {s['ece']:.3f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
