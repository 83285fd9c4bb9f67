"""What a report says about the findings, as training and tuning targets of the finding reader: a record's
reference labels when it has them all, else what its impression states (read by the rule-based labeller)."""

from __future__ import annotations

from cmr.data.records import StudyRecord
from cmr.labels import DISEASES, FINDINGS


def stated_findings(impression: str) -> tuple[list[float], int]:
    """What a report states: 1 per finding stated present, and its disease index (-100 when it names none of
    cmr.labels.DISEASES)."""
    from cmr.reports import label_report

    labels = label_report(impression)
    disease = DISEASES.index(labels.disease) if labels.disease in DISEASES else -100
    return [float(labels.state(f) == "present") for f in FINDINGS], disease


def finding_targets(rec: StudyRecord) -> tuple[list[float], int]:
    """The finding reader's targets: the record's reference labels when it has them all, else what its
    impression states (so a hospital's plain report text supplies them too)."""
    if all(f in rec.labels for f in FINDINGS):
        disease = rec.labels.get("disease")
        return ([float(bool(rec.labels[f])) for f in FINDINGS],
                DISEASES.index(disease) if disease in DISEASES else -100)
    return stated_findings(rec.impression)
