"""Warm-up of an engine's memory-mapped files: read them once so the page cache holds them.

Qdrant Edge maps its segment files (vectors, HNSW links, payload pages, payload indexes) and reads them through
page faults. A page the kernel has evicted (another process needed the memory) or never read costs a disk read
on the request that first touches it: on the shared 2-core machine the first read of each hit's payload page
cost ~0.7 ms (764 major faults over 100 ten-hit searches of a 20k index; bench/store_overhead.py), which is
what made the first timed run after opening an index 2-3x slower at p99 than the same queries later.

Reading the files sequentially (1 MiB at a time; the reads release the GIL, so serving threads go on) brings
them in at disk speed in one pass instead of one 4 KiB fault at a time inside requests. It cannot pin them:
under memory pressure the kernel may evict them again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from search_svc.store.base import VectorStore

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


def warm_files(folder: str | Path) -> int:
    """Read every regular file under `folder` once; returns the bytes read (0 for a missing folder).
    A file that disappears meanwhile (the engine rotated its log or merged a segment) is skipped."""
    total = 0
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb", buffering=0) as f:
                    while n := f.readinto(view):
                        total += n
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                continue
    return total


def start_warm_up(store: VectorStore, collections: Iterable[str]) -> threading.Thread:
    """Warm the collections' files in a daemon thread, so a service starts serving at once; a failure (the
    store closed meanwhile, a collection dropped) is logged, never raised: warm-up only saves time."""
    names = list(dict.fromkeys(collections))

    def warm() -> None:
        t0 = time.perf_counter()
        total = 0
        for name in names:
            try:
                total += store.warm_up(name)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.info("warm-up of collection %r skipped: %s", name, exc)
        log.info("warm-up read %.0f MB of index files in %.1f s", total / 2**20, time.perf_counter() - t0)

    thread = threading.Thread(target=warm, name="index-warm-up", daemon=True)
    thread.start()
    return thread
