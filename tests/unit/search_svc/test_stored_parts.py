"""An exam vector's embedding parts as the index stores them (search_svc.store.schema.StoredParts): a float16
matrix that round-trips through the payload, refuses what is malformed (another dimension, non-finite values,
too many parts, an unknown kind, parts of another vector), is stored once per exam (on the exam point, not its
report point) within a known size, and comes back only from reads that ask for it."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from cmr.rpc.keys import study_key
from cmr.rpc.messages import to_vector
from cmr.v1 import common_pb2
from search_svc.index import ExamEntry, ExamIndex
from search_svc.store import ExamPayload, StoredParts, VectorPoint, open_store
from search_svc.store.schema import MAX_PARTS, PARTS_SUM_TOLERANCE
from search_svc.why import stored_parts, text_why

D = 256  # the shipped small config: 6 slots + 8 measurement tokens + the CLS part
NAMES = ("cine_sax", "cine_4ch", "cine_2ch", "cine_3ch", "lge_sax", "lge_lax", "lvef_pct", "rvef_pct",
         "lvedvi_ml_m2", "lvesvi_ml_m2", "rvedvi_ml_m2", "lv_mass_index_g_m2", "rv_lv_edv_ratio",
         "lv_mass_edv_ratio", "exam")
KINDS = ("view",) * 6 + ("measurement",) * 8 + ("exam",)
G = len(NAMES)


def split(rng: np.random.Generator, dim: int = D, g: int = G) -> tuple[np.ndarray, np.ndarray]:
    """(unit vector [D], parts [G, D] summing to it): parts of the size a model makes (norms ~0.3)."""
    parts = rng.normal(size=(g, dim)).astype(np.float32)
    parts /= np.linalg.norm(parts.sum(axis=0))
    return parts.sum(axis=0), parts


def wire(parts: np.ndarray, names: tuple[str, ...] = NAMES,
         kinds: tuple[str, ...] = KINDS) -> list[common_pb2.EmbeddingPart]:
    return [common_pb2.EmbeddingPart(name=n, kind=k, vector=to_vector(p))
            for n, k, p in zip(names, kinds, parts, strict=True)]


def payload(parts: StoredParts | None) -> ExamPayload:
    return ExamPayload(study_key=study_key("1.2.3.4", "s"), vendor="ge", model_version="cmr-clip-small@1",
                       parts=parts)


# --- the stored form ------------------------------------------------------------------------------------------
def test_parts_round_trip_through_the_json_payload_as_float16() -> None:
    vec, parts = split(np.random.default_rng(0))
    stored = StoredParts.of(NAMES, KINDS, parts)
    assert stored.dim == D and stored.matrix.shape == (G, D) and stored.matrix.dtype == np.float16
    np.testing.assert_array_equal(stored.matrix, parts.astype(np.float16))
    p = payload(stored)
    back = ExamPayload.from_dict(json.loads(json.dumps(p.to_dict())))  # what an engine stores is JSON
    assert back == p and back.parts == stored and hash(back) == hash(p)
    assert set(p.to_dict()["parts"]) == {"names", "kinds", "float16"}
    assert base64.b64decode(p.to_dict()["parts"]["float16"]) == parts.astype("<f2").tobytes()
    assert "parts" not in payload(None).to_dict()  # a point without parts stores no key at all
    VectorPoint.for_exam(p, vec)  # parts summing to their vector are accepted


def test_float16_parts_split_a_cosine_within_the_tolerance() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        vec, parts = split(rng)
        stored = StoredParts.of(NAMES, KINDS, parts)
        stored.check_sums_to(vec)
        t = rng.normal(size=D)
        t /= np.linalg.norm(t)
        assert abs(float(stored.contributions(t).sum()) - float(vec @ t)) <= PARTS_SUM_TOLERANCE
        why = text_why(stored, t.astype(np.float32))
        assert sum(w.contribution for w in why) == pytest.approx(float(vec @ t), abs=PARTS_SUM_TOLERANCE)
        assert [abs(w.contribution) for w in why] == sorted((abs(w.contribution) for w in why), reverse=True)


def test_parts_of_another_vector_are_refused_by_the_point() -> None:
    rng = np.random.default_rng(2)
    vec, parts = split(rng)
    other, _ = split(rng)
    assert stored_parts(wire(parts), vec) == StoredParts.of(NAMES, KINDS, parts)
    with pytest.raises(ValueError, match="parts do not sum to the exam's unit vector"):
        stored_parts(wire(parts), other)  # what Upsert and WriteGeneration check, kept or not
    stored = StoredParts.of(NAMES, KINDS, parts)
    with pytest.raises(ValueError, match="parts do not sum to the exam's unit vector"):
        VectorPoint.for_exam(payload(stored), other)
    # a scaled vector has the same direction: its parts are still the unit vector's
    VectorPoint.for_exam(payload(stored), 3.0 * vec)
    # the smallest change the check must see: one part nudged by a hundredth of the vector
    nudged = parts.copy()
    nudged[0] += 0.01 * vec
    with pytest.raises(ValueError, match="sum to"):
        VectorPoint.for_exam(payload(StoredParts.of(NAMES, KINDS, nudged)), vec)


def test_parts_of_another_dimension_are_refused() -> None:
    rng = np.random.default_rng(3)
    vec, parts = split(rng)
    with pytest.raises(ValueError, match=r"part 'cine_sax': vector has 256 values, expected 512"):
        stored_parts(wire(parts), np.ones(512, np.float32))
    small = StoredParts.of(NAMES, KINDS, parts[:, :128])
    with pytest.raises(ValueError, match="parts are 128-d; the exam vector has 256 dimensions"):
        VectorPoint.for_exam(payload(small), vec)
    with pytest.raises(ValueError, match="one length"):
        StoredParts.of(NAMES, KINDS, parts[0])  # one vector, not [G, D]


def test_non_finite_parts_are_refused() -> None:
    _, parts = split(np.random.default_rng(4))
    bad = parts.copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="finite"):
        stored_parts(wire(bad), parts.sum(axis=0))
    huge = parts.copy()
    huge[0, 0] = 1e6  # finite in float32, infinite in float16
    with pytest.raises(ValueError, match="float16 range"):
        StoredParts.of(NAMES, KINDS, huge)
    inf_bytes = np.full((G, D), np.inf, "<f2").tobytes()  # a stored payload that says inf
    with pytest.raises(ValueError, match="finite"):
        StoredParts.from_dict({"names": list(NAMES), "kinds": list(KINDS),
                               "float16": base64.b64encode(inf_bytes).decode()})


def test_too_many_parts_are_refused_before_decoding() -> None:
    rng = np.random.default_rng(5)
    _, parts = split(rng, g=MAX_PARTS + 1)
    names = tuple(f"part_{i}" for i in range(MAX_PARTS + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_PARTS}"):
        stored_parts(wire(parts, names, ("view",) * len(names)), parts.sum(axis=0))
    with pytest.raises(ValueError, match=f"1 to {MAX_PARTS}"):
        StoredParts.of(names, ("view",) * len(names), parts)
    vec, parts = split(rng, g=MAX_PARTS)  # the bound itself is allowed
    names = names[:MAX_PARTS]
    VectorPoint.for_exam(payload(StoredParts.of(names, ("view",) * MAX_PARTS, parts)), vec)


def test_unknown_kinds_names_and_malformed_payloads_are_refused() -> None:
    vec, parts = split(np.random.default_rng(6))
    with pytest.raises(ValueError, match=r"unknown part kind\(s\) \['slice'\]"):
        stored_parts(wire(parts, kinds=("slice",) + KINDS[1:]), vec)
    with pytest.raises(ValueError, match="repeat"):
        StoredParts.of(("cine_sax",) * G, KINDS, parts)
    with pytest.raises(ValueError, match="lower-case token"):
        StoredParts.of(("Cine SAX",) + NAMES[1:], KINDS, parts)
    good = StoredParts.of(NAMES, KINDS, parts).to_dict()
    with pytest.raises(ValueError, match="not base64"):
        StoredParts.from_dict({**good, "float16": "not base64!"})
    with pytest.raises(ValueError, match="exactly the keys"):
        StoredParts.from_dict({**good, "dim": D})
    with pytest.raises(ValueError, match="float16 rows"):
        StoredParts.from_dict({**good, "float16": base64.b64encode(b"\x00" * 3).decode()})
    with pytest.raises(ValueError, match="parts must be StoredParts"):
        payload("parts")  # type: ignore[arg-type]
    assert stored_parts([], vec) is None  # a CLS model sends none


# --- stored once, within a known size, read only when asked --------------------------------------------------
def test_parts_are_stored_once_per_exam_within_the_size_bound() -> None:
    """The exam point carries the parts; its report point (the same payload otherwise) does not. The stored
    parts cost base64 of 2*G*D bytes plus the names: 10.5 KB at G=15, D=256 (docs/services/search.md)."""
    rng = np.random.default_rng(7)
    index = ExamIndex(open_store(backend="client-local"), D, "secret")
    entries = []
    for i in range(3):
        vec, parts = split(rng)
        entries.append(ExamEntry(study_instance_uid=f"1.2.3.{i}", image_embedding=vec, model_version="m@1",
                                 report_embedding=split(rng)[0], impression=f"impression {i}",
                                 views=("cine_sax",), parts=StoredParts.of(NAMES, KINDS, parts)))
    keys, created, _ = index.upsert(entries)
    assert created == 3
    client = index.store.client  # type: ignore[attr-defined]
    exams = {p.payload["study_key"]: p.payload for p in client.scroll(index.exams, limit=10)[0]}
    reports = {p.payload["study_key"]: p.payload for p in client.scroll(index.reports, limit=10)[0]}
    bound = 4 * -(-2 * G * D // 3) + sum(len(n) + len(k) + 8 for n, k in zip(NAMES, KINDS)) + 64
    assert bound < 10_800
    for key in keys:
        assert "parts" not in reports[key]
        size = len(json.dumps(exams[key]["parts"]))
        assert 2 * G * D < size <= bound
        assert len(json.dumps(exams[key])) - len(json.dumps(reports[key])) == size + len(', "parts": ')
    # read back: only when asked
    assert index.get(keys[0]).payload.parts is None  # type: ignore[union-attr]
    assert index.get(keys[0], with_parts=True).payload.parts == entries[0].parts  # type: ignore[union-attr]
    assert all(h.payload.parts is None for h in index.search_exams(entries[1].image_embedding, 3))
    hits = index.search_exams(entries[1].image_embedding, 3, with_parts=True)
    assert {h.payload.study_key: h.payload.parts for h in hits} == {k: e.parts for k, e in zip(keys, entries)}
    assert all(r.payload.parts is None for page in index.iter_exams() for r in page)
