"""Language metrics of drafts: libraries' scores, the same normalisation on both sides, clear errors."""

from __future__ import annotations

import pytest

from cmr.reports.text_metrics import normalise, text_scores

REF = ["1. Severely dilated LV with severely impaired systolic function.\n2. No late gadolinium enhancement.",
       "Normal biventricular size and function. No LGE."]


def test_identical_reports_score_one_whatever_the_numbering() -> None:
    unnumbered = ["Severely dilated LV with severely impaired systolic function. No late gadolinium enhancement.",
                  "Normal biventricular size and function. No LGE."]
    s = text_scores(unnumbered, REF)
    assert all(v == pytest.approx(1.0) for v in s.bleu.values())
    assert s.rouge_l == pytest.approx(1.0) and s.meteor > 0.99 and s.n_pairs == 2


def test_scores_fall_with_the_overlap_and_bleu_falls_with_the_order() -> None:
    close = text_scores(["Severely dilated LV with impaired systolic function. No LGE.",
                         "Normal biventricular size and function."], REF)
    far = text_scores(["Pericardial effusion.", "Amyloidosis with diffuse enhancement."], REF)
    assert 0 <= far.rouge_l < close.rouge_l < 1 and far.meteor < close.meteor < 1
    assert close.bleu[1] >= close.bleu[2] >= close.bleu[3] >= close.bleu[4] and far.bleu[4] < close.bleu[4]


def test_stems_match_but_synonyms_do_not() -> None:
    stem = text_scores(["the ventricles are dilating"], ["the ventricle is dilated"]).meteor
    other = text_scores(["the chambers are enlarged"], ["the ventricle is dilated"]).meteor
    assert stem > other


def test_normalise_and_errors() -> None:
    assert normalise("1. A  b.\n2) C.") == "A b. C."
    with pytest.raises(ValueError, match="references"):
        text_scores(["a"], [])
    with pytest.raises(ValueError, match="no reports"):
        text_scores([], [])
