"""Tests of cmr.eval.metrics on constructed inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cmr.eval.metrics import (
    auroc,
    bootstrap_auroc_ci,
    clinical_match,
    cosine_rows,
    few_shot,
    retrieval,
    zero_shot_scores,
)


def _clusters(n_pos: int, n_neg: int, dim: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian clusters sep apart along axis 0; labels True for the first n_pos rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_pos + n_neg, dim))
    x[:n_pos, 0] += sep
    x[n_pos:, 0] -= sep
    y = np.zeros(n_pos + n_neg, dtype=bool)
    y[:n_pos] = True
    return x, y


# --- cosine / zero-shot -------------------------------------------------------------------------------------


def test_cosine_rows_known_angles() -> None:
    a = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_rows(a, b), [1.0, 0.0, -1.0, np.sqrt(0.5)], atol=1e-12)


def test_zero_shot_scores_prompt_ensemble() -> None:
    img = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # Two positive prompts of very different norms: normalising before averaging gives them equal weight,
    # so the positive class direction is (1, 0, 1)/sqrt(2), not dominated by the long prompt.
    pos = np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.1]])
    neg = np.array([[0.0, 2.0, 0.0]])
    s = zero_shot_scores(img, pos, neg)
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(s, [r - 0.0, 0.0 - 1.0, r - 0.0], atol=1e-12)


def test_zero_shot_scores_separate_classes() -> None:
    x, y = _clusters(50, 50, 8, sep=3.0, seed=1)
    pos, neg = np.eye(8)[:1], -np.eye(8)[:1]
    assert auroc(y, zero_shot_scores(x, pos, neg)) > 0.97


# --- AUROC --------------------------------------------------------------------------------------------------


def test_auroc_perfect_reversed_and_single_class() -> None:
    y = np.array([False, False, True, True])
    assert auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert auroc([True, True], [0.1, 0.2]) is None
    assert auroc(np.zeros(3, dtype=bool), [0.1, 0.2, 0.3]) is None
    with pytest.raises(ValueError):
        auroc(y, [0.1, 0.2])


def test_bootstrap_ci_contains_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    s = y + rng.normal(size=400)
    est = auroc(y, s)
    ci = bootstrap_auroc_ci(y, s, n_boot=500, seed=7)
    assert ci is not None and est is not None
    lo, hi = ci
    assert lo < est < hi
    assert 0.02 < hi - lo < 0.2  # ~ +-2 SE of an AUROC on 400 studies
    assert bootstrap_auroc_ci(y, s, n_boot=500, seed=7) == ci
    assert bootstrap_auroc_ci(y, s, n_boot=500, seed=8) != ci


def test_bootstrap_rank_auroc_equals_sklearn_with_ties() -> None:
    # The rank formula on tied scores: the CI of a perfectly separated set is exactly (1, 1), and of
    # constant scores exactly (.5, .5).
    y = np.array([True] * 5 + [False] * 5)
    assert bootstrap_auroc_ci(y, np.r_[np.ones(5), np.zeros(5)], n_boot=200) == (1.0, 1.0)
    assert bootstrap_auroc_ci(y, np.ones(10), n_boot=200) == (0.5, 0.5)
    assert bootstrap_auroc_ci(np.ones(4, dtype=bool), np.arange(4.0)) is None
    # Mid-size, tied scores: the bootstrap centre agrees with sklearn's tie-aware AUROC.
    rng = np.random.default_rng(0)
    yy = rng.random(300) < 0.5
    ss = np.round(yy + rng.normal(size=300), 1)  # many ties
    lo, hi = bootstrap_auroc_ci(yy, ss, n_boot=400) or (0.0, 0.0)
    assert lo < roc_auc_score(yy, ss) < hi


# --- few-shot -----------------------------------------------------------------------------------------------


def test_few_shot_separated_clusters_near_one_and_deterministic() -> None:
    x, y = _clusters(40, 60, 16, sep=4.0, seed=2)
    shots = (1, 4, 16)
    r = few_shot(x, y, shots=shots, draws=5, seed=11)
    assert set(r) == set(shots)
    for k in shots:
        assert r[k]["prototype"]["mean"] > 0.95
        assert r[k]["linear"]["mean"] > 0.95
        assert r[k]["prototype"]["n_draws"] == 5
        assert r[k]["prototype"]["std"] >= 0.0
    assert few_shot(x, y, shots=shots, draws=5, seed=11) == r
    # A k's numbers do not depend on which other k are requested.
    assert few_shot(x, y, shots=(4,), draws=5, seed=11)[4] == r[4]


def test_few_shot_noise_near_chance() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 16))
    y = rng.random(200) < 0.5
    r = few_shot(x, y, shots=(2, 16), draws=10, seed=0)
    for k in (2, 16):
        for clf in ("prototype", "linear"):
            assert abs(r[k][clf]["mean"] - 0.5) < 0.06


def test_few_shot_skips_k_without_enough_of_a_class() -> None:
    x, y = _clusters(5, 50, 4, sep=3.0, seed=0)
    r = few_shot(x, y, shots=(1, 4, 5, 8), draws=2)
    assert set(r) == {1, 4}  # 5 positives: k=5 would leave no positive to test on


def test_few_shot_tests_on_all_non_support_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every AUROC is computed on exactly the N - 2k studies outside the support set, with both classes.
    import cmr.eval.metrics as m

    seen: list[tuple[int, int]] = []

    def spy(y: np.ndarray, s: np.ndarray) -> float:
        seen.append((len(y), int(np.sum(y))))
        return float(roc_auc_score(y, s))

    monkeypatch.setattr(m, "roc_auc_score", spy)
    x, y = _clusters(10, 30, 4, sep=2.0, seed=0)
    few_shot(x, y, shots=(1, 3), draws=2)
    assert sorted(seen) == sorted([(38, 9)] * 4 + [(34, 7)] * 4)  # 2 classifiers x 2 draws per k


# --- retrieval ----------------------------------------------------------------------------------------------


def test_retrieval_identity() -> None:
    e = np.eye(20)
    r = retrieval(e, e)
    assert r == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "median_rank": 1.0, "mean_rank": 1.0, "n": 20}


def test_retrieval_known_ranks() -> None:
    # Gallery = identity basis; query i points at gallery (i + shift_i) first, then at i, then elsewhere.
    n = 12
    g = np.eye(n)
    q = np.zeros((n, n))
    expected = np.ones(n)
    for i in range(n):
        q[i, i] = 1.0
    # Query 0: 6 gallery items beat the true one -> rank 7. Query 1: 1 item beats it -> rank 2.
    q[0, 1:7] = 2.0
    q[1, 5] = 2.0
    expected[0], expected[1] = 7, 2
    r = retrieval(q, g)
    assert r["R@1"] == pytest.approx((n - 2) / n)
    assert r["R@5"] == pytest.approx((n - 1) / n)
    assert r["R@10"] == 1.0
    assert r["mean_rank"] == pytest.approx(expected.mean())
    assert r["median_rank"] == 1.0


def test_retrieval_reversed_and_collapsed() -> None:
    # Each query's true item is the least similar of 10: rank 10.
    g = np.eye(10)
    q = 1.0 - np.eye(10)
    r = retrieval(q, g)
    assert r["median_rank"] == 10 and r["R@5"] == 0.0 and r["R@10"] == 1.0
    # Collapsed model: all embeddings equal -> chance, not perfect: R@1 = 1/N, mean rank (N + 1) / 2.
    c = np.ones((10, 4))
    r = retrieval(c, c)
    assert r["R@1"] == pytest.approx(0.1)
    assert r["R@5"] == pytest.approx(0.5)
    assert r["mean_rank"] == pytest.approx(5.5)


def test_retrieval_chunks_agree_with_bruteforce() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(1500, 8))  # > one CHUNK of 1024 queries
    g = q + rng.normal(size=q.shape)
    r = retrieval(q, g)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    sims = qn @ gn.T
    ranks = 1 + (sims > np.diag(sims)[:, None]).sum(axis=1)
    # Agreement up to the rare near-ties (within TIE_TOL) that retrieval() counts as half a place.
    assert r["mean_rank"] == pytest.approx(ranks.mean(), abs=0.01)
    assert r["R@10"] == pytest.approx((ranks <= 10).mean(), abs=0.002)
    assert r["median_rank"] == pytest.approx(np.median(ranks), abs=0.5)


# --- clinical match -----------------------------------------------------------------------------------------


def test_clinical_match_hand_built() -> None:
    # Four studies on a line; query i retrieves by nearness. Labels: studies 0, 1 share vector A; 2 has B;
    # 3 has C. Queries equal gallery (exam -> exam).
    e = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.2]])
    lab = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    # Without excluding self, top-1 is always the query's own study: match@1 = precision@1 = 1.
    r = clinical_match(e, e, lab, k=1)
    assert r["match@k"] == 1.0 and r["precision@k"] == 1.0 and r["k"] == 1
    assert r["chance_precision"] == pytest.approx((2 / 4 + 2 / 4 + 1 / 4 + 1 / 4) / 4)
    # Excluding self: nearest other of 0 is 1 (same A), of 1 is 0 (same), of 2 is 3 (B vs C), of 3 is 2 (no).
    r = clinical_match(e, e, lab, k=1, exclude_self=True)
    assert r["match@k"] == pytest.approx(0.5)
    assert r["precision@k"] == pytest.approx(0.5)
    assert r["chance_precision"] == pytest.approx((1 / 3 + 1 / 3 + 0 + 0) / 4)
    assert r["chance_match"] == pytest.approx(r["chance_precision"])  # k = 1: the two coincide
    # k = 2 excluding self: query 0 gets {1, 2}: 1 of 2 match.
    r = clinical_match(e, e, lab, k=2, exclude_self=True)
    # top-2 others: q0 {1,2} -> 1 match; q1 {0,2} -> 1; q2 {3,1} -> 0; q3 {2,1} -> 0.
    assert r["match@k"] == pytest.approx(0.5)
    assert r["precision@k"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)
    # Chance of at least one of 2 random others matching: q0, q1 have 1 of 3 -> 1 - (2/3)(1/2) = 2/3.
    assert r["chance_match"] == pytest.approx((2 / 3 + 2 / 3) / 4)


def test_clinical_match_k_capped_and_chance_of_random_embeddings() -> None:
    rng = np.random.default_rng(1)
    lab = rng.random((400, 3)) < 0.4
    q, g = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    r = clinical_match(q, g, lab, k=10)
    # Random embeddings: measured precision/match close to their chance values.
    assert abs(r["precision@k"] - r["chance_precision"]) < 0.03
    assert abs(r["match@k"] - r["chance_match"]) < 0.08
    assert clinical_match(q[:5], g[:5], lab[:5], k=10)["k"] == 5
    assert clinical_match(q[:5], g[:5], lab[:5], k=10, exclude_self=True)["k"] == 4
