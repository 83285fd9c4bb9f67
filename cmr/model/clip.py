"""CMR-CLIP: exam encoder + text encoder projected into one L2-normalised space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmr.model.config import ModelConfig
from cmr.model.image_encoder import ExamEncoder
from cmr.model.text_encoder import TextEncoder


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

    def encode_exam(self, pixels: Tensor, mask: Tensor) -> Tensor:
        """[B, T, H, W] pixels in 0..1 and [B, T] frame mask -> [B, D] unit vectors."""
        return F.normalize(self.image_proj(self.visual(pixels, mask)), dim=-1)

    def exam_tokens(self, pixels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Token-level exam features (no projection, not normalised to unit length): ([B, 1+T, W] tokens with
        the CLS token first, [B, 1+T] key padding mask, True where padded). See `ExamEncoder.forward_tokens`."""
        return self.visual.forward_tokens(pixels, mask)

    def encode_text(self, texts: list[str]) -> Tensor:
        """Report text (impressions, prompts) -> [N, D] unit vectors."""
        if not texts:
            raise ValueError("no text to encode")
        tokens = {k: v.to(self.device) for k, v in self.text.tokenize(list(texts)).items()}
        return F.normalize(self.text_proj(self.text(tokens)), dim=-1)

    def encode_text_from_frozen(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Training path: text embedding from cached `text.frozen_features` output."""
        return F.normalize(self.text_proj(self.text.from_frozen(hidden, attention_mask)), dim=-1)

    def forward(self, pixels: Tensor, mask: Tensor, text_hidden: Tensor, text_attention: Tensor) -> tuple[Tensor, Tensor]:
        """Training step: (exam embeddings, text embeddings) of a batch of pairs (one call, so DDP sees both)."""
        return self.encode_exam(pixels, mask), self.encode_text_from_frozen(text_hidden, text_attention)

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():  # CLIP's cap: a temperature below 0.01 destabilises training
            self.logit_scale.clamp_(0.0, math.log(100.0))
