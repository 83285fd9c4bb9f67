"""The live index: Qdrant Edge collections kept indexed while they are searched and written, without stalls.

Qdrant Edge has no background optimizer, and `EdgeShard.optimize()` holds the Python GIL while it builds the
HNSW graph (39 s for 20k x 512-d on the shared 2-core machine, during which a probe thread got no answer at
all: docs/benchmarks/store_overhead.md). A thread cannot help; another process can:

1. `EdgeStore.begin_build` flushes the shard and copies its folder (writes wait for the copy, searches do not)
   and starts journaling every write made after it.
2. A child process (a few lines of Python importing only qdrant_edge, at a lower CPU priority so serving
   keeps the cores it needs) opens the copy, runs `optimize()` with its own GIL, flushes and exits.
3. `EdgeStore.finish_build` opens the built copy in the service, replays the journal onto it in rounds while
   writes go on, then, with searches paused for the last few operations only, records the copy as the
   collection's shard in collection.json, swaps it in and removes the old one. A crash at any point leaves
   the old shard in use (the copy is removed at the next open).

`LiveIndexer` runs that cycle from a daemon thread whenever a collection's un-indexed tail (points outside
any HNSW graph, searched exactly) reaches `max_unindexed`, and reports each collection's state.
Points written during a build land in the new shard's plain segment: the tail after a build is what was
ingested while it ran (or, below the engine's indexing threshold, the whole collection), which the next cycle
indexes once max_unindexed more points have arrived.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from search_svc.store.base import CollectionNotFoundError, StoreError
from search_svc.store.edge import EdgeStore

log = logging.getLogger(__name__)

CHILD_NICE = 10  # the build yields the CPU to serving (on a loaded 2-core machine it then ran 5x longer)
BUILD_TIMEOUT_S = 6 * 3600.0  # a 1M-point build took 56 min on 2 cores; far beyond that it is stuck


class BuildError(StoreError):
    """A background index build failed; the collection keeps its current shard."""


@dataclass(frozen=True)
class IndexState:
    """What the live index reports for one collection (Stats, metrics, `cmr status`)."""

    collection: str
    points: int = 0
    unindexed: int = 0  # points outside any HNSW graph (searched exactly, slower as it grows)
    building: bool = False
    builds: int = 0  # finished background builds since the service started
    last_build_s: float | None = None  # copy + child build + replay + swap, wall clock
    last_build_finished: float | None = None  # unix time
    last_replayed: int = 0  # write operations replayed onto the last built copy
    last_error: str | None = None


# The child's whole program: nothing but the engine is imported, so it starts in a fraction of a second.
CHILD_PROGRAM = """
import json, os, sys
os.nice(int(sys.argv[2]))  # here, not via preexec_fn: that forces a fork of the whole serving process
import qdrant_edge as edge
shard = edge.EdgeShard.load(sys.argv[1], None)
try:
    shard.optimize()
    shard.flush()
    info = shard.info()
    print(json.dumps({"points": int(info.points_count), "indexed": int(info.indexed_vectors_count)}))
finally:
    shard.close()
"""


def build_in_child(folder: Path, timeout_s: float = BUILD_TIMEOUT_S, nice: int = CHILD_NICE) -> dict[str, int]:
    """Build the HNSW graph of the shard copy in `folder` (nobody else has it open) in a child process;
    returns its points and indexed vectors. Raises BuildError with the child's last words when it fails."""
    proc = subprocess.run([sys.executable, "-c", CHILD_PROGRAM, str(folder), str(max(0, nice))],
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BuildError(f"index build of {folder} failed (exit {proc.returncode}): {' / '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class LiveIndexer:
    """Keeps the un-indexed tail of Edge collections bounded by building their graphs in a child process.

    max_unindexed: the tail that triggers a build. Edge leaves a segment smaller than the store's
    indexing threshold plain whatever happens (about 10k exams at 256-d with the engine's default), so the tail
    a build leaves is not counted again: the next build waits until max_unindexed more points have arrived.
    (Waiting for one more point rebuilt such a collection after every ingested study, each swap holding the
    GIL for a second or two: the stalls of `cmr bench load --quick` with ingestion.) poll_s: how often the
    tails are checked."""

    def __init__(self, store: EdgeStore, collections: Iterable[str], *, max_unindexed: int = 2000,
                 poll_s: float = 5.0, child_nice: int = CHILD_NICE) -> None:
        if max_unindexed < 1:
            raise ValueError(f"max_unindexed must be >= 1, got {max_unindexed}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self.store = store
        self.max_unindexed = max_unindexed
        self.poll_s = poll_s
        self.child_nice = child_nice
        self._states = {name: IndexState(name) for name in dict.fromkeys(collections)}
        self._tail_after_build: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def states(self) -> list[IndexState]:
        """Each collection's state, with its current points and tail."""
        out = []
        for name in list(self._states):
            try:
                info = self.store.collection_info(name)
                self._update(name, points=info.points, unindexed=info.points - info.indexed_vectors)
            except (StoreError, CollectionNotFoundError):
                pass  # closed or dropped: report what was last known
            with self._lock:
                out.append(self._states[name])
        return out

    def needs_build(self, name: str) -> bool:
        info = self.store.collection_info(name)
        tail = info.points - info.indexed_vectors
        self._update(name, points=info.points, unindexed=tail)
        return tail - self._tail_after_build.get(name, 0) >= self.max_unindexed

    def build(self, name: str) -> IndexState:
        """One build cycle of a collection, now (the caller's thread waits; serving does not)."""
        self._update(name, building=True)
        t0 = time.perf_counter()
        copy = self.store.begin_build(name)
        t1 = time.perf_counter()
        try:
            build_in_child(copy, nice=self.child_nice)
            t2 = time.perf_counter()
            replayed = self.store.finish_build(name, copy)
        except BaseException as exc:
            self.store.abort_build(name, copy)
            self._update(name, building=False, last_error=f"{type(exc).__name__}: {exc}")
            raise
        info = self.store.collection_info(name)
        tail = info.points - info.indexed_vectors
        self._tail_after_build[name] = tail
        with self._lock:
            state = self._states[name]
            self._states[name] = state = replace(
                state, points=info.points, unindexed=tail, building=False, builds=state.builds + 1,
                last_build_s=time.perf_counter() - t0, last_build_finished=time.time(), last_replayed=replayed,
                last_error=None)
        log.info("background index build of %r: %.1f s (copy %.1f s, child %.1f s, replay and swap %.1f s), "
                 "%d operations replayed, %d points left un-indexed", name, state.last_build_s, t1 - t0, t2 - t1,
                 time.perf_counter() - t2, replayed, tail)
        return state

    def start(self) -> LiveIndexer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-index", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop checking; a build in flight finishes (or is left for the next open to clean up)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            for name in list(self._states):
                if self._stop.is_set():
                    return
                try:
                    if self.needs_build(name):
                        self.build(name)
                except Exception as exc:  # noqa: BLE001 - one failed build must not end the indexer
                    log.warning("background index build of %r failed: %s", name, exc)

    def _update(self, name: str, **changes: object) -> None:
        with self._lock:
            self._states[name] = replace(self._states[name], **changes)  # type: ignore[arg-type]

