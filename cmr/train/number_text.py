"""The part of an impression that measured numbers can state: the text a numbers-only training exam is paired with.

An exam trained from its numbers alone (`augment.numbers_only`) has no LGE frames, no aortic root, no atria; if
its text still says "extensive subendocardial LGE", the contrastive loss teaches the model that LGE wording is
predicted by the numbers (ischaemic hearts have low EFs in the phantom). On synthetic data this turned the LGE
prompt against the LGE frames (held-out zero-shot 0.80 -> 0.41); on real scans, whose numbers combine unlike the
phantom's, it is a coupling that does not hold. So such an exam is paired with the sentences that speak only of
what the numbers measure: ventricular size, function and wall thickness, and "normal study" summaries.
"""

from __future__ import annotations

from typing import Final

from cmr.reports.labeller import label_report

# Findings the eight measurement tokens (EF, indexed volumes, mass, ratios) can state.
MEASURABLE_FINDINGS: Final[frozenset[str]] = frozenset(
    {"lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation", "lv_hypertrophy"})


def number_text(impression: str) -> str:
    """The impression's sentences that state only measurable findings or call the study normal ("Normal CMR.",
    "Otherwise normal."), and name no disease; the whole impression when no sentence qualifies, so an exam is
    never paired with empty text."""
    kept = [s.text for s in label_report(impression).sentences
            if s.summary is not None or s.disease == "normal"
            or (s.disease is None and s.stated() and set(s.stated()) <= MEASURABLE_FINDINGS)]
    return " ".join(kept) if kept else impression
