"""The finding and disease vocabulary shared by the synthetic benchmark, the evaluation and the services.

These names are the keys of `labels` in reports.jsonl; other tools read them, so keep them stable.
"""

from __future__ import annotations

from typing import Final, Literal

FINDINGS: Final[tuple[str, ...]] = (
    "lv_dysfunction",
    "rv_dysfunction",
    "lv_dilation",
    "rv_dilation",
    "lv_hypertrophy",
    "lge",
    "aortic_dilation",
    "la_enlargement",
    "pericardial_effusion",
)

# The seven findings of the CMR-CLIP paper's zero-shot table, in its order.
PAPER_FINDINGS: Final[tuple[str, ...]] = (
    "lv_dysfunction",
    "rv_dysfunction",
    "lv_dilation",
    "rv_dilation",
    "lv_hypertrophy",
    "lge",
    "aortic_dilation",
)

Disease = Literal["normal", "ischemic", "nicm", "hcm", "amyloidosis", "myocarditis", "pulmonary_hypertension",
                  "arvc"]
# The two right-heart diseases give the benchmark an RV that is dilated while the LV is not (in the others RV
# dilation only ever comes with a dilated LV, so "RV dilation" could be learned as "big LV").
DISEASES: Final[tuple[str, ...]] = ("normal", "ischemic", "nicm", "hcm", "amyloidosis", "myocarditis",
                                    "pulmonary_hypertension", "arvc")

LgePattern = Literal[
    "none", "subendocardial", "transmural", "midwall", "subepicardial", "diffuse_subendocardial"
]
LGE_PATTERNS: Final[tuple[str, ...]] = (
    "none", "subendocardial", "transmural", "midwall", "subepicardial", "diffuse_subendocardial"
)

CoronaryTerritory = Literal["LAD", "RCA", "LCX"]

# Thresholds that turn continuous ground truth into the boolean labels. Chosen from common CMR reference
# ranges (sex-averaged, SCMR/Kawel-Turkbey style) so the impressions and the labels agree on what "abnormal" is.
LVEF_ABNORMAL_BELOW: Final[float] = 50.0
RVEF_ABNORMAL_BELOW: Final[float] = 45.0
LVEDVI_DILATED_ABOVE: Final[float] = 105.0  # mL/m^2
RVEDVI_DILATED_ABOVE: Final[float] = 115.0  # mL/m^2
WALL_THICKNESS_HYPERTROPHY_AT: Final[float] = 13.0  # mm, maximal end-diastolic wall thickness
AORTIC_ROOT_DILATED_ABOVE: Final[float] = 40.0  # mm, sinus of Valsalva
LAVI_ENLARGED_ABOVE: Final[float] = 45.0  # mL/m^2
EFFUSION_PRESENT_AT: Final[float] = 4.0  # mm, maximal end-diastolic pericardial fluid depth
