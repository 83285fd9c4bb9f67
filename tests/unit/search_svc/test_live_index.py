"""The live index: a collection's HNSW graph built in a child process on a copy of its shard, the writes made
meanwhile replayed onto the copy, the copy swapped in; searches answer throughout, and a failed build leaves the
collection as it was."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from cmr.rpc.keys import study_key
from search_svc.store import EdgeStore, VectorPoint
from search_svc.store import live_index
from search_svc.store.live_index import BuildError, LiveIndexer, build_in_child
from search_svc.store.schema import ExamPayload, IndexKind

DIM = 16


def _points(start: int, n: int) -> list[VectorPoint]:
    rng = np.random.default_rng(start)
    return [VectorPoint.for_exam(ExamPayload(study_key=study_key(f"2.25.{i + 1}", "s"), vendor="ge",
                                             model_version="m"), rng.standard_normal(DIM))
            for i in range(start, start + n)]


@pytest.fixture
def store(tmp_path: Path) -> EdgeStore:
    s = EdgeStore(tmp_path, indexing_threshold_kb=1)  # tiny segments get a graph too
    s.ensure_collection("exams", DIM, {"vendor": IndexKind.KEYWORD})  # one payload index: a small copy
    s.upsert("exams", _points(0, 400))
    yield s
    s.close()


def test_a_build_in_a_child_keeps_the_writes_made_meanwhile(store: EdgeStore, tmp_path: Path) -> None:
    assert store.collection_info("exams").indexed_vectors == 0
    copy = store.begin_build("exams")
    added = _points(400, 60)
    store.upsert("exams", added)  # journaled: the copy was taken before
    gone = [p.id for p in _points(0, 10)]
    assert store.delete("exams", gone) == 10
    assert build_in_child(copy, nice=0) == {"points": 400, "indexed": 400}
    store.upsert("exams", _points(460, 5))  # during the replay window too
    assert store.finish_build("exams", copy) >= 3
    info = store.collection_info("exams")
    assert info.points == 400 + 60 + 5 - 10 and info.indexed_vectors >= 390
    assert store.get("exams", gone) == [] and len(store.get("exams", [p.id for p in added])) == 60
    meta = json.loads((tmp_path / "exams" / "collection.json").read_text())
    assert meta["shard_dir"] == copy.name and not (tmp_path / "exams" / "shard").exists()
    q = np.random.default_rng(9).standard_normal(DIM)
    assert [h.id for h in store.search("exams", q, 10)] == [h.id for h in store.search("exams", q, 10, exact=True)]


def test_the_built_shard_is_the_one_opened_next_time_and_unfinished_copies_go(store: EdgeStore,
                                                                               tmp_path: Path) -> None:
    copy = store.begin_build("exams")
    build_in_child(copy, nice=0)
    store.finish_build("exams", copy)
    store.close()
    leftover = tmp_path / "exams" / "shard-unfinished"
    leftover.mkdir()
    with EdgeStore(tmp_path) as again:
        info = again.collection_info("exams")
        assert info.points == 400 and info.indexed_vectors == 400
    assert not leftover.exists() and copy.exists()


def test_searches_answer_while_the_child_builds(store: EdgeStore) -> None:
    indexer = LiveIndexer(store, ["exams"], max_unindexed=100, child_nice=0)
    assert indexer.needs_build("exams")
    answered_during_build = 0
    builder = threading.Thread(target=indexer.build, args=("exams",))
    builder.start()
    q = np.ones(DIM)
    while builder.is_alive():
        assert len(store.search("exams", q, 5)) == 5
        answered_during_build += 1
    builder.join()
    (state,) = indexer.states()
    assert state.builds == 1 and not state.building and state.unindexed == 0 and state.last_error is None
    assert answered_during_build > 1  # optimize() in this process would have held the GIL for the whole build
    assert not indexer.needs_build("exams")  # nothing left to index


def test_a_failed_build_leaves_the_collection_as_it_was(store: EdgeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(folder: Path, nice: int) -> dict[str, int]:
        raise BuildError("the child died")

    monkeypatch.setattr(live_index, "build_in_child", broken)
    indexer = LiveIndexer(store, ["exams"], max_unindexed=100, child_nice=0)
    with pytest.raises(BuildError):
        indexer.build("exams")
    (state,) = indexer.states()
    assert state.last_error == "BuildError: the child died" and not state.building and state.builds == 0
    store.upsert("exams", _points(400, 3))  # not journaled any more: a new build may start
    assert store.count("exams") == 403 and store.begin_build("exams").is_dir()


def test_the_child_names_what_went_wrong(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="index build of .* failed"):
        build_in_child(tmp_path / "not-a-shard", nice=0)


def test_one_build_at_a_time(store: EdgeStore) -> None:
    store.begin_build("exams")
    with pytest.raises(Exception, match="already running"):
        store.begin_build("exams")


def test_the_state_reaches_the_stats_message(store: EdgeStore) -> None:
    from search_svc.service import index_state_message

    indexer = LiveIndexer(store, ["exams"], max_unindexed=100, child_nice=0)
    (before,) = indexer.states()
    assert before.unindexed == 400 and before.builds == 0
    msg = index_state_message(before)
    assert (msg.collection, msg.points, msg.unindexed, msg.building, msg.last_build_s, msg.last_error) == (
        "exams", 400, 400, False, 0.0, "")
    after = indexer.build("exams")
    msg = index_state_message(after)
    assert msg.builds == 1 and msg.unindexed == 0 and msg.last_build_s > 0 and msg.last_build_finished_unix > 0


def test_a_collection_too_small_to_index_is_not_rebuilt_for_every_new_point(tmp_path: Path) -> None:
    """Below the engine's indexing threshold a build indexes nothing; the next one waits for max_unindexed new
    points, not for one (each swap pauses the service: a rebuild per ingested study stalled every search)."""
    s = EdgeStore(tmp_path)  # the engine's default threshold: these 3,000 small vectors stay plain
    try:
        s.ensure_collection("exams", DIM, {"vendor": IndexKind.KEYWORD})
        s.upsert("exams", _points(0, 3000))
        indexer = LiveIndexer(s, ["exams"], max_unindexed=1000, child_nice=0)
        assert indexer.needs_build("exams")
        assert indexer.build("exams").unindexed == 3000  # nothing could be indexed
        s.upsert("exams", _points(5000, 1))
        assert not indexer.needs_build("exams")
        s.upsert("exams", _points(6000, 998))
        assert not indexer.needs_build("exams")  # 999 new points
        s.upsert("exams", _points(7000, 1))
        assert indexer.needs_build("exams")  # 1,000 new points since the last build
    finally:
        s.close()
