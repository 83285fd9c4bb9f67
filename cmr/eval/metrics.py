"""Evaluation metrics for CMR-CLIP: zero-shot and few-shot classification, cross-modal retrieval and
clinical (finding-vector) match. Pure functions on numpy arrays; no torch, so they run on saved embeddings.

Conventions:
  * Embeddings are rows; every function L2-normalises its inputs itself (cheap, and makes a caller's
    forgotten normalisation harmless), so "cosine" and "dot product" coincide.
  * Labels are boolean arrays; AUROC is undefined with one class and is then reported as None.
  * Randomness only through `np.random.default_rng(seed)`, so results are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

__all__ = [
    "auroc",
    "bootstrap_auroc_ci",
    "clinical_match",
    "cosine_rows",
    "few_shot",
    "retrieval",
    "zero_shot_scores",
]

FloatArray = NDArray[np.float64]

# Similarities closer than this count as ties in retrieval ranks: identical inputs (e.g. two reports with the
# same text) give equal embeddings up to float32/BLAS noise, and neither side of such a tie should win.
TIE_TOL = 1e-6
# Query rows per similarity block: bounds memory at CHUNK x gallery float64 for galleries of many thousands.
CHUNK = 1024


def _l2(x: ArrayLike) -> FloatArray:
    """Rows scaled to unit length (float64); all-zero rows stay zero rather than becoming NaN."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.maximum(norms, 1e-12)


def _bool_labels(labels: ArrayLike, n: int | None = None) -> NDArray[np.bool_]:
    y = np.asarray(labels).astype(bool).ravel()
    if n is not None and y.shape[0] != n:
        raise ValueError(f"expected {n} labels, got {y.shape[0]}")
    return y


