"""ExamEncoder.forward_tokens / CMRCLIP.exam_tokens: token-level exam features, and `forward` (the pooled
exam feature every CLIP checkpoint and index depends on) bit-identical to the computation before the split."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.image_encoder import ExamEncoder
from tiny_config import TINY


@pytest.fixture(scope="module")
def clip() -> CMRCLIP:
    return create_model(Config.from_dict(copy.deepcopy(TINY)), seed=0).eval()


def _pre_change_forward(enc: ExamEncoder, pixels: Tensor, mask: Tensor) -> Tensor:
    """ExamEncoder.forward exactly as it was before forward_tokens existed (norm of the CLS token only)."""
    b, t, h, w = pixels.shape
    mask = mask.bool()
    feats = torch.zeros(b, t, enc.width, dtype=pixels.dtype, device=pixels.device)
    if mask.any():
        feats[mask] = enc.frames(pixels[mask].unsqueeze(1)).to(feats.dtype)
    tokens = feats + enc.view_emb(enc.view_ids) + enc.seq_emb(enc.seq_ids) + enc.pos_emb(enc.pos_ids)
    tokens = torch.cat([enc.cls.expand(b, -1, -1).to(tokens.dtype), tokens], dim=1)
    pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)
    for blk in enc.blocks:
        tokens = blk(tokens, src_key_padding_mask=pad)
    return enc.norm(tokens[:, 0])


def _exam(clip: CMRCLIP, b: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = clip.spec
    px = torch.rand(b, s.length, s.image_size, s.image_size, generator=g)
    mk = torch.ones(b, s.length, dtype=torch.bool)
    mk[0, [1, 5]] = False
    return px, mk


@torch.no_grad()
def test_forward_is_bit_identical_to_the_pre_change_computation(clip: CMRCLIP) -> None:
    px, mk = _exam(clip, 3, seed=7)
    before = _pre_change_forward(clip.visual, px, mk)
    assert torch.equal(clip.visual(px, mk), before)
    assert torch.equal(clip.encode_exam(px, mk), F.normalize(clip.image_proj(before), dim=-1))


def test_forward_is_bit_identical_in_training_mode_too(clip: CMRCLIP) -> None:
    enc = copy.deepcopy(clip.visual).train()  # dropout on: same seed, same masks, same numbers
    px, mk = _exam(clip, 2, seed=3)
    torch.manual_seed(11)
    new = enc(px, mk)
    torch.manual_seed(11)
    old = _pre_change_forward(enc, px, mk)
    assert torch.equal(new, old)


@torch.no_grad()
def test_forward_tokens_shapes_padding_and_cls(clip: CMRCLIP) -> None:
    px, mk = _exam(clip, 2, seed=1)
    tokens, pad = clip.exam_tokens(px, mk)
    t = clip.spec.length
    assert tokens.shape == (2, 1 + t, clip.visual.width) and pad.shape == (2, 1 + t) and pad.dtype == torch.bool
    assert not pad[:, 0].any()  # the CLS token is never padded
    assert torch.equal(pad[:, 1:], ~mk)
    assert torch.equal(tokens[:, 0], clip.visual(px, mk))
    assert torch.isfinite(tokens[~pad]).all()
    # Tokens of present frames ignore what the missing frames hold.
    changed = px.clone()
    changed[~mk] = 5.0
    again, _ = clip.exam_tokens(changed, mk)
    assert torch.allclose(again[~pad], tokens[~pad], atol=1e-6)


def test_forward_tokens_checks_the_exam_spec(clip: CMRCLIP) -> None:
    s = clip.spec
    with pytest.raises(ValueError, match="exam spec"):
        clip.exam_tokens(torch.rand(1, s.length + 1, s.image_size, s.image_size), torch.ones(1, s.length + 1, dtype=torch.bool))
