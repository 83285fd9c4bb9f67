"""Both store engines (Qdrant Edge, qdrant-client local mode) answer every call the same way, and right:
against numpy exact cosine, against the Python meaning of each filter, and against each other."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from cmr.rpc.keys import point_id
from search_svc.store import (
    CollectionNotFoundError,
    DimensionMismatchError,
    ExamFilter,
    MeasureRange,
    IndexParams,
    Quantization,
    ScoredHit,
    StoreError,
    VectorPoint,
    VectorStore,
)
from search_svc.store.schema import PAYLOAD_INDEXES
from store_cases import BACKENDS, DIM, exact_top, exam_points, make_store, matches, normalised, with_parts

QUERY_SEED = 7


def queries(points: list[VectorPoint], n: int = 12) -> np.ndarray:
    """Queries near the data (perturbed points), as real queries are."""
    rng = np.random.default_rng(QUERY_SEED)
    base = normalised(points)[rng.choice(len(points), n, replace=False)]
    return (base + 0.3 * rng.normal(size=base.shape) / np.sqrt(DIM)).astype(np.float32)


def overlap(hits: list[ScoredHit], expected: list[str]) -> float:
    return len({h.id for h in hits} & set(expected)) / len(expected)


def filter_cases(points: list[VectorPoint]) -> dict[str, ExamFilter]:
    """Every filter field alone, and combinations; date bounds fall on stored dates to test inclusiveness."""
    dated = sorted(p.payload.study_date for p in points if p.payload.study_date)
    lo, hi = dated[len(dated) // 4], dated[len(dated) // 2]
    excluded = tuple(p.payload.study_key for p in points[:40])
    return {
        "vendor": ExamFilter(vendors=("siemens",)),
        "vendors": ExamFilter(vendors=("ge", "philips")),
        "field_strength": ExamFilter(field_strengths_t=(3.0,)),
        "field_strengths": ExamFilter(field_strengths_t=(1.5, 0.55)),
        "date_from": ExamFilter(date_from=lo),
        "date_to": ExamFilter(date_to=hi),
        "date_range": ExamFilter(date_from=lo, date_to=hi),
        "one_day": ExamFilter(date_from=lo, date_to=lo),
        "views_all": ExamFilter(views_all=("cine_sax", "lge_sax")),
        "labels_all": ExamFilter(labels_all=("lge", "lv_dysfunction")),
        "labels_none": ExamFilter(labels_none=("lge", "pericardial_effusion")),
        "study_keys_none": ExamFilter(study_keys_none=excluded),
        "vendor_and_strength": ExamFilter(vendors=("siemens", "ge"), field_strengths_t=(1.5,)),
        "cohort": ExamFilter(vendors=("siemens", "ge", "philips"), field_strengths_t=(1.5, 3.0), date_from=lo,
                             views_all=("lge_sax",), labels_all=("lge",), labels_none=("lv_hypertrophy",),
                             study_keys_none=excluded),
        "nothing_matches": ExamFilter(labels_all=("lge",), labels_none=("lv_dilation",), vendors=("canon",),
                                      field_strengths_t=(7.0,)),
        "empty": ExamFilter(),
        # measurement ranges: closed bounds on stored values (0.5 grid), open ends, absent values never match
        "lvef_below_35": ExamFilter(measurements=(MeasureRange("lvef_pct", max=35.0),)),
        "lvef_at_least_50": ExamFilter(measurements=(MeasureRange("lvef_pct", min=50.0),)),
        "lvedv_range": ExamFilter(measurements=(MeasureRange("lvedv_ml", 150.0, 220.5),)),
        "one_value": ExamFilter(measurements=(MeasureRange("lvef_pct", 40.0, 40.0),)),
        "indexed_value": ExamFilter(measurements=(MeasureRange("lvedvi_ml_m2", max=100.0),)),  # half lack it
        "measured_at_all": ExamFilter(measurements=(MeasureRange("lvedv_ml"),)),
        "two_ranges": ExamFilter(measurements=(MeasureRange("lvef_pct", max=45.0), MeasureRange("lv_mass_g", 100.0))),
        "lvef_and_vendor": ExamFilter(vendors=("siemens", "ge"), labels_none=("lge",),
                                      measurements=(MeasureRange("lvef_pct", max=35.0),)),
        "never_measured_value": ExamFilter(measurements=(MeasureRange("rvef_pct", max=100.0),)),
    }


# --- writes and reads ---------------------------------------------------------------------------------------
def test_upsert_then_get_returns_payloads_and_normalised_vectors(loaded: VectorStore,
                                                                 points: list[VectorPoint]) -> None:
    wanted = [points[5].id, point_id("f" * 32), points[2].id]  # a missing id in the middle is left out
    records = loaded.get("exams", wanted, with_vectors=True)
    assert [r.id for r in records] == [points[5].id, points[2].id]
    for record, point in zip(records, (points[5], points[2])):
        assert record.payload == point.payload
        assert record.vector is not None
        np.testing.assert_allclose(record.vector, point.vector / np.linalg.norm(point.vector), atol=1e-5)
    assert loaded.get("exams", [points[0].id])[0].vector is None  # vectors only when asked
    assert loaded.count("exams") == len(points)


def test_upsert_of_the_same_id_overwrites(loaded: VectorStore, points: list[VectorPoint]) -> None:
    old = points[10]
    new_payload = dataclasses.replace(old.payload, labels=("lge",), impression="revised")
    new_vector = -old.vector
    assert loaded.upsert("exams", [VectorPoint(old.id, new_vector, new_payload)] * 2) == 2
    assert loaded.count("exams") == len(points)
    [record] = loaded.get("exams", [old.id], with_vectors=True)
    assert record.payload == new_payload
    np.testing.assert_allclose(record.vector, new_vector / np.linalg.norm(new_vector), atol=1e-5)
    assert loaded.search("exams", new_vector, 1, exact=True)[0].id == old.id


def test_delete_returns_how_many_existed(loaded: VectorStore, points: list[VectorPoint]) -> None:
    ids = [points[0].id, points[1].id, point_id("0" * 32)]
    assert loaded.delete("exams", ids) == 2
    assert loaded.delete("exams", ids) == 0
    assert loaded.delete("exams", []) == 0
    assert loaded.count("exams") == len(points) - 2
    assert loaded.get("exams", ids) == []
    assert points[0].id not in {h.id for h in loaded.search("exams", points[0].vector, 5, exact=True)}


# --- search -------------------------------------------------------------------------------------------------
def test_exact_search_equals_numpy(loaded: VectorStore, points: list[VectorPoint]) -> None:
    data = normalised(points)
    for q in queries(points):
        hits = loaded.search("exams", q, 10, exact=True)
        assert [h.id for h in hits] == exact_top(points, q, 10)
        expected = data @ (q / np.linalg.norm(q))
        by_id = {p.id: i for i, p in enumerate(points)}
        np.testing.assert_allclose([h.score for h in hits], [expected[by_id[h.id]] for h in hits], atol=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(h.payload == points[by_id[h.id]].payload for h in hits)


def test_search_offset_pages_the_ranking(loaded: VectorStore, points: list[VectorPoint]) -> None:
    q = queries(points)[0]
    first = [h.id for h in loaded.search("exams", q, 5, exact=True)]
    second = [h.id for h in loaded.search("exams", q, 5, offset=5, exact=True)]
    assert first + second == exact_top(points, q, 10)


def test_approximate_search_has_high_recall(loaded: VectorStore, points: list[VectorPoint],
                                            backend: str) -> None:
    info = loaded.collection_info("exams")
    if backend == "edge":
        assert info.indexed_vectors == len(points)  # optimize() built the HNSW graph that is searched here
    for ef in (None, 200):  # the store's default, and a per-query override
        recalls = [overlap(loaded.search("exams", q, 10, hnsw_ef=ef), exact_top(points, q, 10))
                   for q in queries(points)]
        assert np.mean(recalls) >= 0.95


def test_int8_quantized_edge_search(tmp_path: Path, points: list[VectorPoint]) -> None:
    store = make_store("edge", tmp_path / "q", IndexParams(quantization=Quantization.INT8))
    with store:
        assert store.ensure_collection("exams", DIM).quantization is Quantization.INT8
        store.upsert("exams", points)
        store.optimize("exams")
        recalls = []
        for q in queries(points):
            assert [h.id for h in store.search("exams", q, 10, exact=True)] == exact_top(points, q, 10)
            recalls.append(overlap(store.search("exams", q, 10), exact_top(points, q, 10)))
        assert np.mean(recalls) >= 0.95


def test_points_written_after_the_index_build_are_found(loaded: VectorStore) -> None:
    [late] = exam_points(1, seed=99)
    loaded.upsert("exams", [late])
    assert loaded.search("exams", late.vector, 1)[0].id == late.id  # not exact: HNSW + the un-indexed tail


# --- filters ------------------------------------------------------------------------------------------------
def test_every_filter_counts_scrolls_and_searches_as_its_definition(loaded: VectorStore,
                                                                    points: list[VectorPoint]) -> None:
    q = queries(points)[1]
    for name, f in filter_cases(points).items():
        keep = [matches(p.payload, f) for p in points]
        expected_ids = {p.id for p, k in zip(points, keep) if k}
        assert loaded.count("exams", f) == len(expected_ids), name
        scrolled, token = loaded.scroll("exams", f, limit=len(points))
        assert token is None and {r.id for r in scrolled} == expected_ids, name
        assert all(matches(r.payload, f) for r in scrolled), name
        hits = loaded.search("exams", q, 15, f, exact=True)
        assert [h.id for h in hits] == exact_top(points, q, 15, keep), name
        approximate = loaded.search("exams", q, 15, f)
        assert all(h.id in expected_ids for h in approximate), name
    assert 0 < loaded.count("exams", filter_cases(points)["cohort"]) < len(points) // 4  # not vacuous
    assert loaded.count("exams", filter_cases(points)["nothing_matches"]) == 0
    cases = filter_cases(points)
    measured = sum(p.payload.measurements is not None and p.payload.measurements.get("lvedv_ml") is not None
                   for p in points)
    assert 0 < measured < len(points) and loaded.count("exams", cases["measured_at_all"]) == measured
    assert 0 < loaded.count("exams", cases["lvef_below_35"]) < measured
    assert 0 < loaded.count("exams", cases["one_value"])  # a closed bound includes the value itself
    assert 0 < loaded.count("exams", cases["indexed_value"]) < loaded.count("exams", cases["measured_at_all"]) // 2
    assert loaded.count("exams", cases["never_measured_value"]) == 0


def test_facet_counts_each_indexed_keyword_value_as_the_payloads_say(loaded: VectorStore,
                                                                    points: list[VectorPoint]) -> None:
    """Stats lists the model versions in an index from the field's index (no payload scan): exact per value."""
    from collections import Counter

    assert loaded.facet("exams", "model_version") == dict(Counter(p.payload.model_version for p in points))
    assert loaded.facet("exams", "vendor") == dict(Counter(p.payload.vendor for p in points))
    assert len(loaded.facet("exams", "vendor", limit=1)) == 1


