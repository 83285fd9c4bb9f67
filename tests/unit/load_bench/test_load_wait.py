"""The load benchmark measures the served index, not the first build after its restart: when the live index
counts as caught up."""

from __future__ import annotations

from bench.load import indexed
from search_svc.store.live_index import IndexState


def test_caught_up_when_nothing_builds_and_every_tail_is_small_or_built() -> None:
    small = IndexState("reports", points=500, unindexed=500)
    assert indexed([small], max_unindexed=2000)
    # after a restart: 20k exams outside any graph, the first build not started or running
    assert not indexed([small, IndexState("exams", points=20000, unindexed=20000)], 2000)
    assert not indexed([IndexState("exams", points=20000, unindexed=20000, building=True)], 2000)
    assert indexed([small, IndexState("exams", points=20000, unindexed=12, builds=1)], 2000)
    # too small for the engine to index: built once and still plain, which no further build changes
    assert indexed([IndexState("exams", points=3000, unindexed=3000, builds=1)], 2000)
