"""The text a numbers-only training exam is paired with: what the numbers can state, never LGE or a diagnosis."""

from __future__ import annotations

from cmr.reports.labeller import label_report
from cmr.train.number_text import MEASURABLE_FINDINGS, number_text


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
