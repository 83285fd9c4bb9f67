"""Why a match: the per-view / per-number contributions sum exactly to the model's similarity, are symmetric
for exam pairs and leave out what an exam lacks."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.explain import (
    exam_parts, explain_pair, explain_text_match, explains, pair_contributions, shares, text_contributions,
)
from cmr.model.measurements import measurement_matrix
from tiny_config import TINY

NAMES = ("lvef_pct", "lvedvi_ml_m2")


@dataclass
class _Exam:  # what exam_batch reads of a cmr.dicom.Exam
    pixels: np.ndarray
    mask: np.ndarray


def _model(pooling: str = "attention") -> CMRCLIP:
    d: dict[str, Any] = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": pooling})
    return create_model(Config.from_dict(d), seed=3).eval()


@pytest.fixture(scope="module")
def model() -> CMRCLIP:
    return _model()


def _exams(model: CMRCLIP, n: int, seed: int = 0) -> list[_Exam]:
    rng = np.random.default_rng(seed)
    s = model.spec
    return [_Exam(rng.random((s.length, s.image_size, s.image_size), dtype=np.float32),
                  np.ones(s.length, bool)) for _ in range(n)]


def test_pair_contributions_sum_to_the_cosine_and_do_not_depend_on_who_asked(model: CMRCLIP) -> None:
    meas = measurement_matrix([{"lvef_pct": 30.0, "lvedvi_ml_m2": 120.0}, {"lvef_pct": 60.0}], NAMES)
    a, b = exam_parts(model, _exams(model, 2), meas)
    cos = float(a.embedding @ b.embedding)
    ab, ba = pair_contributions(a, b), pair_contributions(b, a)
    assert ab.sum() == pytest.approx(cos, abs=1e-5)
    np.testing.assert_allclose(ab, ba, atol=1e-6)
    explained = explain_pair(a, b)
    assert sum(s.share for s in explained) == pytest.approx(1.0, abs=1e-4)
    assert sum(s.contribution for s in explained) == pytest.approx(cos, abs=1e-5)
    # b has no LVEDVi: that number is a masked token and must not appear in the explanation
    assert "lvedvi_ml_m2" in {s.part for s in explain_pair(a, a)}
    assert {s.kind for s in explained} <= {"view", "measurement"}


def test_missing_view_contributes_nothing_and_the_cls_fallback_carries_an_empty_exam(model: CMRCLIP) -> None:
    ex = _exams(model, 2, seed=1)
    lge = [k for k, s in enumerate(model.spec.slots) for _ in range(s.length)]
    ex[0].mask = np.array([model.spec.slots[k].name != "lge_sax" for k in lge])
    ex[1].mask = np.zeros_like(ex[1].mask)
    with_lge_missing, empty = exam_parts(model, ex)  # no measurements at all
    parts = dict(zip(with_lge_missing.groups, np.linalg.norm(with_lge_missing.parts, axis=1)))
    assert parts["lge_sax"] == 0.0 and parts["lvef_pct"] == 0.0 and parts["cine_sax"] > 0
    names = {s.part for s in explain_pair(with_lge_missing, with_lge_missing)}
    assert "lge_sax" not in names and "cine_sax" in names
    assert [s.part for s in explain_pair(empty, empty)] == ["exam"]


def test_text_match_splits_over_the_exam_parts(model: CMRCLIP) -> None:
    (e,) = exam_parts(model, _exams(model, 1, seed=2), measurement_matrix([{"lvef_pct": 25.0}], NAMES))
    t = np.random.default_rng(0).normal(size=e.embedding.shape).astype(np.float32)
    t /= np.linalg.norm(t)
    assert text_contributions(e, t).sum() == pytest.approx(float(e.embedding @ t), abs=1e-5)
    assert sum(s.share for s in explain_text_match(e, t)) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="does not match"):
        text_contributions(e, t[:-1])


def test_shares_of_a_zero_similarity_are_zero_not_infinite() -> None:
    out = shares(np.array([0.5, -0.5, 0.0]), ("a", "b", "c"), ("view", "view", "exam"))
    assert [s.part for s in out] == ["a", "b"] and all(s.share == 0.0 for s in out)


def test_a_cls_model_says_it_cannot_explain() -> None:
    m = _model("cls")
    assert not explains(m) and explains(_model())
    with pytest.raises(ValueError, match="attention"):
        exam_parts(m, _exams(m, 1))
    assert exam_parts(m, []) == []
    assert torch.is_grad_enabled()  # the no_grad decorator does not leak
