"""Clinical scoring of generated reports: do they state the findings and the disease the reference does?

Every report, generated or reference, is reduced by `cmr.reports.labeller` to the findings of
`cmr.labels.FINDINGS` and a disease. A reference may instead be ground truth: a reports.jsonl `labels`
dict ({finding: bool, "disease": str, ...}) or a whole reports.jsonl record (its `labels` are used).

    scores = clinical_scores(generated_texts, [rec["labels"] for rec in records])
    scores.macro_f1, scores.per_finding["lge"].f1, scores.disease_accuracy, scores.hallucination_rate

Conventions:
  * Per-finding precision / recall / F1 are on "present"; a finding a text does not mention counts as absent.
    A finding with no positives on either side has no F1 (None) and is left out of the macro F1.
  * Disease accuracy is over the pairs whose reference names a disease; a generated report that names none
    is wrong there.
  * Hallucination rate: of the findings the generated reports state present, the fraction the reference
    marks absent (a labels dict: False; a text: stated absent, or also unmentioned with
    `unmentioned_is_absent=True`). None when no finding is stated present.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence, Union

import numpy as np

from cmr import labels as L
from cmr.reports.labeller import ReportLabels, label_report

__all__ = [
    "ClinicalScores",
    "FindingScore",
    "Generated",
    "Reference",
    "clinical_scores",
    "disease_accuracy",
    "hallucination_rate",
    "per_finding_scores",
]

Generated = Union[str, ReportLabels]
# Report text, labelled report, reports.jsonl `labels` dict, or a whole reports.jsonl record.
Reference = Union[str, ReportLabels, Mapping[str, Any]]


@dataclass(frozen=True)
class _View:
    """What the scoring needs of one report, whatever it came from."""

    present: tuple[bool, ...]  # per finding of FINDINGS
    absent: tuple[bool, ...]  # per finding: marked absent (a labels dict: every False; a text: stated absent)
    disease: str | None


def _view_of_labels(labels: ReportLabels, unmentioned_is_absent: bool) -> _View:
    states = [labels.state(f) for f in L.FINDINGS]
    absent_states = ("absent", "not_mentioned") if unmentioned_is_absent else ("absent",)
    return _View(tuple(s == "present" for s in states), tuple(s in absent_states for s in states),
                 labels.disease)


def _view_of_label_dict(labels: Mapping[str, Any]) -> _View:
    missing = [f for f in L.FINDINGS if f not in labels]
    if missing:
        raise KeyError(f"labels dict lacks findings {missing}")
    present = tuple(bool(labels[f]) for f in L.FINDINGS)
    disease = labels.get("disease")
    return _View(present, tuple(not p for p in present), None if disease is None else str(disease))


def _reference_view(ref: Reference, unmentioned_is_absent: bool) -> _View:
    """A reference of any accepted kind reduced to present / absent flags and a disease."""
    if isinstance(ref, str):
        return _view_of_labels(label_report(ref), unmentioned_is_absent)
    if isinstance(ref, ReportLabels):
        return _view_of_labels(ref, unmentioned_is_absent)
    if "labels" in ref and isinstance(ref["labels"], Mapping):  # a reports.jsonl record
        return _view_of_label_dict(ref["labels"])
    return _view_of_label_dict(ref)


def _generated_view(gen: Generated) -> _View:
    if isinstance(gen, str):
        return _view_of_labels(label_report(gen), unmentioned_is_absent=False)
    if isinstance(gen, ReportLabels):
        return _view_of_labels(gen, unmentioned_is_absent=False)
    raise TypeError(f"a generated report is text or ReportLabels, not {type(gen).__name__}")


def _views(generated: Sequence[Generated], references: Sequence[Reference],
           unmentioned_is_absent: bool) -> tuple[list[_View], list[_View]]:
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated reports but {len(references)} references")
    return ([_generated_view(g) for g in generated],
            [_reference_view(r, unmentioned_is_absent) for r in references])


# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingScore:
    precision: float | None
    recall: float | None
    f1: float | None  # None when neither side has a positive
    support: int  # reference positives
    predicted: int  # generated positives


@dataclass(frozen=True)
class ClinicalScores:
    per_finding: Mapping[str, FindingScore]
    macro_f1: float | None  # mean F1 over the findings that have one
    disease_accuracy: float | None
    disease_pairs: int  # pairs whose reference names a disease
    hallucination_rate: float | None
    hallucinated: int  # generated-present findings the reference marks absent
    stated_present: int  # generated-present findings
    n_reports: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_finding": {f: vars(s).copy() for f, s in self.per_finding.items()},
            "macro_f1": self.macro_f1,
            "disease_accuracy": self.disease_accuracy,
            "disease_pairs": self.disease_pairs,
            "hallucination_rate": self.hallucination_rate,
            "hallucinated": self.hallucinated,
            "stated_present": self.stated_present,
            "n_reports": self.n_reports,
        }


def _finding_scores(gen: list[_View], ref: list[_View]) -> dict[str, FindingScore]:
    # Imported here: scikit-learn takes seconds to import, and services that only label text need not pay.
    from sklearn.metrics import precision_recall_fscore_support

    y_true = np.array([v.present for v in ref], dtype=bool).reshape(len(ref), len(L.FINDINGS))
    y_pred = np.array([v.present for v in gen], dtype=bool).reshape(len(gen), len(L.FINDINGS))
    if len(ref) == 0:
        return {f: FindingScore(None, None, None, 0, 0) for f in L.FINDINGS}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, labels=list(range(len(L.FINDINGS))), zero_division=0
    )
    predicted = y_pred.sum(axis=0)
    out: dict[str, FindingScore] = {}
    for j, f in enumerate(L.FINDINGS):
        n_true, n_pred = int(support[j]), int(predicted[j])
        out[f] = FindingScore(
            precision=float(precision[j]) if n_pred else None,
            recall=float(recall[j]) if n_true else None,
            f1=float(f1[j]) if n_true or n_pred else None,
            support=n_true,
            predicted=n_pred,
        )
    return out


def _macro_f1(scores: Mapping[str, FindingScore]) -> float | None:
    values = [s.f1 for s in scores.values() if s.f1 is not None]
    return float(np.mean(values)) if values else None


def _disease_accuracy(gen: list[_View], ref: list[_View]) -> tuple[float | None, int]:
    pairs = [(g.disease, r.disease) for g, r in zip(gen, ref) if r.disease is not None]
    if not pairs:
        return None, 0
    return sum(g == r for g, r in pairs) / len(pairs), len(pairs)


def _hallucinations(gen: list[_View], ref: list[_View]) -> tuple[int, int]:
    stated = hallucinated = 0
    for g, r in zip(gen, ref):
        for j in range(len(L.FINDINGS)):
            if g.present[j]:
                stated += 1
                hallucinated += r.absent[j]
    return hallucinated, stated


# ------------------------------------------------------------------------------------------------------------


def per_finding_scores(
    generated: Sequence[Generated], references: Sequence[Reference]
) -> dict[str, FindingScore]:
    """Precision, recall and F1 of "present" per finding (not mentioned counts as absent)."""
    gen, ref = _views(generated, references, unmentioned_is_absent=False)
    return _finding_scores(gen, ref)


def disease_accuracy(generated: Sequence[Generated], references: Sequence[Reference]) -> float | None:
    """Fraction of pairs whose generated disease equals the reference's, over references naming one."""
    gen, ref = _views(generated, references, unmentioned_is_absent=False)
    return _disease_accuracy(gen, ref)[0]


def hallucination_rate(generated: Sequence[Generated], references: Sequence[Reference],
                       unmentioned_is_absent: bool = False) -> float | None:
    """Of the findings generated reports state present, the fraction the reference marks absent."""
    gen, ref = _views(generated, references, unmentioned_is_absent)
    hallucinated, stated = _hallucinations(gen, ref)
    return hallucinated / stated if stated else None


def clinical_scores(generated: Sequence[Generated], references: Sequence[Reference],
                    unmentioned_is_absent: bool = False) -> ClinicalScores:
    """All clinical scores of generated reports against references (texts, labels dicts or records);
    each text is labelled once. `unmentioned_is_absent` only affects the hallucination rate."""
    gen, ref = _views(generated, references, unmentioned_is_absent)
    per_finding = _finding_scores(gen, ref)
    accuracy, pairs = _disease_accuracy(gen, ref)
    hallucinated, stated = _hallucinations(gen, ref)
    rate = hallucinated / stated if stated else None
    return ClinicalScores(MappingProxyType(per_finding), _macro_f1(per_finding), accuracy, pairs, rate,
                          hallucinated, stated, len(gen))
