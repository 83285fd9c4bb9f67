"""The text a numbers-only training exam is paired with: what the numbers can state, never LGE or a diagnosis;
for an exam read from one number, what the report says of that number's finding."""

from __future__ import annotations

import pytest
import torch

from cmr.model.config import TrainConfig
from cmr.model.measurements import MEASUREMENT_NAMES
from cmr.reports.labeller import label_report
from cmr.train.number_text import (MEASURABLE_FINDINGS, NUMBER_FINDINGS, TOKEN_FINDING, finding_text, number_text,
                                   text_rows, token_findings)


def test_keeps_ventricular_sentences_and_drops_lge_and_the_diagnosis() -> None:
    impression = ("Moderately dilated, moderately impaired left ventricle (LVEF 34%). No LGE to suggest scar or "
                  "fibrosis. Good right ventricular systolic function. Aortic root at the upper limit of normal "
                  "(3.9 cm), not dilated. Findings are consistent with dilated cardiomyopathy.")
    got = number_text(impression)
    assert got == ("Moderately dilated, moderately impaired left ventricle (LVEF 34%). "
                   "Good right ventricular systolic function.")
    labels = label_report(got)
    assert labels.disease is None
    assert {f for f, lab in labels.findings.items() if lab.state != "not_mentioned"} <= MEASURABLE_FINDINGS


def test_keeps_the_normal_summary() -> None:
    got = number_text("1. Normal CMR.\n2. Normal LV size and systolic function.\n3. No late gadolinium enhancement.")
    assert got == "Normal CMR. Normal LV size and systolic function."
    assert number_text("LVEF 61%. Subepicardial LGE inferolaterally. The study is otherwise normal.") == \
        "LVEF 61%. The study is otherwise normal."


def test_mixed_sentences_go_and_an_impression_with_nothing_left_stays_whole() -> None:
    # One sentence speaks of both a measurable finding and LGE: the numbers cannot state all of it.
    impression = "No LV hypertrophy or LGE."
    assert number_text(impression) == impression
    effusion = "Small circumferential pericardial effusion. No late gadolinium enhancement."
    assert number_text(effusion) == effusion


# ---- finding_text: what a report says of the one finding a number measures --------------------------------


def test_finding_text_takes_the_sentence_that_states_the_finding_and_least_else() -> None:
    impression = ("Moderately dilated, moderately impaired left ventricle (LVEF 34%). Left ventricular systolic "
                  "function is moderately impaired. No LGE. Good right ventricular systolic function. "
                  "No left ventricular hypertrophy. Findings are consistent with dilated cardiomyopathy.")
    assert finding_text(impression, "lv_dysfunction") == "Left ventricular systolic function is moderately impaired."
    assert finding_text(impression, "lv_dilation") == "Moderately dilated, moderately impaired left ventricle (LVEF 34%)."
    assert finding_text(impression, "rv_dysfunction") == "Good right ventricular systolic function."
    assert finding_text(impression, "lv_hypertrophy") == "No left ventricular hypertrophy."


def test_finding_text_falls_back_to_the_normal_summary_then_to_the_number_text() -> None:
    normal = "1. Normal CMR.\n2. Normal LV size and systolic function.\n3. No late gadolinium enhancement."
    assert finding_text(normal, "rv_dilation") == "Normal CMR."
    assert finding_text(normal, "lv_dysfunction") == "Normal LV size and systolic function."
    unstated = "Mild concentric left ventricular hypertrophy. Subepicardial LGE inferolaterally."
    assert finding_text(unstated, "rv_dilation") == number_text(unstated)
    # A sentence that also states LGE is not one the numbers can state.
    assert finding_text("No LV hypertrophy or LGE.", "lv_hypertrophy") == "No LV hypertrophy or LGE."  # = number_text
    with pytest.raises(ValueError, match="lge"):
        finding_text(unstated, "lge")


def test_token_findings_map_every_shipped_token() -> None:
    idx = token_findings(MEASUREMENT_NAMES)
    assert [NUMBER_FINDINGS[int(i)] for i in idx] == [TOKEN_FINDING[n] for n in MEASUREMENT_NAMES]
    assert token_findings(("lvef_pct", "unknown_token")).tolist() == [0, -1]


def test_text_rows_pair_each_exam_with_its_kind_of_text() -> None:
    n, nan = 10, float("nan")
    studies = torch.tensor([3, 4, 5, 6, 7])
    numbers_only = torch.tensor([False, True, True, True, True])
    names = ("lvef_pct", "lvedvi_ml_m2", "unknown_token")
    values = torch.tensor([[50.0, 80.0, nan],   # reads its frames: the whole impression
                           [50.0, 80.0, nan],   # two numbers: the number text
                           [nan, 90.0, nan],    # LVEDVi alone: lv_dilation's text
                           [30.0, nan, nan],    # LVEF alone: lv_dysfunction's text
                           [nan, nan, 1.0]])    # a token that states no finding: the number text
    rows = text_rows(studies, n, numbers_only, values, token_findings(names))
    dil, dys = NUMBER_FINDINGS.index("lv_dilation"), NUMBER_FINDINGS.index("lv_dysfunction")
    assert rows.tolist() == [3, n + 4, (2 + dil) * n + 5, (2 + dys) * n + 6, n + 7]
    assert text_rows(studies, n, numbers_only, values, None).tolist() == [3, n + 4, n + 5, n + 6, n + 7]


def test_finding_text_needs_number_text() -> None:
    with pytest.raises(ValueError, match="aug_numbers_text"):
        TrainConfig(aug_number_finding_text=True)
    assert TrainConfig(aug_numbers_text=True, aug_number_finding_text=True).aug_number_finding_text
