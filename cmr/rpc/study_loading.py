"""Study decoding in worker processes.

Reading a study is about a second of pure-Python/numpy CPU work. In threads it would hold the GIL against the
model callables Triton runs in this process; in a separate process it does not, and a study that crashes the
decoder (a segfault in a codec, memory blow-up) kills a worker, not the service: the pool is rebuilt and the
caller gets a clear error.

Measuring (settings.measure) happens in the same worker, on the study it has just loaded: the pixel data never
cross processes, only the exam tensor and the few numbers do. Each worker loads the segmenter once (at
`warm_up`, or on its first study after a pool restart) and keeps it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmr.dicom import Exam, ExamSpec, load_study
from cmr.lifetime import exit_when_orphaned
from cmr.rpc.errors import DeadlineExceeded, InvalidArgument
from cmr.rpc.measuring import MeasureOutcome, StudyMeasurer
from cmr.rpc.uploads import StudyInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureConfig:
    """What a decoder worker needs to measure (picklable): the checkpoint and its torch threads."""

    checkpoint: Path | None = None
    torch_threads: int = 1


@dataclass(frozen=True)
class LoadedStudy:
    exam: Exam
    measured: MeasureOutcome | None = None  # None: measuring is off


_measurer: StudyMeasurer | None = None  # one per worker process, kept across studies


def _worker_measurer(cfg: MeasureConfig) -> StudyMeasurer:
    global _measurer
    if _measurer is None or _measurer.checkpoint != cfg.checkpoint:
        _measurer = StudyMeasurer(cfg.checkpoint, cfg.torch_threads)
    return _measurer


def _load_exam(source: StudyInput, spec: dict[str, Any], measure: MeasureConfig | None = None) -> LoadedStudy:
    study = load_study(source)
    exam = study.to_exam(ExamSpec.from_dict(spec))
    measured = None if measure is None else _worker_measurer(measure).measure(study)
    return LoadedStudy(exam, measured)


def _ready(measure: MeasureConfig | None = None) -> str:
    """Start-up of a worker: with measuring on, load the segmenter now (a bad checkpoint fails the service's
    start, not its first study) and return its version."""
    return "" if measure is None else _worker_measurer(measure).version


class StudyLoaderPool:
    def __init__(self, spec: ExamSpec, workers: int, measure: MeasureConfig | None = None) -> None:
        self._spec = spec.to_dict()
        self._workers = workers
        self._measure = measure
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.segmenter_version = ""  # set by warm_up when measuring

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the workers must not inherit the server's threads (gRPC, Triton proxies, torch). They exit when
        # the service dies, even by SIGKILL (else each crash left its workers running).
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=exit_when_orphaned, initargs=(os.getpid(),))

    @property
    def measuring(self) -> bool:
        return self._measure is not None

    def warm_up(self) -> None:
        """Start the workers (imports take a second or two) before the first study arrives; with measuring on,
        each loads the segmenter (RuntimeError naming the checkpoint if it cannot)."""
        versions = set()
        for f in [self._pool.submit(_ready, self._measure) for _ in range(self._workers)]:
            try:
                versions.add(f.result())
            except (OSError, ValueError, RuntimeError) as exc:
                where = self._measure.checkpoint if self._measure and self._measure.checkpoint else "the shipped one"
                raise RuntimeError(f"the segmenter for measurements cannot be loaded (checkpoint: {where}): {exc}; "
                                   "fix CMR_SEGMENTER_CHECKPOINT, or set CMR_MEASURE=false") from exc
        self.segmenter_version = ",".join(sorted(v for v in versions if v))

    def load(self, source: StudyInput, timeout_s: float | None = None) -> Exam:
        """The exam of a study; raises StudyLoadError (the loader's reason) for unusable input. Never measures
        (the generator and the re-embedding of an upgrade need the exam only)."""
        return self._submit(source, None, timeout_s).exam

    def load_measured(self, source: StudyInput, timeout_s: float | None = None) -> LoadedStudy:
        """The exam of a study and, when this pool measures, its measurements (measured in the same worker;
        measuring never raises: see cmr.rpc.measuring)."""
        return self._submit(source, self._measure, timeout_s)

    def _submit(self, source: StudyInput, measure: MeasureConfig | None, timeout_s: float | None) -> LoadedStudy:
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(_load_exam, source, self._spec, measure).result(timeout=timeout_s)
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