def test_scroll_visits_every_point_exactly_once(loaded: VectorStore, points: list[VectorPoint]) -> None:
    for f in (None, ExamFilter(field_strengths_t=(1.5,))):
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page, token = loaded.scroll("exams", f, limit=37, offset_token=token)
            seen += [r.id for r in page]
            pages += 1
            if token is None:
                break
        expected = {p.id for p in points if f is None or matches(p.payload, f)}
        assert len(seen) == len(set(seen)) == len(expected) and set(seen) == expected
        assert pages >= len(expected) // 37


# --- errors -------------------------------------------------------------------------------------------------
def test_dimension_and_argument_errors(loaded: VectorStore, points: list[VectorPoint]) -> None:
    wrong = VectorPoint(points[0].id, np.ones(DIM + 1, np.float32), points[0].payload)
    with pytest.raises(DimensionMismatchError, match=f"{DIM + 1} dimensions.*{DIM}-d"):
        loaded.upsert("exams", [wrong])
    with pytest.raises(ValueError, match="query vector has 3 dimensions"):
        loaded.search("exams", [1.0, 0.0, 0.0], 5)
    with pytest.raises(DimensionMismatchError, match=f"holds {DIM}-d vectors; asked for 512-d"):
        loaded.ensure_collection("exams", 512)
    with pytest.raises(ValueError, match="all zeros"):
        loaded.search("exams", np.zeros(DIM), 5)
    with pytest.raises(ValueError, match="NaN"):
        loaded.search("exams", np.full(DIM, np.nan), 5)
    for top_k in (0, 1001, 2.5):
        with pytest.raises(ValueError, match="top_k"):
            loaded.search("exams", points[0].vector, top_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="offset"):
        loaded.search("exams", points[0].vector, 5, offset=-1)
    with pytest.raises(ValueError, match="hnsw_ef"):
        loaded.search("exams", points[0].vector, 5, hnsw_ef=0)
    with pytest.raises(ValueError, match="scroll limit"):
        loaded.scroll("exams", limit=0)
    with pytest.raises(ValueError, match="UUID"):
        loaded.scroll("exams", offset_token="page-2")
    with pytest.raises(CollectionNotFoundError, match="'reports' does not exist"):
        loaded.search("reports", points[0].vector, 5)
    with pytest.raises(ValueError, match="collection name"):
        loaded.ensure_collection("../etc", DIM)
    assert loaded.count("exams") == len(points)  # nothing half-written


