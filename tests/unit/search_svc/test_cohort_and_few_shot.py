"""Cohort boolean logic, paging tokens and export; few-shot classifiers - on a real (in-memory) Qdrant store."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from search_svc import cohort as C
from search_svc.few_shot import LOGISTIC, PROTOTYPE, FewShotClassifier
from search_svc.index import ExamEntry, ExamIndex
from search_svc.store import ExamFilter, open_store

DIM = 8


@pytest.fixture()
def index() -> ExamIndex:
    store = open_store(backend="client-local")
    idx = ExamIndex(store, DIM, "secret")
    rng = np.random.default_rng(0)
    idx.upsert([ExamEntry(study_instance_uid=f"1.2.3.{i}", image_embedding=rng.normal(size=DIM).astype(np.float32),
                          model_version="m@1", manufacturer="Siemens" if i % 2 else "GE MEDICAL SYSTEMS",
                          field_strength_t=1.5, views=("cine_sax",), impression=f"exam {i}") for i in range(40)])
    return idx


def _prob_by_axis(vecs: np.ndarray, phrase: str) -> np.ndarray:
    """Phrase 'axis k' = sigmoid of coordinate k: a known, exam-specific probability per phrase."""
    k = int(phrase.split()[-1])
    return 1 / (1 + np.exp(-3 * vecs[:, k] / np.linalg.norm(vecs, axis=1)))


def test_cohort_is_exactly_the_boolean_combination(index: ExamIndex) -> None:
    q = C.CohortQuery(all_of=("axis 0",), any_of=("axis 1", "axis 2"), none_of=("axis 3",), filter=ExamFilter(),
                      threshold=0.5)
    cohort = C.evaluate(q, index, _prob_by_axis)
    everyone = [r for page in index.iter_exams() for r in page]
    vecs = np.stack([r.vector for r in everyone])
    p = {ph: _prob_by_axis(vecs, ph) for ph in q.phrases}
    want = {r.payload.study_key for i, r in enumerate(everyone)
            if p["axis 0"][i] >= 0.5 and max(p["axis 1"][i], p["axis 2"][i]) >= 0.5 and p["axis 3"][i] < 0.5}
    assert {m.payload.study_key for m in cohort.members} == want and 0 < len(want) < 40
    assert [m.score for m in cohort.members] == sorted((m.score for m in cohort.members), reverse=True)
    assert cohort.scanned == 40


def test_cohort_respects_the_filter(index: ExamIndex) -> None:
    q = C.CohortQuery(all_of=("axis 0",), any_of=(), none_of=(), filter=ExamFilter(vendors=("ge",)), threshold=0.01)
    cohort = C.evaluate(q, index, _prob_by_axis)
    assert cohort.scanned == 20 and {m.payload.vendor for m in cohort.members} == {"ge"}


def test_page_tokens_belong_to_their_query() -> None:
    a = C.CohortQuery(("x",), (), (), ExamFilter(), 0.5)
    b = C.CohortQuery(("y",), (), (), ExamFilter(), 0.5)
    assert C.parse_page_token(C.page_token(a, 50), a) == 50 and C.parse_page_token("", a) == 0
    for bad, query in ((C.page_token(a, 50), b), ("%%%", a)):
        with pytest.raises(ValueError):
            C.parse_page_token(bad, query)


@pytest.mark.parametrize("kwargs, words", [(dict(all_of=(), any_of=()), "at least one phrase"),
                                           (dict(all_of=("x",), threshold=0.0), "threshold"),
                                           (dict(all_of=("x",), threshold=1.0), "threshold")])
def test_bad_queries(kwargs: dict, words: str) -> None:
    args = dict(all_of=(), any_of=(), none_of=(), filter=ExamFilter(), threshold=0.5) | kwargs
    with pytest.raises(ValueError, match=words):
        C.CohortQuery(**args)


def test_export_csv_and_parquet(index: ExamIndex) -> None:
    q = C.CohortQuery(("axis 0",), (), (), ExamFilter(), 0.3)
    cohort = C.evaluate(q, index, _prob_by_axis)
    data, name, ctype = C.export_bytes(cohort, "csv")
    table = pd.read_csv(io.BytesIO(data))
    assert name.endswith(".csv") and ctype == "text/csv" and len(table) == len(cohort.members)
    assert list(table.columns[:3]) == ["rank", "study_key", "score"] and "p[axis 0]" in table.columns
    data, name, _ = C.export_bytes(cohort, "parquet")
    assert name.endswith(".parquet") and pd.read_parquet(io.BytesIO(data)).equals(C.to_table(cohort))


@pytest.mark.parametrize("method", [PROTOTYPE, LOGISTIC])
def test_few_shot_separates_two_clusters(method: str) -> None:
    rng = np.random.default_rng(1)
    centre_a, centre_b = rng.normal(size=DIM), rng.normal(size=DIM)
    a = centre_a + 0.3 * rng.normal(size=(30, DIM))
    b = centre_b + 0.3 * rng.normal(size=(30, DIM))
    clf = FewShotClassifier(a[:4], b[:4], method)
    pa, pb = clf.probabilities(a[4:]), clf.probabilities(b[4:])
    assert pa.min() > pb.max() and np.all((0 <= pa) & (pa <= 1))
    assert pa.mean() > 0.5 > pb.mean()


def test_few_shot_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FewShotClassifier(np.ones((2, DIM)), np.zeros((0, DIM)))
    with pytest.raises(ValueError, match="method"):
        FewShotClassifier(np.ones((2, DIM)), np.ones((2, DIM)), "knn")
