"""Published CMR-CLIP numbers, used as reference columns and curves in the evaluation report.

Zero-shot AUROC per finding on the paper's internal and external test sets, and the few-shot (prototype)
AUROC curve it reported for LV dysfunction. Keys are the finding names of `cmr.labels`.
"""

from __future__ import annotations

from typing import Final

# finding -> (internal AUROC, external AUROC), in the paper's table order (= cmr.labels.PAPER_FINDINGS).
PAPER_ZERO_SHOT_AUC: Final[dict[str, tuple[float, float]]] = {
    "lv_dysfunction": (0.735, 0.768),
    "rv_dysfunction": (0.783, 0.792),
    "lv_dilation": (0.831, 0.835),
    "rv_dilation": (0.838, 0.728),
    "lv_hypertrophy": (0.881, 0.879),
    "lge": (0.705, 0.621),
    "aortic_dilation": (0.625, 0.486),
}

# The paper's own "mean" row (internal, external); equals the mean of the seven rows above to 3 decimals.
PAPER_ZERO_SHOT_MEAN: Final[tuple[float, float]] = (0.771, 0.730)

# Shots per class -> AUROC of the prototype classifier for LV dysfunction.
PAPER_FEW_SHOT_LV_DYSFUNCTION: Final[dict[int, float]] = {
    1: 0.668,
    2: 0.768,
    4: 0.829,
    8: 0.871,
    16: 0.904,
    32: 0.918,
}
