"""Clinical reading of CMR report text: a rule-based finding labeller (`cmr.reports.labeller`) and clinical
scores of generated reports against reference reports or ground-truth labels (`cmr.reports.clinical`).

    labels = label_report("Mildly dilated LV with severely impaired systolic function (LVEF 25%). No LGE.")
    labels.state("lv_dysfunction"), labels.severity("lv_dysfunction"), labels.disease
    scores = clinical_scores(generated_texts, [record["labels"] for record in records])
"""

from cmr.reports.clinical import (
    ClinicalScores,
    FindingScore,
    Generated,
    Reference,
    clinical_scores,
    disease_accuracy,
    hallucination_rate,
    per_finding_scores,
)
from cmr.reports.labeller import (
    FindingLabel,
    FindingState,
    ReportLabels,
    SentenceLabels,
    Severity,
    label_report,
    label_reports,
    label_sentence,
    split_sentences,
)

__all__ = [
    "ClinicalScores",
    "FindingLabel",
    "FindingScore",
    "FindingState",
    "Generated",
    "Reference",
    "ReportLabels",
    "SentenceLabels",
    "Severity",
    "clinical_scores",
    "disease_accuracy",
    "hallucination_rate",
    "label_report",
    "label_reports",
    "label_sentence",
    "per_finding_scores",
    "split_sentences",
]
