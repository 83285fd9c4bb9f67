"""The start-up heap of a service process is frozen out of the cyclic collector once it serves (cmr/rpc/heap.py):
what start-up made is frozen, start-up garbage is collected first, and later objects are collected as before."""

from __future__ import annotations

import gc
import signal
import threading
import weakref
from collections.abc import Iterator

import pytest

from cmr.config import Settings
from cmr.rpc.heap import freeze_startup_heap


@pytest.fixture
def thawed() -> Iterator[None]:
    """A test process must not stay frozen: it would keep the garbage cycles of every later test."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezing_keeps_live_objects_and_collects_start_up_garbage(thawed: None) -> None:
    live = [_Cycle() for _ in range(100)]
    garbage = _Cycle()
    gone = threading.Event()
    weakref.finalize(garbage, gone.set)
    del garbage  # a cycle: only the collector frees it
    frozen = freeze_startup_heap()
    assert gone.is_set()  # collected before the freeze, not frozen for good
    assert frozen == gc.get_freeze_count() >= len(live)
    later = _Cycle()
    later_gone = threading.Event()
    weakref.finalize(later, later_gone.set)
    del later
    gc.collect()
    assert later_gone.is_set()  # objects made after the freeze are collected as before


@pytest.mark.parametrize("on", [True, False])
def test_a_served_process_freezes_its_heap_unless_told_not_to(thawed: None, on: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.cli import serve_cmd

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # no handlers installed in the test process
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: True)  # "signalled" at once
    serve_cmd._until_signalled(Settings(gc_freeze=on))
    assert (gc.get_freeze_count() > 0) is on
