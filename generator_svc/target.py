"""CMR-TARGET drafting inside the generator service: the frozen CMR-CLIP image encoder turns an exam into
token features, the CMR-TARGET decoder writes the impression from them sentence by sentence.

The image side runs in this process (not on Triton): CMR-TARGET reads token-level features (CLS + one per
frame) that the encoder service does not expose, and the exam tokens of one study are a few milliseconds of
CPU next to the seconds of decoding its DICOM. Both checkpoints are checked to belong together at start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmr.config import Settings
from cmr.dicom import Exam
from cmr.generator import Decoding, GeneratorCheckpointError, TargetGenerator, load_generator
from cmr.generator.checkpoint import load_exam_encoder
from cmr.labels import FINDINGS
from cmr.model.checkpoint import checkpoint_version
from cmr.model.measurements import measurement_vector
from cmr.model.runtime import checkpoint_path, resolve_device
from cmr.rpc.errors import ResourceExhausted

log = logging.getLogger(__name__)

DEFAULT_GENERATOR = Path(__file__).resolve().parents[1] / "cmr" / "model" / "weights" / "cmr-target-small.pt"


def generator_path(settings: Settings) -> Path:
    return Path(settings.generator_checkpoint or DEFAULT_GENERATOR)


@dataclass(frozen=True)
class TargetSentence:
    text: str
    findings: tuple[str, ...]  # findings the sentence states present (labeller)


class TargetDrafter:
    """Loads CMR-TARGET and the CLIP image encoder it was trained on; drafts one exam at a time per slot
    (`max_concurrent_drafts`; a request beyond them waits up to `wait_s`, then RESOURCE_EXHAUSTED)."""

    def __init__(self, settings: Settings, wait_s: float = 30.0) -> None:
        self.device = resolve_device(settings.device)
        clip_path = checkpoint_path(settings)
        path = generator_path(settings)
        if not path.is_file():
            raise FileNotFoundError(f"no CMR-TARGET checkpoint at {path} (train one: cmr train-generator; or "
                                    "set CMR_GENERATOR_CHECKPOINT)")
        self.generator: TargetGenerator = load_generator(path, clip_path, device=self.device)
        self.encoder = load_exam_encoder(clip_path, self.device)
        self.spec = self.encoder.spec
        self.name = path.stem
        self.version = checkpoint_version(path)
        self.clip_version = self.generator.clip_version
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_drafts)
        self._wait_s = wait_s
        log.info("CMR-TARGET %s on %s (CMR-CLIP %s)", self.version, self.device, self.clip_version)

    @torch.no_grad()
    def exam_tokens(self, exam: Exam, measured: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[1, 1+T+M, W] tokens and [1, 1+T+M] padding mask, from the exam as the training features were made
        (uint8 precision); `measured` (Measurements.values()) feeds an encoder with measurement tokens."""
        if exam.spec.spec_id != self.spec.spec_id:
            raise ValueError(f"exam built for spec {exam.spec.spec_id}, the model reads {self.spec.spec_id}")
        px = torch.from_numpy(exam.pixels_uint8().astype(np.float32) / 255.0)[None].to(self.device)
        mask = torch.from_numpy(exam.mask)[None].to(self.device)
        names = self.encoder.measurement_names
        values = torch.from_numpy(measurement_vector(measured, names))[None].to(self.device) if names else None
        return self.encoder.forward_tokens(px, mask, values)

    def draft(self, exam: Exam, decoding: Decoding,
              measured: Mapping[str, Any] | None = None) -> Iterator[TargetSentence]:
        """The impression of one exam, sentence by sentence (unnumbered), as CMR-TARGET writes it. Decoding
        options beyond the model's limits raise ValueError (the service checks them before loading the study)."""
        from cmr.reports import label_sentence

        if not self._slots.acquire(timeout=self._wait_s):
            raise ResourceExhausted(f"all {self._slots._initial_value} drafting slots are busy; retry shortly")  # type: ignore[attr-defined]
        try:
            tokens, pad = self.exam_tokens(exam, measured)
            for text in self.generator.generate(tokens, pad, replace(decoding, numbered=False)):
                stated = label_sentence(text).stated()
                yield TargetSentence(text, tuple(f for f in FINDINGS if f in stated and stated[f].state == "present"))
        finally:
            self._slots.release()


def load_drafter(settings: Settings) -> TargetDrafter | None:
    """The drafter, or None (target mode then answers UNAVAILABLE) when no usable checkpoint is there."""
    try:
        return TargetDrafter(settings)
    except (FileNotFoundError, GeneratorCheckpointError) as exc:
        log.warning("CMR-TARGET unavailable: %s", exc)
        return None


__all__ = ["DEFAULT_GENERATOR", "TargetDrafter", "TargetSentence", "generator_path", "load_drafter"]
