"""Frozen-layer text features, computed once per distinct impression before training.

The frozen part of the text encoder is deterministic, so running it every step would only repeat work;
only the fine-tuned top layers run per step. Identical impressions share one entry (and a group id, so the
loss does not treat a study's twin report as a negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from cmr.model.clip import CMRCLIP


@dataclass
class TextBank:
    hidden: Tensor  # [U, L, H] float16 frozen features
    attention: Tensor  # [U, L] int
    group: Tensor  # [N] study -> unique text index

    @classmethod
    def build(cls, model: CMRCLIP, texts: list[str], batch_size: int = 64, progress: bool = True) -> TextBank:
        uniq = list(dict.fromkeys(texts))
        where = {t: i for i, t in enumerate(uniq)}
        tok = model.text.tokenize(uniq)  # one padding length for all
        hidden = []
        for s in tqdm(range(0, len(uniq), batch_size), desc="text features", unit="batch", disable=not progress):
            part = {k: v[s : s + batch_size].to(model.device) for k, v in tok.items()}
            hidden.append(model.text.frozen_features(part).half().cpu())
        return cls(torch.cat(hidden), tok["attention_mask"], torch.tensor([where[t] for t in texts]))

    def batch(self, study_idx: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(hidden, attention, groups) for these studies, trimmed to the longest text in the batch."""
        g = self.group[study_idx]
        att = self.attention[g]
        length = int(att.sum(1).max())
        return self.hidden[g, :length].float().to(device), att[:, :length].to(device), g.to(device)
