"""The CMR-CLIP model in this process: loaded once, on the configured device, with a version string that
names the exact weights, and batch functions over numpy that Triton's model callables run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cmr.config import Settings, get_settings
from cmr.dicom import ExamSpec
from cmr.model.checkpoint import DEFAULT_CHECKPOINT, checkpoint_version, load_model, read_checkpoint
from cmr.model.clip import CMRCLIP, part_names
from cmr.model.config import Config
from cmr.model.explain import PartKind, explains, group_kinds
from cmr.model.inference import MAX_TEXT_CHARS, measurement_batch

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


@dataclass(frozen=True)
class ModelIdentity:
    """What a checkpoint is, read without building the model: an encoder service in front of an external
    Triton reads the same checkpoint file to report the version Triton serves."""

    name: str
    version: str
    embed_dim: int
    spec: ExamSpec
    device: str
    measurement_names: tuple[str, ...] = ()  # the model's measurement tokens (Triton input `measurements`)
    explains: bool = False                   # attention pooling: Triton output `parts` over `groups`

    @property
    def spec_id(self) -> str:
        return self.spec.spec_id

    @property
    def groups(self) -> tuple[str, ...]:
        """The names of the embedding's parts, as CMRCLIP.contribution_groups."""
        return part_names(self.spec, self.measurement_names)

    @property
    def kinds(self) -> tuple[PartKind, ...]:
        return group_kinds(len(self.spec.slot_names), len(self.measurement_names))

    @classmethod
    def from_checkpoint(cls, path: Path, device: str) -> ModelIdentity:
        cfg = Config.from_dict(read_checkpoint(path)["config"]).model
        return cls(name=path.stem, version=checkpoint_version(path), embed_dim=cfg.embed_dim, spec=cfg.exam,
                   device=device, measurement_names=tuple(cfg.image.measurements),
                   explains=cfg.image.pooling == "attention")


def checkpoint_path(settings: Settings) -> Path:
    return Path(settings.checkpoint or DEFAULT_CHECKPOINT)


class EncoderRuntime:
    """Batch encoding; forward passes in eval mode keep no state, so Triton instances may call it from
    several threads at once (on 2 CPU cores one instance is fastest: torch already uses both cores)."""

    def __init__(self, settings: Settings | None = None, checkpoint: Path | None = None) -> None:
        settings = settings or get_settings()
        path = Path(checkpoint or checkpoint_path(settings))
        self.device = resolve_device(settings.device)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.model: CMRCLIP = load_model(path, device=self.device)
        self.model.eval()
        self.identity = ModelIdentity.from_checkpoint(path, str(self.device))
        if self.identity.explains != explains(self.model) or \
                self.identity.measurement_names != tuple(self.model.measurement_names) or \
                self.identity.groups != tuple(self.model.contribution_groups):
            raise RuntimeError(f"{path}: the model built from the checkpoint does not match its config")
        log.info("loaded %s on %s", self.identity.version, self.device)

    @property
    def spec(self) -> ExamSpec:
        return self.identity.spec

    def exam_shape(self) -> tuple[int, int, int]:
        s = self.spec
        return s.length, s.image_size, s.image_size

    def _exam_tensors(self, pixels: np.ndarray, mask: np.ndarray, measurements: np.ndarray | None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != self.exam_shape():
            raise ValueError(f"exam tensor of shape {tuple(pixels.shape[1:])}, expected {self.exam_shape()}")
        px = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device).float().div_(255.0)
        mk = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device).bool()
        return px, mk, measurement_batch(self.model, measurements, len(pixels))

    @torch.inference_mode()
    def encode_exams(self, pixels: np.ndarray, mask: np.ndarray,
                     measurements: np.ndarray | None = None) -> np.ndarray:
        """uint8 pixels [B, T, H, W] (0..255), mask [B, T] and, for a model with measurement tokens, float32
        [B, M] measurements (NaN = not measured; None = none; ignored by other models) -> float32 [B, D]."""
        return self.model.encode_exam(*self._exam_tensors(pixels, mask, measurements)).float().cpu().numpy()

    @torch.inference_mode()
    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray,
                          measurements: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As encode_exams, with the parts: ([B, D] unit vectors, [B, G, D] parts over identity.groups that
        sum to them). ValueError for a CLS-pooled model (its embedding does not split)."""
        if not self.identity.explains:
            raise ValueError(f"{self.identity.version} pools by CLS: its embeddings do not split into parts")
        emb, parts = self.model.exam_contributions(*self._exam_tensors(pixels, mask, measurements))
        return emb.float().cpu().numpy(), parts.float().cpu().numpy()

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts (already checked: non-empty, <= MAX_TEXT_CHARS) -> float32 [N, D] unit vectors."""
        if any(not t.strip() or len(t) > MAX_TEXT_CHARS for t in texts):
            raise ValueError("texts must be non-empty and at most MAX_TEXT_CHARS characters")
        return self.model.encode_text(texts).float().cpu().numpy()
