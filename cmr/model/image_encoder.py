"""Exam (video) encoder: every frame is encoded on its own, then attention runs across all frames of the exam.

Frame tokens carry learned embeddings for the view (SAX/2CH/3CH/4CH/LAX), the sequence (cine/LGE) and the
frame's position in its slot (phase or slice), so one transformer sees the exam as a single space-time video.
Missing frames and views are masked out of attention, which is what makes the encoder robust to them.
Measured numbers (LVEF, volumes: cmr.model.measurements) join as further tokens when the config names them.
The exam feature is the CLS token, or (pooling "attention") a learned-query pool over the frame and
measurement tokens: a weighted sum of per-token parts, which is what lets a match be explained per view.
This is the factorised space-time design (ViViT "model 2"): spatial attention inside the frame encoder, then
attention across frames; it is far cheaper than joint attention over every patch of every frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cmr.dicom.exam import SLOT_SEQUENCES, SLOT_VIEWS, ExamSpec
from cmr.model.config import ImageEncoderConfig
from cmr.model.measurements import MeasurementEncoder


class CNNFrameEncoder(nn.Module):
    """Stride-2 conv stages (conv-BN-GELU), global average pool: cheap enough for CPU training."""

    def __init__(self, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # [N, 1, H, W] -> [N, out_dim]
        return self.head(self.body(x).mean(dim=(2, 3)))


class ViTFrameEncoder(nn.Module):
    """ViT over one frame (patch embedding, class token, pre-norm blocks); returns the class token."""

    def __init__(self, image_size: int, patch: int, width: int, depth: int, heads: int, mlp_ratio: float,
                 dropout: float, out_dim: int, grad_checkpointing: bool) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch}")
        n = (image_size // patch) ** 2
        self.patch = nn.Conv2d(1, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.ModuleList([_clone(layer) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x: Tensor) -> Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
        for blk in self.blocks:
            t = checkpoint(blk, t, use_reentrant=False) if self.grad_checkpointing and self.training else blk(t)
        return self.head(self.norm(t[:, 0]))


def _clone(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer)


class AttentionPool(nn.Module):
    """Multi-head pooling with one learned query per head: pooled = sum_i a_i * V t_i, additive over tokens."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.query = nn.Parameter(torch.randn(heads, self.head_dim) * 0.02)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width, bias=False)  # no bias: each token's part is its own

    def contributions(self, tokens: Tensor, pad: Tensor) -> Tensor:
        """[B, N, width] tokens, [B, N] True = ignore -> [B, N, width] per-token parts (zero where padded; all
        zero for an exam whose tokens are all padded, e.g. one with no measured number)."""
        b, n, w = tokens.shape
        empty = pad.all(dim=1)
        pad = pad & ~empty[:, None]  # a softmax over nothing is NaN: such rows are zeroed below instead
        k = self.key(tokens).view(b, n, self.heads, self.head_dim)
        v = self.value(tokens).view(b, n, self.heads, self.head_dim)
        logits = torch.einsum("bnhd,hd->bhn", k, self.query.to(k.dtype)) / self.head_dim ** 0.5
        att = torch.softmax(logits.masked_fill(pad[:, None, :], float("-inf")), dim=-1)  # [B, heads, N]
        att = att * (~empty).to(att.dtype)[:, None, None]
        return (att.permute(0, 2, 1).unsqueeze(-1) * v).reshape(b, n, w)

    def forward(self, tokens: Tensor, pad: Tensor) -> Tensor:
        return self.contributions(tokens, pad).sum(1)


