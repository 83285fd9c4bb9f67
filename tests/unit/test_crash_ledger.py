"""The crash harness's bookkeeping (bench/crash_ledger.py): what counts as lost, changed, undone, phantom or
duplicated after a kill, and how writes in flight are settled."""

from __future__ import annotations

import numpy as np

from bench.crash_ledger import DELETED, ExamState, Ledger


def _state(text: str, seed: int) -> ExamState:
    return ExamState(text, ("lge",), np.random.default_rng(seed).normal(size=8).astype(np.float32))


def test_acknowledged_state_found_as_promised_is_no_problem() -> None:
    ledger = Ledger()
    a, b = _state("a", 1), _state("b", 2)
    ledger.sending({"k1": a, "k2": b})
    ledger.ack({"k1": a, "k2": b})
    ledger.sending({"k2": DELETED})
    ledger.ack({"k2": DELETED})
    stored = {"k1": ExamState("a", ("lge",), a.vector * 3.0)}  # the store keeps vectors normalised
    assert ledger.check(stored).count == 0
    assert (ledger.acked_upserts, ledger.acked_deletes) == (1, 1)


def test_each_kind_of_broken_promise_is_named() -> None:
    ledger = Ledger()
    a, b, c = _state("a", 1), _state("b", 2), _state("c", 3)
    ledger.ack({"lost": a, "changed": b})
    ledger.ack({"undone": DELETED})
    stored = {"changed": _state("b", 9), "undone": c, "phantom": c, "dup": c}
    ledger.ack({"dup": c})
    p = ledger.check(stored, duplicated=["dup"])
    assert (p.lost, p.wrong, p.resurrected, p.phantom, p.duplicated) == (
        ["lost"], ["changed"], ["undone"], ["phantom"], ["dup"])
    assert p.count == 5 and "lost 1" in p.summary()


def test_writes_in_flight_may_land_or_not_and_are_settled_to_what_was_kept() -> None:
    ledger = Ledger()
    old, new, fresh = _state("old", 1), _state("new", 2), _state("fresh", 3)
    ledger.ack({"upd": old, "gone": old})
    ledger.sending({"upd": new, "fresh": fresh, "gone": DELETED})
    assert set(ledger.present()) == set()  # keys in flight are not picked for the next writes
    for stored in ({"upd": old, "gone": old}, {"upd": new, "fresh": fresh}):
        assert ledger.check(stored).count == 0, stored
    assert ledger.check({"upd": fresh}).wrong == ["upd"]
    kept = ledger.settle({"upd": new, "gone": old})
    assert kept == 1 and ledger.in_flight == {}
    assert ledger.acked["upd"] is new and ledger.acked["fresh"] is DELETED
    assert ledger.check({"upd": new, "gone": old}).count == 0
    assert ledger.check({"upd": new}).lost == ["gone"]
