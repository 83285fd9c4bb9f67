"""ExamHit.why from an EncodeStudy response's parts: the query's parts dotted with each hit's vector sum to
the hit's cosine, come largest first with shares summing to 1, leave out what the query lacks, and are dropped
(not an error) when the response carries none or malformed ones. Then parts stored with the index: Upsert
checks and keeps them (or, with the setting off, only checks them), SearchByText explains each hit that has
them by its own parts, and SearchByStudy by an indexed study's key explains by the query's stored parts."""

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


class _Refused(Exception):
    pass


class _RecordingContext(_Context):
    """Records the status a handler aborts with (as grpc does, the abort raises)."""

    def abort(self, code: object, message: str) -> None:
        self.status = (code, message)
        raise _Refused(message)


def _servicer(encoder: object, *, store_parts: bool = True):  # noqa: ANN202
    from cmr.dicom import ExamSpec
    from cmr.model.runtime import ModelIdentity
    from search_svc.admin.generations import Generation
    from search_svc.admin.router import Served
    from search_svc.index import ExamIndex
    from search_svc.service import SearchServicer
    from search_svc.store import open_store

    gen = Generation.new("tiny@1", D)
    index = ExamIndex(open_store(backend="client-local"), D, "secret", exams=gen.exams, reports=gen.reports)
    identity = ModelIdentity("tiny", "tiny@1", D, ExamSpec(), "cpu")
    servicer = SearchServicer(_Router(Served(gen, index)), encoder, identity, None,  # type: ignore[arg-type]
                              store_parts=store_parts)
    return servicer, index


def _search(response: encoder_pb2.EncodeStudyResponse, query: common_pb2.StudyQuery):  # noqa: ANN202
    from cmr.v1 import search_pb2
    from search_svc.index import ExamEntry

    response.model.CopyFrom(common_pb2.ModelInfo(name="tiny", version="tiny@1", embed_dim=D))
    servicer, index = _servicer(_Encoder(response))
    rng = np.random.default_rng(3)
    keys, _, _ = index.upsert([ExamEntry(study_instance_uid=f"1.2.3.{i}", image_embedding=_unit(rng),
                                         model_version="tiny@1", views=("cine_sax",)) for i in range(8)])
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


def test_a_cls_model_or_a_study_key_indexed_without_parts_leaves_why_empty() -> None:
    r = _response(np.random.default_rng(5))
    del r.parts[:]  # a CLS-pooled model
    got, _, keys = _search(r, common_pb2.StudyQuery(ref=common_pb2.StudyRef(path="/studies/S1")))
    assert got.similar_exams and all(not h.why for h in got.similar_exams)
    got, _, _ = _search(_response(np.random.default_rng(6)), common_pb2.StudyQuery(study_key=keys[0]))
    assert got.similar_exams and all(not h.why for h in got.similar_exams)


# --- parts stored with the index: Upsert, SearchByText, SearchByStudy by study_key ---------------------------
TEXT = np.array([0.5, -0.5, 0.5, 0.5, 0.0, 0.0], np.float32)  # the query text's unit vector


class _TextEncoder:
    def encode_texts_versioned(self, texts: list[str]) -> tuple[np.ndarray, str]:
        return np.stack([TEXT] * len(texts)), "tiny@1"


def _upserts(n: int, with_parts: bool, seed: int):  # noqa: ANN202
    from cmr.v1 import search_pb2

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r = _response(rng)
        out.append(search_pb2.ExamUpsert(study_instance_uid=f"1.2.{seed}.{i}", image_embedding=r.embedding,
                                         model_version="tiny@1", views=["cine_sax"],
                                         parts=r.parts if with_parts else []))
    return out


def _upsert(servicer: object, exams: list) -> list[str]:  # noqa: ANN001
    from cmr.v1 import search_pb2

    reply = servicer.Upsert(search_pb2.UpsertRequest(exams=exams), _Context())  # type: ignore[attr-defined]
    return list(reply.study_keys)


def _text(servicer: object, top_k: int):  # noqa: ANN202
    from cmr.v1 import search_pb2

    request = search_pb2.SearchByTextRequest(query="dilated left ventricle", top_k=top_k)
    return servicer.SearchByText(request, _Context())  # type: ignore[attr-defined]


