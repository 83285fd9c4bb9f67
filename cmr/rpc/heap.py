"""The garbage collector in a long-running service process.

CPython's cyclic collector scans every tracked object in a full (generation 2) collection, with the GIL held. A
service process holds a few hundred thousand objects from start-up that live as long as it does (the search
service imports torch through the model code: ~350k objects; one full collection over them took 171 ms on the
2-core machine), and a full collection comes every so often as requests allocate, stalling every request in
flight. `gc.freeze()` after start-up moves those objects to a permanent generation that collections skip;
objects made later are collected as before (and reference counting frees most of them anyway). Measured with
`cmr bench load --quick` (2026-12-07, one run each, after the Stats fix): open-loop p99 at 5 and 15 queries/s
118 and 235 ms with CMR_GC_FREEZE=false, 8.5 and 12.1 ms with the freeze; closed-loop QPS within run-to-run noise.

Only for a process that serves until it stops (`cmr serve ...`, the load generator): in a test process it would
keep the garbage cycles of every test that ran before the freeze."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect what start-up left as garbage, then freeze the rest out of the collector's scans; returns how many
    objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("%d objects from start-up frozen out of the garbage collector's scans (CMR_GC_FREEZE)", frozen)
    return frozen
