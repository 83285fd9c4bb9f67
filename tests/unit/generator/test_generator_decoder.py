"""The CMR-TARGET decoder: stream layout, shapes, causal and memory masking, and the cached incremental path
(used for generation) agreeing with the full teacher-forced forward."""

from __future__ import annotations

import pytest
import torch

from cmr.generator.config import DecoderConfig
from cmr.generator.decoder import ReportDecoder, collate, stream_positions
from cmr.generator.vocab import BOS, EOR, PAD, SEP
from cmr.labels import DISEASES, FINDINGS

CFG = DecoderConfig(layers=2, width=32, heads=4, dropout=0.0, max_tokens=6, max_sentences=3)
V, W = 40, 16


@pytest.fixture(scope="module")
def decoder() -> ReportDecoder:
    torch.manual_seed(0)
    return ReportDecoder(CFG, V, W).eval()


def _batch() -> tuple[torch.Tensor, ...]:
    streams = [stream_positions([[5, 6, 7], [8, 9]], BOS, SEP, EOR), stream_positions([[10, 11, 12, 13, 14, 15]], BOS, SEP, EOR)]
    tok, sent, pos, tgt = collate(streams)
    g = torch.Generator().manual_seed(1)
    mem = torch.randn(2, 5, W, generator=g)
    pad = torch.tensor([[False, False, True, False, False], [False, True, True, False, False]])
    return tok, sent, pos, tgt, mem, pad


def test_stream_layout() -> None:
    seq, sent, pos, tgt = stream_positions([[5, 6, 7], [8, 9]], BOS, SEP, EOR)
    assert seq == [BOS, 5, 6, 7, SEP, 8, 9, SEP]
    assert sent == [0, 0, 0, 0, 1, 1, 1, 2]  # a SEP opens the next sentence: it predicts its first word or EOR
    assert pos == [0, 1, 2, 3, 0, 1, 2, 0]
    assert tgt == [5, 6, 7, SEP, 8, 9, SEP, EOR]
    tok, s, p, t = collate([(seq, sent, pos, tgt), stream_positions([[5]], BOS, SEP, EOR)])
    assert tok.shape == (2, 8) and tok[1, 3:].eq(PAD).all() and t[1, 3:].eq(PAD).all() and t[1, 2] == EOR


@torch.no_grad()
def test_shapes_and_finding_logits(decoder: ReportDecoder) -> None:
    tok, sent, pos, tgt, mem, pad = _batch()
    logits = decoder(tok, sent, pos, mem, pad)
    assert logits.shape == (2, tok.shape[1], V) and torch.isfinite(logits).all()
    logits2, findings = decoder(tok, sent, pos, mem, pad, with_findings=True)
    assert torch.equal(logits, logits2) and findings.shape == (2, len(FINDINGS) + len(DISEASES))
    with pytest.raises(ValueError, match="decoder expects"):
        decoder(tok, sent, pos, torch.randn(2, 5, W + 1), pad)
    with pytest.raises(ValueError, match="padding mask"):
        decoder(tok, sent, pos, mem, pad[:, :4])


@torch.no_grad()
def test_causal_mask_hides_later_tokens(decoder: ReportDecoder) -> None:
    tok, sent, pos, tgt, mem, pad = _batch()
    before = decoder(tok, sent, pos, mem, pad)
    changed = tok.clone()
    changed[:, 4:] = 20
    after = decoder(changed, sent, pos, mem, pad)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4:], after[:, 4:], atol=1e-4)


@torch.no_grad()
def test_padded_memory_tokens_are_ignored_even_when_nan(decoder: ReportDecoder) -> None:
    tok, sent, pos, tgt, mem, pad = _batch()
    before = decoder(tok, sent, pos, mem, pad)
    changed = mem.clone()
    changed[pad] = float("nan")
    after = decoder(tok, sent, pos, changed, pad)
    assert torch.isfinite(after).all() and torch.allclose(before, after, atol=1e-6)
    changed = mem.clone()
    changed[0, 0] = torch.randn(W)  # a token that is not padded does matter
    assert not torch.allclose(decoder(tok, sent, pos, changed, pad)[0], before[0], atol=1e-4)


@torch.no_grad()
def test_incremental_decoding_matches_the_full_forward(decoder: ReportDecoder) -> None:
    tok, sent, pos, tgt, mem, pad = _batch()
    full = decoder(tok, sent, pos, mem, pad)
    state = decoder.start(mem, pad)
    steps = torch.stack([decoder.step(state, tok[:, i], sent[:, i], pos[:, i]) for i in range(tok.shape[1])], 1)
    assert state.length == tok.shape[1]
    assert torch.allclose(full, steps, atol=1e-5)
    # Selecting streams (beam search) keeps each stream's cache.
    picked = state.select(torch.tensor([1, 1, 0]))
    nxt = decoder.step(picked, torch.tensor([5, 6, 7]), torch.tensor([1, 1, 1]), torch.tensor([1, 1, 1]))
    ref = decoder.step(state, torch.tensor([7, 5]), torch.tensor([1, 1]), torch.tensor([1, 1]))
    assert torch.allclose(nxt[2], ref[0], atol=1e-5) and torch.allclose(nxt[0], ref[1], atol=1e-5)


def test_training_step_reduces_loss() -> None:
    torch.manual_seed(0)
    dec = ReportDecoder(CFG, V, W).train()
    tok, sent, pos, tgt, mem, pad = _batch()
    opt = torch.optim.AdamW(dec.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(dec(tok, sent, pos, mem, pad).flatten(0, 1), tgt.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.5
    assert dec.tok_emb.weight.grad is not None  # tied: the output layer trains the embedding