def test_search_by_text_explains_each_hit_stored_with_parts_by_its_own_parts() -> None:
    servicer, _ = _servicer(_TextEncoder())
    explained = _upserts(5, True, seed=7)
    plain = _upserts(3, False, seed=8)  # written before parts were stored, or by a CLS model
    keys = _upsert(servicer, explained + plain)
    got = _text(servicer, 8)
    assert len(got.hits) == 8
    with_parts = set(keys[:5])
    for h in got.hits:
        if h.exam.study_key not in with_parts:
            assert not h.why
            continue
        assert sum(w.contribution for w in h.why) == pytest.approx(h.score, abs=5e-3)
        assert abs(h.score) < 0.01 or sum(w.share for w in h.why) == pytest.approx(1.0, abs=1e-3)
        assert "cine_4ch" not in {w.part for w in h.why}  # the exam has no 4-chamber cine: its part is 0
        sizes = [abs(w.contribution) for w in h.why]
        assert sizes == sorted(sizes, reverse=True)
        # the hit's own parts, not anybody else's: each contribution is its part . text
        src = explained[keys.index(h.exam.study_key)]
        by_name = {p.name: float(from_vector(p.vector) @ TEXT) for p in src.parts}
        for w in h.why:
            assert w.contribution == pytest.approx(by_name[w.part], abs=2e-3)


def test_search_by_study_key_explains_by_the_query_exams_stored_parts() -> None:
    from cmr.v1 import search_pb2

    servicer, _ = _servicer(_TextEncoder())
    exams = _upserts(6, True, seed=9)
    keys = _upsert(servicer, exams)
    request = search_pb2.SearchByStudyRequest(study=common_pb2.StudyQuery(study_key=keys[0]), top_k=4)
    got = servicer.SearchByStudy(request, _Context())  # type: ignore[arg-type]
    assert len(got.similar_exams) == 4 and keys[0] not in {h.exam.study_key for h in got.similar_exams}
    for h in got.similar_exams:
        assert h.why, "an indexed query stored with parts explains every hit"
        assert sum(w.contribution for w in h.why) == pytest.approx(h.score, abs=5e-3)
        assert "cine_4ch" not in {w.part for w in h.why}
    # a raw embedding query has no parts to split by
    vec = common_pb2.StudyQuery(embedding=exams[0].image_embedding)
    got = servicer.SearchByStudy(search_pb2.SearchByStudyRequest(study=vec, top_k=4),
                                 _Context())  # type: ignore[arg-type]
    assert got.similar_exams and all(not h.why for h in got.similar_exams)


def test_with_storing_off_parts_are_checked_but_not_kept() -> None:
    import grpc

    from cmr.v1 import search_pb2

    servicer, index = _servicer(_TextEncoder(), store_parts=False)
    keys = _upsert(servicer, _upserts(3, True, seed=10))
    assert index.get(keys[0], with_parts=True).payload.parts is None  # type: ignore[union-attr]
    got = _text(servicer, 3)
    assert len(got.hits) == 3 and all(not h.why for h in got.hits)
    bad = _upserts(1, True, seed=11)
    bad[0].parts[0].kind = "slice"
    ctx = _RecordingContext()
    with pytest.raises(_Refused):
        servicer.Upsert(search_pb2.UpsertRequest(exams=bad), ctx)  # type: ignore[arg-type]
    assert ctx.status[0] == grpc.StatusCode.INVALID_ARGUMENT


def _bad(change: str):  # noqa: ANN202
    """An upsert (the second of two) with one thing wrong with its parts."""
    from cmr.v1 import search_pb2

    exams = _upserts(2, True, seed=12)
    e = exams[1]
    if change == "dim":
        e.parts[2].vector.values.append(0.0)
    elif change == "nan":
        e.parts[0].vector.values[1] = float("nan")
    elif change == "too_many":
        e.parts.extend(common_pb2.EmbeddingPart(name=f"p{i}", kind="view", vector=e.parts[1].vector)
                       for i in range(64))
    elif change == "kind":
        e.parts[3].kind = "slice"
    elif change == "sum":  # parts of another exam's vector
        e.parts[0].vector.CopyFrom(exams[0].parts[0].vector)
    return search_pb2.UpsertRequest(exams=exams)


@pytest.mark.parametrize(("change", "message"), [
    ("dim", "exam 1: parts: part 'lge_sax': vector has 7 values, expected 6 (the exam vector's dimension)"),
    ("nan", "exam 1: parts: part values must be finite"),
    ("too_many", "exam 1: parts: 69 parts; an exam has at most 64"),
    ("kind", "exam 1: parts: unknown part kind(s) ['slice']"),
    ("sum", "exam 1: parts: parts do not sum to the exam's unit vector"),
])
def test_malformed_parts_are_invalid_argument_and_nothing_is_written(change: str, message: str) -> None:
    import grpc

    servicer, index = _servicer(_TextEncoder())
    ctx = _RecordingContext()
    with pytest.raises(_Refused):
        servicer.Upsert(_bad(change), ctx)  # type: ignore[arg-type]
    code, text = ctx.status
    assert code == grpc.StatusCode.INVALID_ARGUMENT and text.startswith(message), text
    assert index.count() == 0  # every exam is checked before any is written