def test_collections_are_listed_checked_and_dropped(store: VectorStore, backend: str) -> None:
    info = store.ensure_collection("reports", 8)
    assert (info.name, info.dim, info.points, info.backend) == ("reports", 8, 0, backend)
    if backend == "edge":  # local mode has no payload indexes (it scans); a server reports them like Edge
        assert set(info.payload_indexes) == set(PAYLOAD_INDEXES)
        assert info.payload_indexes["study_date"] == "datetime"
        assert info.payload_indexes["vendor"] == "keyword"
    assert store.ensure_collection("reports", 8).dim == 8  # idempotent
    assert store.collection_exists("reports") and not store.collection_exists("exams")
    assert store.list_collections() == ["reports"]
    assert store.drop_collection("reports") is True
    assert store.drop_collection("reports") is False
    assert store.list_collections() == []


def test_closed_store_refuses_calls(store: VectorStore) -> None:
    store.ensure_collection("exams", DIM)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.count("exams")


# --- embedding parts ------------------------------------------------------------------------------------------
def test_parts_are_stored_and_read_back_only_when_asked(backend: str, tmp_path: Path) -> None:
    """Parts round-trip through get, search and scroll when asked for, are left out otherwise, leave filters and
    scores alone, and survive a close and reopen."""
    points = with_parts(exam_points(60, seed=3))
    by_id = {p.id: p.payload for p in points}
    bare = {i: dataclasses.replace(pl, parts=None) for i, pl in by_id.items()}
    ids = list(by_id)
    q = queries(points, 1)[0]
    f = ExamFilter(views_all=("lge_sax",))
    with make_store(backend, tmp_path / "db") as store:
        store.ensure_collection("exams", DIM)
        store.upsert("exams", points)
        store.optimize("exams")
        assert [r.payload for r in store.get("exams", ids)] == [bare[i] for i in ids]
        assert [r.payload for r in store.get("exams", ids, with_parts=True)] == [by_id[i] for i in ids]
        plain = store.search("exams", q, 20, f, exact=True)
        hits = store.search("exams", q, 20, f, exact=True, with_parts=True, with_vectors=True)
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in plain]
        assert exact_top(points, q, 20, [matches(p.payload, f) for p in points]) == [h.id for h in hits]
        assert all(h.payload == bare[h.id] for h in plain) and all(h.payload == by_id[h.id] for h in hits)
        assert sum(h.payload.parts is not None for h in hits) >= 5  # both kinds of point among the hits
        for h in hits:  # what SearchByText explains with: the stored parts split the score
            if h.payload.parts is not None:
                unit_q = q / np.linalg.norm(q)
                assert float(h.payload.parts.contributions(unit_q).sum()) == pytest.approx(h.score, abs=5e-3)
        page, _ = store.scroll("exams", limit=100, with_parts=True)
        assert {r.id: r.payload for r in page} == by_id
        assert {r.id: r.payload for r in store.scroll("exams", limit=100)[0]} == bare
        assert store.count("exams", f) == sum(matches(p.payload, f) for p in points)
    with make_store(backend, tmp_path / "db") as store:
        assert [r.payload for r in store.get("exams", ids, with_parts=True)] == [by_id[i] for i in ids]


