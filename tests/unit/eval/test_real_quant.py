"""The quantification section's whole-slice miss count (cmr.eval.real_quant)."""

from __future__ import annotations

import numpy as np

from cmr.eval.real_quant import slices_missed
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY


def test_a_slice_counts_as_missed_only_when_the_expert_drew_the_structure_and_nothing_of_it_was_predicted() -> None:
    ref = np.zeros((4, 8, 8), np.uint8)
    ref[:, 2:4, 2:4] = LV_CAVITY
    ref[:3, 5:7, 5:7] = RV_CAVITY
    pred = ref.copy()
    pred[1, 2:4, 2:4] = LV_MYOCARDIUM  # slice 1: LV labelled as the wrong class, i.e. no cavity
    pred[2, 2, 2] = 0  # slice 2: one pixel lost is an edge, not a miss
    pred[0, 5:7, 5:7] = 0  # slice 0: RV gone
    pred[3, 0, 0] = RV_CAVITY  # slice 3: RV predicted where the expert drew none is no miss either
    assert slices_missed(pred, ref) == {"lv_cavity": [1], "rv_cavity": [0]}
    assert slices_missed(ref, ref) == {"lv_cavity": [], "rv_cavity": []}
