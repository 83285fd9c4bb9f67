"""Symmetric InfoNCE (CLIP) loss on cosine similarities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def clip_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor, text_groups: Tensor | None = None) -> Tensor:
    """Mean of the image->text and text->image cross-entropies over the batch.

    `text_groups` (optional, [B] ints): pairs whose impressions are identical text share a group, and a
    same-group text is not counted as a negative (with templated normal reports, duplicates are common)."""
    logits = logit_scale * image_emb @ text_emb.t()
    target = torch.arange(len(logits), device=logits.device)
    if text_groups is not None:
        same = text_groups[:, None] == text_groups[None, :]
        off_diag = same & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(off_diag, float("-inf"))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