def test_both_engines_store_the_same_parts(tmp_path: Path) -> None:
    points = with_parts(exam_points(20, seed=4))
    stores = [make_store(b, tmp_path / b) for b in BACKENDS]
    try:
        got = []
        for s in stores:
            s.ensure_collection("exams", DIM)
            s.upsert("exams", points)
            got.append([r.payload.to_dict() for r in s.get("exams", [p.id for p in points], with_parts=True)])
        assert got[0] == got[1] == [p.payload.to_dict() for p in points]
    finally:
        for s in stores:
            s.close()


# --- persistence, concurrency, both engines -----------------------------------------------------------------
def test_close_and_reopen_gives_the_same_answers(backend: str, tmp_path: Path,
                                                 points: list[VectorPoint]) -> None:
    f = filter_cases(points)["vendor_and_strength"]
    qs = queries(points, 5)
    with make_store(backend, tmp_path / "db") as store:
        store.ensure_collection("exams", DIM)
        store.upsert("exams", points)
        store.optimize("exams")
        store.delete("exams", [points[0].id])
        before = [[(h.id, round(h.score, 5)) for h in store.search("exams", q, 10, f)] for q in qs]
        store.flush()
    with make_store(backend, tmp_path / "db") as store:
        assert store.list_collections() == ["exams"]
        assert store.count("exams") == len(points) - 1
        after = [[(h.id, round(h.score, 5)) for h in store.search("exams", q, 10, f)] for q in qs]
        assert after == before
        assert store.collection_info("exams").dim == DIM


