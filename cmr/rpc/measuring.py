"""Measurements of a loaded study for the services (EncodeStudy, the ingest worker): the segmenter loaded once
per process, and a measure call that never raises.

`cmr.quant.measure.measure_study` already answers a study without a short-axis cine stack with every value
None and the reason. Anything else that goes wrong inside it (a bug, a geometry it cannot handle) must not
fail the caller either: the study is still encoded and indexed, with quality "failed" and the exception's
*type* as the reason (its text could quote header values, so it is never stored or returned; the caller logs
the traceback at DEBUG).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cmr.dicom.model import Study
from cmr.quant.volumes import Measurements

if TYPE_CHECKING:
    from cmr.quant.segmenter import Segmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureOutcome:
    measurements: Measurements
    error: str | None = None  # the exception type when measuring failed (the measurements say "failed")
    traceback: str | None = None


def failed_measurement(error_type: str, model: str = "") -> Measurements:
    """What a study gets when measuring it raised: every value None, quality "failed", the reason."""
    return Measurements.unmeasurable(f"measurement failed ({error_type}); the study was still encoded", model)


class StudyMeasurer:
    """A segmentation checkpoint (None = the shipped one), loaded on first use or by `load()`; thread-safe."""

    def __init__(self, checkpoint: Path | str | None = None, torch_threads: int = 0) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.torch_threads = torch_threads
        self._segmenter: Segmenter | None = None
        self._lock = threading.Lock()

    def load(self) -> Segmenter:
        """The segmenter; raises FileNotFoundError / ValueError for a missing or foreign checkpoint."""
        with self._lock:
            if self._segmenter is None:
                import torch

                from cmr.quant.segmenter import load_segmenter

                if self.torch_threads:
                    torch.set_num_threads(self.torch_threads)
                self._segmenter = load_segmenter(self.checkpoint)
                log.info("segmenter %s loaded", self._segmenter.version)
            return self._segmenter

    @property
    def version(self) -> str:
        return self.load().version

    def measure(self, study: Study) -> MeasureOutcome:
        """Measure the study's short-axis cine stack; never raises."""
        import traceback

        from cmr.quant.measure import measure_study

        try:
            segmenter = self.load()
        except Exception as exc:  # noqa: BLE001 - a checkpoint replaced by a broken file: still encode the study
            return MeasureOutcome(failed_measurement(type(exc).__name__), type(exc).__name__, traceback.format_exc())
        try:
            return MeasureOutcome(measure_study(study, segmenter).measurements)
        except Exception as exc:  # noqa: BLE001 - see the module doc
            return MeasureOutcome(failed_measurement(type(exc).__name__, segmenter.version), type(exc).__name__,
                                  traceback.format_exc())


__all__ = ["MeasureOutcome", "StudyMeasurer", "failed_measurement"]
