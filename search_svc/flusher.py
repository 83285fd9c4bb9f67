"""A bound on what a power cut can take from the embedded index, without stalling the service.

Qdrant Edge writes every update to its write-ahead log before it answers, but does not fsync it: an acknowledged
write survives the death of the process (SIGKILL, OOM: the log's pages are in the kernel's cache, and the crash
harness checks exactly that), not a power cut or a kernel crash. The engine's own flush() would make it durable,
but it writes the segments back holding the GIL for the whole call: 0.05-0.2 s at 20k points on an idle machine,
0.6-1.4 s when other work has the cores (docs/benchmarks/index_sync.md), and every request of the service waits
meanwhile. So on a timer, and only when something was written, the service fsyncs the log's files instead
(EdgeStore.sync_wal: os.fsync releases the GIL, searches go on); a restart replays the log onto the segments. A
power cut loses at most the last `index_flush_interval_s` seconds of acknowledged writes (docs/reliability.md)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol


log = logging.getLogger(__name__)


class SyncsWal(Protocol):
    def sync_if_written(self) -> bool: ...


class PeriodicSync(threading.Thread):
    """Calls store.sync_if_written() every `interval_s` seconds until stop()."""

    def __init__(self, store: SyncsWal, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"sync interval must be > 0 s, got {interval_s}")
        super().__init__(daemon=True, name="index-wal-sync")
        self.store, self.interval_s = store, interval_s
        self.syncs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                self.syncs += self.store.sync_if_written()
            except Exception:  # noqa: BLE001 - a failed sync (full disk, I/O error) is retried next tick
                log.exception("index log sync failed; retrying in %.0f s", self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(self.interval_s + 30)
