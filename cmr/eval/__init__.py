"""Evaluation of CMR-CLIP: metrics on saved embeddings (`cmr.eval.metrics`), the paper's published numbers
(`cmr.eval.paper`) and the markdown/figure report (`cmr.eval.report`).

    scores = zero_shot_scores(image_emb, pos_prompt_emb, neg_prompt_emb)
    auroc(labels, scores), bootstrap_auroc_ci(labels, scores)
    Path("report.md").write_text(results_to_markdown(results))
"""

from cmr.eval.metrics import (
    auroc,
    bootstrap_auroc_ci,
    clinical_match,
    cosine_rows,
    few_shot,
    retrieval,
    zero_shot_scores,
)
from cmr.eval.paper import PAPER_FEW_SHOT_LV_DYSFUNCTION, PAPER_ZERO_SHOT_AUC, PAPER_ZERO_SHOT_MEAN
from cmr.eval.report import (
    TargetCheck,
    display_name,
    plot_few_shot,
    plot_zero_shot,
    results_to_markdown,
    target_checks,
)

__all__ = [
    "PAPER_FEW_SHOT_LV_DYSFUNCTION",
    "PAPER_ZERO_SHOT_AUC",
    "PAPER_ZERO_SHOT_MEAN",
    "TargetCheck",
    "auroc",
    "bootstrap_auroc_ci",
    "clinical_match",
    "cosine_rows",
    "display_name",
    "few_shot",
    "plot_few_shot",
    "plot_zero_shot",
    "results_to_markdown",
    "retrieval",
    "target_checks",
    "zero_shot_scores",
]