class SumPool(nn.Module):
    """Each present token adds its own value, V t_i: pooled = sum_i V t_i over the tokens not padded."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.value = nn.Linear(width, width, bias=False)  # no bias: each token's part is its own

    def contributions(self, tokens: Tensor, pad: Tensor) -> Tensor:
        return self.value(tokens) * (~pad).to(tokens.dtype).unsqueeze(-1)

    def forward(self, tokens: Tensor, pad: Tensor) -> Tensor:
        return self.contributions(tokens, pad).sum(1)


class ExamEncoder(nn.Module):
    """[B, T, H, W] exam pixels (0..1) + [B, T] mask (+ [B, M] measurements) -> [B, width] exam feature."""

    def __init__(self, cfg: ImageEncoderConfig, spec: ExamSpec) -> None:
        super().__init__()
        self.spec = spec
        w = cfg.width
        if cfg.frame_encoder == "cnn":
            self.frames: nn.Module = CNNFrameEncoder(cfg.cnn_channels, w)
        else:
            self.frames = ViTFrameEncoder(spec.image_size, cfg.patch_size, cfg.frame_width, cfg.frame_depth,
                                          max(1, cfg.frame_width // 64), cfg.mlp_ratio, cfg.dropout, w,
                                          cfg.grad_checkpointing)
        view_ids, seq_ids, pos_ids = [], [], []
        for slot in spec.slots:
            view_ids += [SLOT_VIEWS.index(slot.view)] * slot.length
            seq_ids += [SLOT_SEQUENCES.index(slot.sequence)] * slot.length
            pos_ids += list(range(slot.length))
        # Fixed per spec: which view / sequence / position each of the T frames is.
        self.register_buffer("view_ids", torch.tensor(view_ids), persistent=False)
        self.register_buffer("seq_ids", torch.tensor(seq_ids), persistent=False)
        self.register_buffer("pos_ids", torch.tensor(pos_ids), persistent=False)
        self.view_emb = nn.Embedding(len(SLOT_VIEWS), w)
        self.seq_emb = nn.Embedding(len(SLOT_SEQUENCES), w)
        self.pos_emb = nn.Embedding(max(s.length for s in spec.slots), w)
        for emb in (self.view_emb, self.seq_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, w))
        layer = nn.TransformerEncoderLayer(w, cfg.heads, int(w * cfg.mlp_ratio), cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.ModuleList([_clone(layer) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(w)
        self.grad_checkpointing = cfg.grad_checkpointing
        self.width = w
        self.measurement_names = tuple(cfg.measurements)
        self.measure = MeasurementEncoder(self.measurement_names, w) if self.measurement_names else None
        self.pool = AttentionPool(w, cfg.heads) if cfg.pooling == "attention" else None
        # Late fusion: the numbers' own transformer and pool (cmr.model.config.ImageEncoderConfig).
        self.late = self.measure is not None and cfg.measurement_fusion == "late"
        self.balance = self.late and cfg.measurement_balance
        if self.late:
            self.measure_blocks = nn.ModuleList([_clone(layer) for _ in range(cfg.measurement_depth)])
            self.measure_norm = nn.LayerNorm(w)
            self.measure_pool: AttentionPool | SumPool = (SumPool(w) if cfg.measurement_pool == "sum"
                                                          else AttentionPool(w, cfg.heads))

    def forward(self, pixels: Tensor, mask: Tensor, measurements: Tensor | None = None) -> Tensor:
        """[B, width] exam feature: the CLS token of `forward_tokens`, or the attention pool of its tokens."""
        tokens, pad = self.forward_tokens(pixels, mask, measurements)
        if self.pool is None:
            return tokens[:, 0]
        if self.late:
            return self._late_contributions(tokens, pad).sum(1)
        return self.pool(tokens, self._pool_pad(pad))

    def token_contributions(self, pixels: Tensor, mask: Tensor, measurements: Tensor | None = None) -> Tensor:
        """[B, 1+T+M, width] per-token parts of the exam feature (they sum to `forward`); attention pooling only."""
        if self.pool is None:
            raise ValueError("this model pools with its CLS token, which mixes every view: per-view contributions "
                             "need a model trained with image.pooling = 'attention'")
        tokens, pad = self.forward_tokens(pixels, mask, measurements)
        if self.late:
            return self._late_contributions(tokens, pad)
        return self.pool.contributions(tokens, self._pool_pad(pad))

    def _late_contributions(self, tokens: Tensor, pad: Tensor) -> Tensor:
        """Late fusion: the frames' pool parts [B, 1+T] then the numbers' pool parts [B, M], one sequence."""
        assert self.pool is not None
        n_frames = 1 + self.spec.length
        frames = self.pool.contributions(tokens[:, :n_frames], self._pool_pad(pad[:, :n_frames]))
        numbers = self.measure_pool.contributions(tokens[:, n_frames:], pad[:, n_frames:])
        if self.balance:  # each pool to unit length; an exam without numbers has a zero numbers part
            frames = frames / frames.sum(1, keepdim=True).norm(dim=-1, keepdim=True).clamp_min(1e-6)
            numbers = numbers / numbers.sum(1, keepdim=True).norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return torch.cat([frames, numbers], dim=1)

    @staticmethod
    def _pool_pad(pad: Tensor) -> Tensor:
        """The pool reads the frame and measurement tokens, not the CLS token, unless an exam has nothing else."""
        pool_pad = pad.clone()
        pool_pad[:, 0] = ~pad[:, 1:].all(dim=1)
        return pool_pad

    def measurement_tensor(self, measurements: Tensor | None, b: int, like: Tensor) -> Tensor | None:
        """[B, M] float (NaN = missing), or None when the model has no measurement tokens; all NaN if not given."""
        if self.measure is None:
            return None
        m = len(self.measurement_names)
        if measurements is None:
            return torch.full((b, m), float("nan"), dtype=torch.float32, device=like.device)
        if measurements.shape != (b, m):
            raise ValueError(f"measurements {tuple(measurements.shape)} do not match the model's {m} measurement "
                             f"tokens for {b} exams ({', '.join(self.measurement_names)})")
        return measurements.to(device=like.device, dtype=torch.float32)

    def forward_tokens(self, pixels: Tensor, mask: Tensor,
                       measurements: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Token-level exam features for decoders that attend to the frames (CMR-TARGET).

        Returns (tokens [B, 1+T+M, width] after the final norm, CLS first, then the T frames, then the M
        measurement tokens of a model that has them; key_padding_mask [B, 1+T+M], True where a frame or number
        is missing and must be ignored by attention; the CLS token is never padded)."""
        b, t, h, w = pixels.shape
        if t != self.spec.length or h != self.spec.image_size or w != self.spec.image_size:
            raise ValueError(f"exam tensor {tuple(pixels.shape[1:])} does not match the model's exam spec "
                             f"({self.spec.length}, {self.spec.image_size}, {self.spec.image_size})")
        mask = mask.bool()
        feats = torch.zeros(b, t, self.width, dtype=pixels.dtype, device=pixels.device)
        if mask.any():  # encode only frames that exist: missing views cost nothing
            x = pixels[mask].unsqueeze(1)
            feats[mask] = self.frames(x).to(feats.dtype)
        tokens = feats + self.view_emb(self.view_ids) + self.seq_emb(self.seq_ids) + self.pos_emb(self.pos_ids)
        tokens = torch.cat([self.cls.expand(b, -1, -1).to(tokens.dtype), tokens], dim=1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        values = self.measurement_tensor(measurements, b, pixels)
        m_tokens = m_missing = None
        if self.measure is not None and values is not None:
            m_tokens, m_missing = self.measure(values)
            m_tokens = m_tokens.to(tokens.dtype)
            if not self.late:
                tokens = torch.cat([tokens, m_tokens], dim=1)
                pad = torch.cat([pad, m_missing], dim=1)
        tokens = self.norm(self._run(self.blocks, tokens, pad))
        if self.late and m_tokens is not None and m_missing is not None:
            # Within an exam with no number every token is padded; attention over nothing is NaN, so such an
            # exam's number tokens attend to each other (their values are never pooled: the pad says missing).
            run_pad = m_missing & ~m_missing.all(dim=1, keepdim=True)
            m_tokens = self.measure_norm(self._run(self.measure_blocks, m_tokens, run_pad))
            tokens = torch.cat([tokens, m_tokens], dim=1)
            pad = torch.cat([pad, m_missing], dim=1)
        return tokens, pad

    def _run(self, blocks: nn.ModuleList, tokens: Tensor, pad: Tensor) -> Tensor:
        for blk in blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(blk, tokens, None, pad, use_reentrant=False)
            else:
                tokens = blk(tokens, src_key_padding_mask=pad)
        return tokens
