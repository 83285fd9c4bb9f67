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

import torch
from torch import Tensor

from cmr.reports.labeller import SentenceLabels, label_report

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


# The finding each measurement token measures. A number read alone is paired with what the report says of that
# finding only (`finding_text`): the LVEF token learns "reduced function" from the function sentence, not from
# whatever else the phantom's diseases put in the same report. Without it the additive parts of the numbers
# learn the phantom's disease mix (mass "predicts" preserved function because synthetic HCM has a high mass and a
# normal EF), couplings that real hearts combine differently (docs/model/measurement-tokens.md, fourth round).
TOKEN_FINDING: Final[dict[str, str]] = {
    "lvef_pct": "lv_dysfunction", "rvef_pct": "rv_dysfunction",
    "lvedvi_ml_m2": "lv_dilation", "lvesvi_ml_m2": "lv_dilation",
    "rvedvi_ml_m2": "rv_dilation", "rv_lv_edv_ratio": "rv_dilation",
    "lv_mass_index_g_m2": "lv_hypertrophy", "lv_mass_edv_ratio": "lv_hypertrophy",
}
# The order of the per-finding text rows in a training text bank (`text_rows`).
NUMBER_FINDINGS: Final[tuple[str, ...]] = ("lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation",
                                           "lv_hypertrophy")


def _states_only_measurable(s: SentenceLabels, finding: str) -> bool:
    stated = s.stated()
    return finding in stated and s.disease is None and s.summary is None and set(stated) <= MEASURABLE_FINDINGS


def finding_text(impression: str, finding: str) -> str:
    """What the impression says of one measurable `finding`: its sentences that state it and nothing numbers
    cannot measure, those stating the fewest other findings ("Moderately impaired LV function (LVEF 39%)." over
    "Dilated, impaired LV."); else its normal-study summary ("Normal CMR." states every finding absent); else
    `number_text(impression)`, so an exam is never paired with empty text."""
    if finding not in MEASURABLE_FINDINGS:
        raise ValueError(f"{finding!r} is not a finding the measurement tokens state ({sorted(MEASURABLE_FINDINGS)})")
    sentences = label_report(impression).sentences
    own = [s for s in sentences if _states_only_measurable(s, finding)]
    if own:
        fewest = min(len(s.stated()) for s in own)
        return " ".join(s.text for s in own if len(s.stated()) == fewest)
    summary = [s.text for s in sentences if s.summary == "normal"]
    return " ".join(summary) if summary else number_text(impression)


def token_findings(names: tuple[str, ...]) -> Tensor:
    """[M] index into NUMBER_FINDINGS of each token's finding (-1 for a token that states none)."""
    return torch.tensor([NUMBER_FINDINGS.index(TOKEN_FINDING[n]) if n in TOKEN_FINDING else -1 for n in names])


def text_rows(studies: Tensor, n_studies: int, numbers_only: Tensor, values: Tensor | None,
              findings: Tensor | None) -> Tensor:
    """The text-bank row each training exam is paired with. The bank holds n_studies rows per kind: the whole
    impressions (row = study), their number texts (n_studies + study) and, when `findings` is given, the
    `finding_text` of each NUMBER_FINDINGS entry k ((2 + k) * n_studies + study).

    studies [B] study indices; numbers_only [B] True for exams read from their numbers alone; values [B, M] the
    numbers they read (NaN = dropped); findings [M] from `token_findings`. An exam read from exactly one number
    whose token states a finding gets that finding's text; other numbers-only exams their number text."""
    rows = studies + n_studies * numbers_only.long()
    if findings is None or values is None or values.shape[1] == 0:
        return rows
    kept = ~torch.isnan(values)
    finding = findings.to(values.device)[kept.long().argmax(1)]
    single = numbers_only.to(values.device) & (kept.sum(1) == 1) & (finding >= 0)
    return torch.where(single.cpu(), studies + (2 + finding.cpu()) * n_studies, rows)
