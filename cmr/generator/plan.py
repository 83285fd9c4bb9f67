"""Tuning the finding plan's decision thresholds on studies the decoder was not trained on.

The finding reader outputs a probability per finding; the plan states a finding when its probability
reaches that finding's threshold. 0.5 is right only for a calibrated reader at balanced costs; the
thresholds here maximise each finding's F1 on held-out studies (the validation split, or a separate set such
as the in-style test set), which is what the clinical scores of the drafts measure. A finding with fewer than
`min_positives` positives there keeps 0.5: a threshold fitted to two cases would be noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmr.generator.decoder import N_FINDINGS, PLAN_SIZE, ReportDecoder
from cmr.generator.features import TokenFeatures
from cmr.generator.targets import finding_targets
from cmr.labels import DISEASES, FINDINGS

GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
MIN_POSITIVES = 5


def _stated_in(sentence: str) -> tuple[list[int], str | None]:
    """Indices of the findings a sentence states present, and the disease it names (or None)."""
    from cmr.reports import label_sentence

    labels = label_sentence(sentence)
    stated = labels.stated()
    return [j for j, f in enumerate(FINDINGS) if f in stated and stated[f].state == "present"], labels.disease


def remaining_after(plan: torch.Tensor, sentence: str) -> torch.Tensor:
    """The plan ([PLAN_SIZE]) minus what `sentence` states: its present findings, and the disease if it names
    one."""
    found, disease = _stated_in(sentence)
    out = plan.clone()
    out[found] = 0.0
    if disease is not None:
        out[N_FINDINGS:] = 0.0
    return out


def report_plans(sentences: list[str], rows: int) -> np.ndarray:
    """Teacher-forcing plans of one training report: row k = what the report states in sentences k, k+1, ...
    (the whole report's plan minus sentences 0..k-1); rows past the last sentence are empty, which is where
    the report ends. `rows` >= len(sentences) + 1."""
    said = [_stated_in(s) for s in sentences]
    out = np.zeros((rows, PLAN_SIZE), np.float32)
    for k in range(len(sentences)):
        for found, _ in said[k:]:
            out[k, found] = 1.0
        named = next((d for _, d in said[k:] if d in DISEASES), None)
        if named is not None:
            out[k, N_FINDINGS + DISEASES.index(named)] = 1.0
    return out


@dataclass(frozen=True)
class PlanThresholds:
    thresholds: dict[str, float]
    f1: dict[str, float | None]  # each finding's F1 on the tuning studies at its threshold
    positives: dict[str, int]
    n_studies: int
    source: str  # where the tuning studies came from

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds, "f1": self.f1, "positives": self.positives,
                "n_studies": self.n_studies, "source": self.source}


@torch.no_grad()
def reader_probabilities(decoder: ReportDecoder, feats: TokenFeatures, idx: np.ndarray,
                         device: torch.device | str = "cpu", batch_size: int = 64) -> np.ndarray:
    """[len(idx), N_FINDINGS] finding probabilities of the reader for the studies `idx` of `feats`."""
    decoder.eval()
    out = []
    for s in range(0, len(idx), batch_size):
        b = np.asarray(idx[s : s + batch_size])
        tokens = torch.from_numpy(np.asarray(feats.tokens[b], dtype=np.float32)).to(device)
        pad = torch.from_numpy(feats.pad[b]).to(device)
        out.append(torch.sigmoid(decoder.read_findings(tokens, pad)[:, :N_FINDINGS]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, N_FINDINGS), np.float32)


def _f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float((truth & pred).sum())
    denom = float(truth.sum() + pred.sum())
    return 2 * tp / denom if denom else 0.0


def tune_thresholds(probs: np.ndarray, truth: np.ndarray, source: str,
                    min_positives: int = MIN_POSITIVES) -> PlanThresholds:
    """F1-maximising threshold per finding (ties: the highest threshold, which states fewer findings)."""
    truth = np.asarray(truth, dtype=bool)
    if probs.shape != truth.shape or probs.shape[1] != N_FINDINGS:
        raise ValueError(f"probabilities {probs.shape} and truth {truth.shape} must both be [n, {N_FINDINGS}]")
    thresholds: dict[str, float] = {}
    f1: dict[str, float | None] = {}
    positives: dict[str, int] = {}
    for j, name in enumerate(FINDINGS):
        positives[name] = int(truth[:, j].sum())
        if positives[name] < min_positives:
            thresholds[name] = 0.5
            f1[name] = _f1(truth[:, j], probs[:, j] >= 0.5) if positives[name] else None
            continue
        scores = [_f1(truth[:, j], probs[:, j] >= t) for t in GRID]
        best = max(range(len(GRID)), key=lambda k: (scores[k], GRID[k]))
        thresholds[name] = float(GRID[best])
        f1[name] = float(scores[best])
    return PlanThresholds(thresholds, f1, positives, len(probs), source)


def truth_matrix(records: list[Any], idx: np.ndarray) -> np.ndarray:
    """[len(idx), N_FINDINGS] reference findings of the studies `idx` (labels, else what the report states)."""
    return np.array([finding_targets(records[int(i)])[0] for i in idx], dtype=bool).reshape(len(idx), N_FINDINGS)


def apply_thresholds(decoder: ReportDecoder, tuned: PlanThresholds) -> None:
    if not decoder.cfg.plan:
        raise ValueError("this decoder takes no finding plan: nothing to tune")
    values = torch.tensor([tuned.thresholds[f] for f in FINDINGS], dtype=torch.float32)
    decoder.plan_thresholds.copy_(values.to(decoder.plan_thresholds.device))


__all__ = ["PlanThresholds", "apply_thresholds", "remaining_after", "report_plans", "reader_probabilities", "truth_matrix",
           "tune_thresholds"]