def test_concurrent_searches_and_writes(loaded: VectorStore, points: list[VectorPoint]) -> None:
    extra = exam_points(60, seed=5)
    errors: list[BaseException] = []

    def reader(q: np.ndarray) -> None:
        try:
            for _ in range(15):
                assert len(loaded.search("exams", q, 10, ExamFilter(field_strengths_t=(1.5, 3.0)))) == 10
                loaded.count("exams")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def writer() -> None:
        try:
            for i in range(0, len(extra), 10):
                loaded.upsert("exams", extra[i : i + 10])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(q,)) for q in queries(points, 4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert loaded.count("exams") == len(points) + len(extra)


def test_both_engines_give_the_same_ids(tmp_path: Path, points: list[VectorPoint]) -> None:
    stores = [make_store(b, tmp_path / b) for b in BACKENDS]
    try:
        for s in stores:
            s.ensure_collection("exams", DIM)
            s.upsert("exams", points)
            s.optimize("exams")
        for name, f in filter_cases(points).items():
            counts = [s.count("exams", f) for s in stores]
            assert counts[0] == counts[1], name
            for q in queries(points, 3):
                edge_hits, local_hits = (s.search("exams", q, 10, f, exact=True) for s in stores)
                assert [h.id for h in edge_hits] == [h.id for h in local_hits], name
                np.testing.assert_allclose([h.score for h in edge_hits], [h.score for h in local_hits],
                                           atol=1e-5)
        pages = [s.scroll("exams", limit=50) for s in stores]
        assert [r.id for r in pages[0][0]] == [r.id for r in pages[1][0]]  # both page in id order
        assert pages[0][1] == pages[1][1]
    finally:
        for s in stores:
            s.close()


def test_an_index_from_before_measurements_gains_their_indexes(backend: str, tmp_path: Path,
                                                               points: list[VectorPoint]) -> None:
    """Points written before measurements existed keep working: they read back without measurements, a
    range filter leaves them out, and reopening the collection adds the measurement payload indexes."""
    old_indexes = {k: v for k, v in PAYLOAD_INDEXES.items() if not k.startswith("measurements.")}
    old = [VectorPoint(p.id, p.vector, dataclasses.replace(p.payload, measurements=None)) for p in points[:100]]
    new = points[100:160]
    with make_store(backend, tmp_path / "db") as store:
        store.ensure_collection("exams", DIM, old_indexes)
        store.upsert("exams", old)
    low = ExamFilter(measurements=(MeasureRange("lvef_pct", max=35.0),))
    with make_store(backend, tmp_path / "db") as store:
        info = store.ensure_collection("exams", DIM)  # what ExamIndex does at every start
        if backend == "edge":
            assert set(info.payload_indexes) == set(PAYLOAD_INDEXES)
            assert info.payload_indexes["measurements.lvef_pct"] == "float"
        assert store.count("exams") == len(old) and store.count("exams", low) == 0
        assert store.get("exams", [old[0].id])[0].payload.measurements is None
        store.upsert("exams", new)
        expected = {p.id for p in new if matches(p.payload, low)}
        assert expected and {r.id for r in store.scroll("exams", low, limit=500)[0]} == expected
        assert [h.id for h in store.search("exams", new[0].vector, 5, low, exact=True)] == \
            exact_top(old + new, new[0].vector, 5, [matches(p.payload, low) for p in old + new])
