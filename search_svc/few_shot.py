"""Few-shot classification from labelled example exams: a prototype classifier (cosine to the mean positive
minus cosine to the mean negative) or a logistic probe on the vectors, both giving probabilities."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

PROTOTYPE = "prototype"
LOGISTIC = "logistic"
UNCALIBRATED_SCALE = 0.05


def _unit(x: NDArray[np.floating]) -> NDArray[np.float64]:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class FewShotClassifier:
    def __init__(self, positives: NDArray[np.floating], negatives: NDArray[np.floating], method: str = PROTOTYPE) -> None:
        if len(positives) < 1 or len(negatives) < 1:
            raise ValueError("few-shot needs at least one positive and one negative example")
        if method not in (PROTOTYPE, LOGISTIC):
            raise ValueError(f"unknown few-shot method {method!r}")
        self.method = method
        pos, neg = _unit(positives), _unit(negatives)
        self._pos_proto = _unit(pos.mean(0))
        self._neg_proto = _unit(neg.mean(0))
        x = np.concatenate([pos, neg])
        y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        if method == LOGISTIC:
            self._lr = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, y)
            return
        # Prototype: Platt-scale the margin on the examples' own leave-one-out margins when there are enough
        # of both classes; otherwise a fixed slope (the ranking is right, the probability only indicative).
        self._a, self._b = 1.0 / UNCALIBRATED_SCALE, 0.0
        if len(pos) >= 3 and len(neg) >= 3:
            loo = np.array([self._loo_margin(x, y, i) for i in range(len(x))])
            lr = LogisticRegression(C=1e2, max_iter=1000, class_weight="balanced").fit(loo[:, None], y)
            if lr.coef_[0, 0] > 0:  # a few unlucky examples can give a slope <= 0: keep the ranking then
                self._a, self._b = float(lr.coef_[0, 0]), float(lr.intercept_[0])

    @staticmethod
    def _loo_margin(x: NDArray[np.float64], y: NDArray[np.bool_], i: int) -> float:
        keep = np.arange(len(x)) != i
        pos, neg = x[keep & y], x[keep & ~y]
        if len(pos) == 0 or len(neg) == 0:
            return 0.0
        return float(x[i] @ _unit(pos.mean(0)) - x[i] @ _unit(neg.mean(0)))

    def probabilities(self, exams: NDArray[np.floating]) -> NDArray[np.float64]:
        x = _unit(np.atleast_2d(exams))
        if self.method == LOGISTIC:
            return self._lr.predict_proba(x)[:, 1]
        margin = x @ self._pos_proto - x @ self._neg_proto
        return 1.0 / (1.0 + np.exp(-np.clip(self._a * margin + self._b, -60, 60)))
