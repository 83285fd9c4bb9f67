"""Tissue ids of the phantom's label maps: what every pixel of a rendered image is made of.

The phantom composites tissues in painter's order; the label map records, per pixel, the last tissue whose
partial-volume membership reached one half, so it is the tissue that dominates the pixel. The ids are stored
in `study_NNNNN.labels.npz` (uint8) and are the source of the segmentation training data
(`cmr.quant.synthetic` maps them onto the LV/RV classes of `cmr.quant.labels`).
"""

from __future__ import annotations

from typing import Final

TISSUES: Final[tuple[str, ...]] = (
    "air",              # 0 outside the body
    "subcutaneous_fat",  # 1
    "muscle",           # 2 chest wall
    "soft_tissue",      # 3 mediastinum, abdomen
    "lung",             # 4
    "liver",            # 5
    "bone",             # 6 spine
    "descending_aorta",  # 7 blood in the descending aorta
    "pericardial_fat",  # 8
    "pericardium",      # 9
    "effusion",         # 10 pericardial fluid
    "epicardial_fat",   # 11 fat in the grooves
    "lv_myocardium",    # 12
    "rv_myocardium",    # 13 RV free wall
    "la_wall",          # 14
    "ra_wall",          # 15
    "aortic_wall",      # 16
    "lv_blood",         # 17 LV cavity
    "rv_blood",         # 18 RV cavity
    "la_blood",         # 19
    "ra_blood",         # 20
    "aortic_blood",     # 21 aortic root and ascending aorta
    "papillary_muscle",  # 22 inside the LV cavity
)
TISSUE_ID: Final[dict[str, int]] = {name: i for i, name in enumerate(TISSUES)}