def cosine_rows(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Cosine similarity of a[i] with b[i] for every row i; a and b are [N, D]. Returns [N]."""
    an, bn = _l2(a), _l2(b)
    if an.shape != bn.shape:
        raise ValueError(f"shape mismatch: {an.shape} vs {bn.shape}")
    return np.einsum("nd,nd->n", an, bn)


def zero_shot_scores(
    image_emb: ArrayLike, pos_prompt_emb: ArrayLike, neg_prompt_emb: ArrayLike
) -> FloatArray:
    """Zero-shot score per image: cos(image, positive class embedding) - cos(image, negative class embedding).

    A class embedding is a prompt ensemble: the mean of the L2-normalised prompt embeddings, renormalised
    (standard CLIP practice; averaging unit vectors keeps every prompt's weight equal). image_emb is [N, D],
    the prompt arrays are [P, D] and [Q, D] (a single [D] prompt is accepted). Higher = more likely positive.
    """
    img = _l2(image_emb)
    pos = _l2(_l2(pos_prompt_emb).mean(axis=0))[0]
    neg = _l2(_l2(neg_prompt_emb).mean(axis=0))[0]
    return img @ pos - img @ neg


def _two_class(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], FloatArray] | None:
    """Labels and scores as flat arrays of equal length; None when only one class is present."""
    y = _bool_labels(labels)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.shape[0]} labels but {s.shape[0]} scores")
    if y.all() or not y.any():
        return None
    return y, s


def auroc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve of `scores` for boolean `labels`; None when only one class is present."""
    pair = _two_class(labels, scores)
    return None if pair is None else float(roc_auc_score(*pair))


def bootstrap_auroc_ci(
    labels: ArrayLike, scores: ArrayLike, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile bootstrap confidence interval (lo, hi) of the AUROC; None with only one class present.

    Studies are resampled with replacement; resamples that happen to hold a single class are dropped. The
    AUROC of each resample is computed vectorised from average ranks (Mann-Whitney U, identical to sklearn's
    AUROC including ties) because 1000 sklearn calls per finding per model would dominate an evaluation run.
    """
    pair = _two_class(labels, scores)
    if pair is None:
        return None
    y, s = pair
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    aucs: list[FloatArray] = []
    # Blocks of resamples: an [n_boot, N] rank matrix at once would be large for a few thousand studies.
    block = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        yb, sb = y[idx], s[idx]
        ranks = rankdata(sb, axis=1)  # average ranks for ties, as the AUROC's "ties count half"
        n_pos = yb.sum(axis=1).astype(np.float64)
        n_neg = n - n_pos
        ok = (n_pos > 0) & (n_neg > 0)
        u = (ranks * yb).sum(axis=1) - n_pos * (n_pos + 1) / 2
        aucs.append(u[ok] / (n_pos[ok] * n_neg[ok]))
        done += b
    all_aucs = np.concatenate(aucs)
    if all_aucs.size == 0:
        return None
    lo, hi = np.percentile(all_aucs, [2.5, 97.5])
    return float(lo), float(hi)


def few_shot(
    image_emb: ArrayLike,
    labels: ArrayLike,
    shots: Sequence[int] = (1, 2, 4, 8, 16, 32),
    draws: int = 20,
    seed: int = 0,
) -> dict[int, dict[str, dict[str, float]]]:
    """Few-shot AUROC with balanced support sets, as in the CMR-CLIP paper.

    For each k in `shots` and each of `draws` draws: k positives and k negatives are sampled (without
    replacement) as the support set and every remaining study is the test set. Two classifiers:
      * "prototype": cos(x, normalised mean of positive supports) - cos(x, normalised mean of negatives);
      * "linear": sklearn LogisticRegression(C=1.0, max_iter=1000) fitted on the 2k supports.
    Returns {k: {"prototype": {"mean", "std", "n_draws"}, "linear": {...}}} over draws (std is the population
    std over draws). A k with fewer than k + 1 positives or negatives is left out (the test set would lack a
    class). Each k draws from its own generator seeded by (seed, k), so its numbers do not depend on which
    other k are requested.
    """
    x = _l2(image_emb)
    y = _bool_labels(labels, x.shape[0])
    pos_idx, neg_idx = np.flatnonzero(y), np.flatnonzero(~y)
    out: dict[int, dict[str, dict[str, float]]] = {}
    for k in shots:
        if k < 1:
            raise ValueError(f"shots must be >= 1, got {k}")
        if len(pos_idx) < k + 1 or len(neg_idx) < k + 1:
            continue
        rng = np.random.default_rng([seed, k])
        per: dict[str, list[float]] = {"prototype": [], "linear": []}
        for _ in range(draws):
            sp = rng.choice(pos_idx, size=k, replace=False)
            sn = rng.choice(neg_idx, size=k, replace=False)
            test = np.ones(x.shape[0], dtype=bool)
            test[sp] = False
            test[sn] = False
            xt, yt = x[test], y[test]

            proto_pos = _l2(x[sp].mean(axis=0))[0]
            proto_neg = _l2(x[sn].mean(axis=0))[0]
            per["prototype"].append(float(roc_auc_score(yt, xt @ proto_pos - xt @ proto_neg)))

            support = np.concatenate([sp, sn])
            clf = LogisticRegression(C=1.0, max_iter=1000)
            clf.fit(x[support], y[support])
            per["linear"].append(float(roc_auc_score(yt, clf.decision_function(xt))))
        out[int(k)] = {
            name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n_draws": len(v)}
            for name, v in per.items()
        }
    return out


def _check_paired(query_emb: ArrayLike, gallery_emb: ArrayLike) -> tuple[FloatArray, FloatArray]:
    q, g = _l2(query_emb), _l2(gallery_emb)
    if q.shape != g.shape:
        raise ValueError(f"query and gallery must be paired [N, D] arrays: {q.shape} vs {g.shape}")
    return q, g


def retrieval(query_emb: ArrayLike, gallery_emb: ArrayLike) -> dict[str, float]:
    """Paired retrieval: query i's true match is gallery i; both [N, D]. Ranks by cosine similarity, highest
    first.

    Returns {"R@1", "R@5", "R@10", "median_rank", "mean_rank", "n"}; ranks are 1-based. Ties (within TIE_TOL)
    are broken at random in expectation: with g gallery items strictly above the true one and t others tied
    with it, the rank is 1 + g + t/2 and R@k is the probability that the true item lands in the top k. This is
    fair to duplicate reports (identical texts of many normal studies) and gives a collapsed model (all
    embeddings equal) chance-level numbers rather than a perfect or a worst score.
    """
    q, g = _check_paired(query_emb, gallery_emb)
    n = q.shape[0]
    ranks = np.empty(n)
    recall = {k: np.empty(n) for k in (1, 5, 10)}
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        sims = q[a:b] @ g.T
        rows = np.arange(b - a)
        true = sims[rows, a + rows]
        diff = sims - true[:, None]
        greater = (diff > TIE_TOL).sum(axis=1)
        ties = (np.abs(diff) <= TIE_TOL).sum(axis=1) - 1  # minus the true item itself
        ranks[a:b] = 1 + greater + ties / 2
        for k in recall:
            recall[k][a:b] = np.clip((k - greater) / (ties + 1), 0.0, 1.0)
    return {
        "R@1": float(recall[1].mean()),
        "R@5": float(recall[5].mean()),
        "R@10": float(recall[10].mean()),
        "median_rank": float(np.median(ranks)),
        "mean_rank": float(ranks.mean()),
        "n": n,
    }


def clinical_match(
    query_emb: ArrayLike,
    gallery_emb: ArrayLike,
    label_matrix: ArrayLike,
    k: int = 10,
    exclude_self: bool = False,
) -> dict[str, float]:
    """Do the top-k retrieved studies have the same findings as the query's own study?

    Query i and gallery i belong to the same study, whose boolean finding vector is label_matrix[i] ([N, F]).
    A retrieved item "matches" when its finding vector equals query i's exactly. Returns:
      * "match@k": fraction of queries with at least one match among the top k;
      * "precision@k": mean over queries of the fraction of the top k that match;
      * "chance_precision": expected precision@k of random retrieval (mean matching fraction of the gallery);
      * "chance_match": expected match@k of random retrieval (top k drawn without replacement);
      * "k" (capped at the gallery size) and "n".
    With exclude_self=True gallery item i is removed from query i's results and from its chance (exam->exam
    search, where the query itself is in the gallery). Ties at the k-th place are broken arbitrarily.
    """
    q, g = _check_paired(query_emb, gallery_emb)
    lab = np.asarray(label_matrix).astype(bool)
    if lab.ndim == 1:
        lab = lab[:, None]
    n = q.shape[0]
    if lab.shape[0] != n:
        raise ValueError(f"label_matrix has {lab.shape[0]} rows for {n} studies")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    candidates = n - 1 if exclude_self else n
    if candidates < 1:
        raise ValueError("the gallery has no candidates")
    kk = min(k, candidates)

    # Finding vectors as integer codes: equality of codes is equality of whole vectors.
    _, code, counts = np.unique(lab, axis=0, return_inverse=True, return_counts=True)
    code = code.ravel()
    same_count = counts[code] - (1 if exclude_self else 0)  # matching candidates per query

    hits = np.empty(n)
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        sims = q[a:b] @ g.T
        if exclude_self:
            rows = np.arange(b - a)
            sims[rows, a + rows] = -np.inf
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        hits[a:b] = (code[top] == code[a:b, None]).sum(axis=1)

    # P(no match among kk drawn without replacement) = prod_j (M - c - j) / (M - j), hypergeometric.
    p_none = np.ones(n)
    for j in range(kk):
        p_none *= np.clip(candidates - same_count - j, 0, None) / (candidates - j)
    return {
        "match@k": float((hits > 0).mean()),
        "precision@k": float((hits / kk).mean()),
        "chance_precision": float((same_count / candidates).mean()),
        "chance_match": float((1.0 - p_none).mean()),
        "k": kk,
        "n": n,
    }
