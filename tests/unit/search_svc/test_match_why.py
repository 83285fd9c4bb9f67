"""ExamHit.why from an EncodeStudy response's parts: the query's parts dotted with each hit's vector sum to
the hit's cosine, come largest first with shares summing to 1, leave out what the query lacks, and are dropped
(not an error) when the response carries none or malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.rpc.messages import from_vector, to_vector
from cmr.v1 import common_pb2, encoder_pb2
from encoder_svc.client import StudyEncoding
from search_svc.why import QueryParts

D = 6
GROUPS = ("cine_sax", "cine_4ch", "lge_sax", "lvef_pct", "exam")
KINDS = ("view", "view", "view", "measurement", "exam")


def _response(rng: np.random.Generator) -> encoder_pb2.EncodeStudyResponse:
    """What EncodeStudy answers for an attention-pooling model: parts summing to the unit embedding. The
    query has no 4-chamber cine: that part is exactly zero."""
    parts = rng.normal(size=(len(GROUPS), D))
    parts[1] = 0.0
    parts /= np.linalg.norm(parts.sum(axis=0))
    emb = parts.sum(axis=0)
    return encoder_pb2.EncodeStudyResponse(
        embedding=to_vector(emb),
        parts=[common_pb2.EmbeddingPart(name=g, kind=k, vector=to_vector(p))
               for g, k, p in zip(GROUPS, KINDS, parts, strict=True)])


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=D).astype(np.float32)
    return v / np.linalg.norm(v)


def test_why_sums_to_the_hit_cosine_largest_first_without_the_missing_view() -> None:
    rng = np.random.default_rng(1)
    r = _response(rng)
    enc = StudyEncoding(from_vector(r.embedding), r.model, r.study, None, tuple(r.parts))
    q = QueryParts.of(enc.parts, D)
    assert q is not None and q.groups == GROUPS and q.kinds == KINDS
    for _ in range(3):
        hit = _unit(rng)
        why = q.why(hit)
        cosine = float(enc.embedding @ hit)
        assert sum(w.contribution for w in why) == pytest.approx(cosine, abs=1e-5)
        assert sum(w.share for w in why) == pytest.approx(1.0, abs=1e-4)
        assert "cine_4ch" not in {w.part for w in why}
        sizes = [abs(w.contribution) for w in why]
        assert sizes == sorted(sizes, reverse=True)
        assert {w.kind for w in why} <= {"view", "measurement", "exam"}


def test_no_parts_no_vector_or_malformed_parts_give_no_why() -> None:
    rng = np.random.default_rng(2)
    assert QueryParts.of((), D) is None  # a CLS-pooled model answers no parts
    r = _response(rng)
    q = QueryParts.of(r.parts, D)
    assert q is not None and q.why(None) == []  # the store gave no vector for the hit
    assert QueryParts.of(r.parts, D + 1) is None  # parts of another model's width
    bad = list(r.parts)
    bad[0] = common_pb2.EmbeddingPart(name="cine_sax", kind="slice", vector=bad[0].vector)
    assert QueryParts.of(bad, D) is None


# --- SearchByStudy over a real (in-memory) index and a fake encoder --------------------------------------
class _Router:
    def __init__(self, served: object) -> None:
        self.served = served

    def active(self) -> object:
        return self.served

    def for_version(self, version: str) -> object:
        return self.served


class _Encoder:
    def __init__(self, response: encoder_pb2.EncodeStudyResponse) -> None:
        self.r = response

    def encode_study_ref(self, path: str | None = None, uri: str | None = None) -> StudyEncoding:
        r = self.r
        return StudyEncoding(from_vector(r.embedding), r.model, r.study, None, tuple(r.parts))


class _Context:
    def code(self) -> None:
        return None

    def abort(self, code: object, message: str) -> None:
        raise AssertionError(f"{code}: {message}")


def _search(response: encoder_pb2.EncodeStudyResponse, query: common_pb2.StudyQuery):  # noqa: ANN202
    from cmr.dicom import ExamSpec
    from cmr.model.runtime import ModelIdentity
    from cmr.v1 import search_pb2
    from search_svc.admin.generations import Generation
    from search_svc.admin.router import Served
    from search_svc.index import ExamEntry, ExamIndex
    from search_svc.service import SearchServicer
    from search_svc.store import open_store

    gen = Generation.new("tiny@1", D)
    index = ExamIndex(open_store(backend="client-local"), D, "secret", exams=gen.exams, reports=gen.reports)
    rng = np.random.default_rng(3)
    keys, _, _ = index.upsert([ExamEntry(study_instance_uid=f"1.2.3.{i}", image_embedding=_unit(rng),
                                         model_version="tiny@1", views=("cine_sax",)) for i in range(8)])
    response.model.CopyFrom(common_pb2.ModelInfo(name="tiny", version="tiny@1", embed_dim=D))
    identity = ModelIdentity("tiny", "tiny@1", D, ExamSpec(), "cpu")
    servicer = SearchServicer(_Router(Served(gen, index)), _Encoder(response),  # type: ignore[arg-type]
                              identity, None)
    request = search_pb2.SearchByStudyRequest(study=query, top_k=4)
    got = servicer.SearchByStudy(request, _Context())  # type: ignore[arg-type]
    return got, index, keys


def test_search_by_study_ref_fills_why_for_every_hit() -> None:
    r = _response(np.random.default_rng(4))
    got, index, _ = _search(r, common_pb2.StudyQuery(ref=common_pb2.StudyRef(path="/studies/S1")))
    assert len(got.similar_exams) == 4
    for h in got.similar_exams:
        assert h.why, "an attention-pooling query explains every hit"
        assert sum(w.contribution for w in h.why) == pytest.approx(h.score, abs=1e-4)
        assert sum(w.share for w in h.why) == pytest.approx(1.0, abs=1e-3)
        assert "cine_4ch" not in {w.part for w in h.why}


def test_search_by_study_key_or_a_cls_model_leaves_why_empty() -> None:
    r = _response(np.random.default_rng(5))
    del r.parts[:]  # a CLS-pooled model
    got, _, keys = _search(r, common_pb2.StudyQuery(ref=common_pb2.StudyRef(path="/studies/S1")))
    assert got.similar_exams and all(not h.why for h in got.similar_exams)
    got, _, _ = _search(_response(np.random.default_rng(6)), common_pb2.StudyQuery(study_key=keys[0]))
    assert got.similar_exams and all(not h.why for h in got.similar_exams)
