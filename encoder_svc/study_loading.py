"""Study decoding in worker processes.

Reading a study is about a second of pure-Python/numpy CPU work. In threads it would hold the GIL against the
model callables Triton runs in this process; in a separate process it does not, and a study that crashes the
decoder (a segfault in a codec, memory blow-up) kills a worker, not the service: the pool is rebuilt and the
caller gets a clear error.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cmr.dicom import Exam, ExamSpec, load_study
from cmr.rpc.errors import DeadlineExceeded, InvalidArgument
from encoder_svc.uploads import StudyInput

log = logging.getLogger(__name__)


def _load_exam(source: StudyInput, spec: dict[str, Any]) -> Exam:
    return load_study(source).to_exam(ExamSpec.from_dict(spec))


def _ready() -> bool:
    return True


class StudyLoaderPool:
    def __init__(self, spec: ExamSpec, workers: int) -> None:
        self._spec = spec.to_dict()
        self._workers = workers
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the workers must not inherit the server's threads (gRPC, Triton proxies, torch).
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))

    def warm_up(self) -> None:
        """Start the workers (imports take a second or two) before the first study arrives."""
        for f in [self._pool.submit(_ready) for _ in range(self._workers)]:
            f.result()

    def load(self, source: StudyInput, timeout_s: float | None = None) -> Exam:
        """The exam of a study; raises StudyLoadError (the loader's reason) for unusable input."""
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(_load_exam, source, self._spec).result(timeout=timeout_s)
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    log.error("a study-decoding worker died; restarting the pool")
                    self._pool = self._new_pool()
            raise InvalidArgument("a DICOM decoder process died while reading this study (or one read beside "
                                  "it); it was not encoded - retry once, and report the study if it happens again"
                                  ) from exc
        except FutureTimeout as exc:
            raise DeadlineExceeded(f"reading the study took longer than {timeout_s:.0f} s") from exc

    def close(self) -> None:
        # wait=True: the workers must be gone when the service is (waits for at most the studies in flight).
        self._pool.shutdown(wait=True, cancel_futures=True)
