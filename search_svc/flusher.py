"""A bound on what a power cut can take from the embedded index.

Qdrant Edge writes every update to its WAL before it answers, but does not fsync it: an acknowledged write
survives the death of the process (SIGKILL, OOM: the WAL pages are in the kernel's cache, and the crash harness
checks exactly that), not a power cut or a kernel crash. Flushing after every write would cost 30-200 ms per
Upsert here (it writes the segments back, holding the GIL: every thread of the service stalls meanwhile), so the
service flushes on a timer instead, and only when something was written: a power cut loses at most the last
`index_flush_interval_s` seconds of acknowledged writes (docs/reliability.md)."""

from __future__ import annotations

import logging
import threading

from search_svc.store import EdgeStore

log = logging.getLogger(__name__)


class PeriodicFlush(threading.Thread):
    """Calls store.flush_if_written() every `interval_s` seconds until stop()."""

    def __init__(self, store: EdgeStore, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"flush interval must be > 0 s, got {interval_s}")
        super().__init__(daemon=True, name="index-flush")
        self.store, self.interval_s = store, interval_s
        self.flushes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                self.flushes += self.store.flush_if_written()
            except Exception:  # noqa: BLE001 - a failed flush (full disk) is retried next tick; serving goes on
                log.exception("index flush failed; retrying in %.0f s", self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(self.interval_s + 30)
