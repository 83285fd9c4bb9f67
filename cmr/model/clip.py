"""CMR-CLIP: exam encoder + text encoder projected into one L2-normalised space."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmr.dicom.exam import ExamSpec
from cmr.model.config import ModelConfig
from cmr.model.image_encoder import ExamEncoder
from cmr.model.text_encoder import TextEncoder


def part_names(spec: ExamSpec, measurement_names: Sequence[str]) -> tuple[str, ...]:
    """The parts an attention-pooled embedding splits into: every slot, every measurement token, then "exam"
    (the CLS token). A function of the config alone, so a service can name them without building the model."""
    return (*spec.slot_names, *measurement_names, "exam")


class CMRCLIP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = ExamEncoder(cfg.image, cfg.exam)
        self.text = TextEncoder(cfg.text)
        self.image_proj = nn.Linear(self.visual.width, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)),
                                        requires_grad=cfg.learnable_temperature)

    @property
    def spec(self):  # noqa: ANN201 - ExamSpec; a property so callers build matching exam tensors
        return self.cfg.exam

    @property
    def device(self) -> torch.device:
        return self.image_proj.weight.device

    @property
    def measurement_names(self) -> tuple[str, ...]:
        """The measurement tokens this model reads, in the order of its measurement vectors ("" = none)."""
        return self.visual.measurement_names

    @property
    def contribution_groups(self) -> tuple[str, ...]:
        """Names of the parts `exam_contributions` splits an embedding into: every slot, every measurement, and
        "exam" (the CLS token, pooled only for an exam with no frame and no number)."""
        return part_names(self.spec, self.measurement_names)

    def encode_exam(self, pixels: Tensor, mask: Tensor, measurements: Tensor | None = None) -> Tensor:
        """[B, T, H, W] pixels in 0..1, [B, T] frame mask and, for a model with measurement tokens, [B, M]
        measurements (NaN = not measured; None = none measured) -> [B, D] unit vectors."""
        return F.normalize(self.image_proj(self.visual(pixels, mask, measurements)), dim=-1)

    def exam_contributions(self, pixels: Tensor, mask: Tensor, measurements: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(unit embeddings [B, D], parts [B, G, D]) with parts summing to the unit embedding over G =
        `contribution_groups`: what each view and each number puts into the embedding. The cosine of this exam
        with any unit vector v is then sum_g parts[g] . v, exactly (attention-pooling models only)."""
        contrib = self.image_proj(self.visual.token_contributions(pixels, mask, measurements))  # [B, N, D]
        emb = contrib.sum(1)
        norm = emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        groups = torch.zeros(len(self.contribution_groups), contrib.shape[1], dtype=contrib.dtype,
                             device=contrib.device)
        n_slots = len(self.spec.slots)
        token_slot = [k for k, s in enumerate(self.spec.slots) for _ in range(s.length)]
        groups[-1, 0] = 1.0  # CLS token
        for i, k in enumerate(token_slot):
            groups[k, 1 + i] = 1.0
        for j in range(len(self.measurement_names)):
            groups[n_slots + j, 1 + len(token_slot) + j] = 1.0
        parts = torch.einsum("gn,bnd->bgd", groups, contrib) / norm[:, None]
        return emb / norm, parts

    def exam_tokens(self, pixels: Tensor, mask: Tensor, measurements: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Token-level exam features (no projection, not normalised to unit length): ([B, 1+T+M, W] tokens with
        the CLS token first, [B, 1+T+M] key padding mask, True where padded). See `ExamEncoder.forward_tokens`."""
        return self.visual.forward_tokens(pixels, mask, measurements)

    def encode_text(self, texts: list[str]) -> Tensor:
        """Report text (impressions, prompts) -> [N, D] unit vectors."""
        if not texts:
            raise ValueError("no text to encode")
        tokens = {k: v.to(self.device) for k, v in self.text.tokenize(list(texts)).items()}
        return F.normalize(self.text_proj(self.text(tokens)), dim=-1)

    def encode_text_from_frozen(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Training path: text embedding from cached `text.frozen_features` output."""
        return F.normalize(self.text_proj(self.text.from_frozen(hidden, attention_mask)), dim=-1)

    def forward(self, pixels: Tensor, mask: Tensor, text_hidden: Tensor, text_attention: Tensor,
                measurements: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Training step: (exam embeddings, text embeddings) of a batch of pairs (one call, so DDP sees both)."""
        return (self.encode_exam(pixels, mask, measurements),
                self.encode_text_from_frozen(text_hidden, text_attention))

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():  # CLIP's cap: a temperature below 0.01 destabilises training
            self.logit_scale.clamp_(0.0, math.log(100.0))
