"""Why two exams (or a text and an exam) match: the similarity split into what each view, sequence and
measured number contributes, read from the model itself.

An attention-pooling model's unit embedding is an exact sum of per-part vectors (`CMRCLIP.exam_contributions`:
one part per exam slot such as cine SAX or LGE, one per measurement token, and the CLS fallback). A cosine
with any unit vector v therefore splits exactly into sum_g part_g . v. For two exams q and r the split is made
symmetric, contribution_g = (q_g . r + q . r_g) / 2, which still sums to cos(q, r) and does not depend on
which exam was the query. No post-hoc saliency is involved, so the shares are what the model computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from cmr.dicom import Exam
from cmr.model.clip import CMRCLIP
from cmr.model.inference import exam_batch, measurement_batch

PartKind = Literal["view", "measurement", "exam"]


@dataclass(frozen=True)
class MatchShare:
    """One part's piece of a match: `contribution` in cosine units (all parts sum to the similarity) and
    `share`, its fraction of the similarity (all shares sum to 1; negative where a part argues against)."""

    part: str
    kind: PartKind
    contribution: float
    share: float


@dataclass(frozen=True)
class ExamParts:
    """An exam's unit embedding [D] and its parts [G, D] (summing to it) over `groups`."""

    embedding: NDArray[np.float32]
    parts: NDArray[np.float32]
    groups: tuple[str, ...]
    kinds: tuple[PartKind, ...]


def part_label(part: str) -> str:
    """'cine_sax' -> 'cine SAX', 'lge_lax' -> 'LGE LAX', 'lvef_pct' -> 'LVEF (%)': names on screens and charts
    (the CLI and the UI share it)."""
    from cmr.model.measurements import MEASUREMENT_LABELS

    if part == "exam":
        return "whole exam (no view or number)"
    if part in MEASUREMENT_LABELS:
        return MEASUREMENT_LABELS[part]
    seq, _, view = part.partition("_")
    return f"{'LGE' if seq == 'lge' else seq} {view.upper()}".strip()


def group_kinds(n_slots: int, n_measurements: int) -> tuple[PartKind, ...]:
    """The kinds of `contribution_groups`: every slot a view, every measurement token, then the CLS part."""
    kinds: list[PartKind] = ["view"] * n_slots
    kinds += ["measurement"] * n_measurements
    return (*kinds, "exam")


def part_kinds(model: CMRCLIP) -> tuple[PartKind, ...]:
    return group_kinds(len(model.spec.slots), len(model.measurement_names))


def explains(model: CMRCLIP) -> bool:
    """Whether this model's embeddings split into parts (attention pooling; a CLS model mixes every view)."""
    return model.visual.pool is not None


@torch.no_grad()
def exam_parts(model: CMRCLIP, exams: Sequence[Exam],
               measurements: NDArray[np.float32] | None = None) -> list[ExamParts]:
    """Each exam's embedding with its per-view and per-measurement parts. ValueError for a CLS-pooled model."""
    if not exams:
        return []
    px, mk = exam_batch(exams, model.device)
    emb, parts = model.exam_contributions(px, mk, measurement_batch(model, measurements, len(exams)))
    groups, kinds = model.contribution_groups, part_kinds(model)
    e, p = emb.float().cpu().numpy(), parts.float().cpu().numpy()
    return [ExamParts(e[i], p[i], groups, kinds) for i in range(len(exams))]


def pair_contributions(query: ExamParts, result: ExamParts) -> NDArray[np.float64]:
    """[G] symmetric contributions to cos(query, result); they sum to the cosine."""
    if query.groups != result.groups:
        raise ValueError("the two exams were split by different models (their part names differ)")
    q, r = query.embedding.astype(np.float64), result.embedding.astype(np.float64)
    return 0.5 * (query.parts.astype(np.float64) @ r + result.parts.astype(np.float64) @ q)


def text_contributions(result: ExamParts, text_embedding: NDArray[np.float32]) -> NDArray[np.float64]:
    """[G] contributions of the exam's parts to cos(text, exam); they sum to the cosine."""
    t = np.asarray(text_embedding, np.float64)
    if t.shape != result.embedding.shape:
        raise ValueError(f"text embedding {t.shape} does not match the exam embedding {result.embedding.shape}")
    return result.parts.astype(np.float64) @ t


def shares(contributions: NDArray[np.float64], groups: Sequence[str], kinds: Sequence[PartKind],
           min_abs: float = 1e-6) -> list[MatchShare]:
    """The parts that contribute at all (a missing view or number contributes exactly 0 and is left out),
    largest first by size. A similarity of ~0 has no meaningful fractions: shares are then 0."""
    total = float(np.sum(contributions))
    out = [MatchShare(g, k, float(c), float(c / total) if abs(total) > 1e-9 else 0.0)
           for g, k, c in zip(groups, kinds, contributions) if abs(c) > min_abs]
    return sorted(out, key=lambda s: -abs(s.contribution))


def explain_pair(query: ExamParts, result: ExamParts) -> list[MatchShare]:
    return shares(pair_contributions(query, result), query.groups, query.kinds)


def explain_text_match(result: ExamParts, text_embedding: NDArray[np.float32]) -> list[MatchShare]:
    return shares(text_contributions(result, text_embedding), result.groups, result.kinds)
