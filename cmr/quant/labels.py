"""Class ids of the segmentation masks: the ACDC convention (0 background, 1 RV cavity, 2 LV myocardium,
3 LV cavity), so masks compare with the real-scan reference without a translation table. Papillary muscles
and trabeculations belong to the cavity, as in ACDC and in the SCMR post-processing recommendation that
volumes be traced along the compact myocardium."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

BACKGROUND: Final[int] = 0
RV_CAVITY: Final[int] = 1
LV_MYOCARDIUM: Final[int] = 2
LV_CAVITY: Final[int] = 3
N_CLASSES: Final[int] = 4

STRUCTURES: Final[dict[str, int]] = {"rv_cavity": RV_CAVITY, "lv_myocardium": LV_MYOCARDIUM, "lv_cavity": LV_CAVITY}


def _tissue_lut() -> NDArray[np.uint8]:
    from cmr.synth.tissues import TISSUE_ID, TISSUES

    lut = np.zeros(256, dtype=np.uint8)
    lut[TISSUE_ID["lv_blood"]] = LV_CAVITY
    lut[TISSUE_ID["papillary_muscle"]] = LV_CAVITY  # papillary muscles count as cavity
    lut[TISSUE_ID["lv_myocardium"]] = LV_MYOCARDIUM
    lut[TISSUE_ID["rv_blood"]] = RV_CAVITY
    assert len(TISSUES) < 256
    return lut


def classes_from_tissues(tissue_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Phantom tissue ids (cmr.synth.tissues) -> segmentation classes of this module."""
    return _tissue_lut()[np.asarray(tissue_ids, dtype=np.uint8)]
