"""CMR-TARGET as one object: the decoder, its vocabulary, its config and the CMR-CLIP version it was trained
on. Inputs are the frozen CMR-CLIP exam tokens (`CMRCLIP.exam_tokens`), never pixels, so the image encoder
runs wherever the platform runs it (Triton, a local model) and the generator only checks the version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cmr.generator.config import TargetConfig
from cmr.generator.decoder import ReportDecoder
from cmr.generator.decoding import Decoding, greedy_batch, stream_sentences
from cmr.generator.plan import remaining_after
from cmr.generator.vocab import ReportVocab

MAX_BATCH = 4096


def _as_tensor(x: Any, name: str, device: torch.device) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x))  # a copy: inputs may be read-only memory maps
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch tensor or a numpy array, not {type(x).__name__}")
    return x.to(device)


class TargetGenerator:
    def __init__(self, decoder: ReportDecoder, vocab: ReportVocab, config: TargetConfig, clip_version: str,
                 meta: dict[str, Any] | None = None) -> None:
        if len(vocab) != decoder.vocab_size:
            raise ValueError(f"vocabulary of {len(vocab)} tokens for a decoder of {decoder.vocab_size}")
        self.decoder = decoder.eval()
        self.vocab = vocab
        self.config = config
        self.clip_version = clip_version
        self.meta = dict(meta or {})

    @property
    def device(self) -> torch.device:
        return self.decoder.out_bias.device

    def to(self, device: str | torch.device) -> TargetGenerator:
        self.decoder.to(device)
        return self

    def _inputs(self, exam_tokens: Any, pad_mask: Any, batched: bool) -> tuple[Tensor, Tensor]:
        tokens = _as_tensor(exam_tokens, "exam_tokens", self.device)
        pad = _as_tensor(pad_mask, "pad_mask", self.device)
        if tokens.ndim == 2:
            tokens = tokens[None]
        if pad.ndim == 1:
            pad = pad[None]
        w = self.decoder.memory_width
        if tokens.ndim != 3 or tokens.shape[-1] != w:
            raise ValueError(f"exam_tokens must be [S, {w}] or [B, S, {w}] (CMRCLIP.exam_tokens), got {tuple(tokens.shape)}")
        if not batched and tokens.shape[0] != 1:
            raise ValueError(f"generate() writes one report: got exam tokens for {tokens.shape[0]} exams "
                             "(use generate_batch)")
        if tokens.shape[0] > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} exams per call")
        if pad.shape != tokens.shape[:2]:
            raise ValueError(f"pad_mask {tuple(pad.shape)} does not match exam_tokens {tuple(tokens.shape[:2])} "
                             "(pass the key padding mask of CMRCLIP.exam_tokens: True where padded)")
        if pad.dtype != torch.bool:
            raise ValueError(f"pad_mask must be boolean (True where padded), not {pad.dtype}")
        if not tokens.is_floating_point():
            raise ValueError(f"exam_tokens must be floating point, not {tokens.dtype}")
        if bool(pad.all(dim=1).any()):
            raise ValueError("an exam has every token padded: nothing to condition on")
        if not bool(torch.isfinite(tokens.float().masked_fill(pad[..., None], 0.0)).all()):
            raise ValueError("exam_tokens hold NaN or infinite values")
        return tokens.float(), pad

    def generate(self, exam_tokens: Any, pad_mask: Any, decoding: Decoding | None = None) -> Iterator[str]:
        """Write the impression of one exam, yielding each sentence as soon as it is complete.

        exam_tokens [S, W] or [1, S, W] and pad_mask [S] or [1, S] (True where padded) are what
        `CMRCLIP.exam_tokens` returns. Bad inputs and options raise ValueError before anything is yielded."""
        d = (decoding or Decoding()).resolve(self.config.model)
        tokens, pad = self._inputs(exam_tokens, pad_mask, batched=False)
        numbered = self.vocab.numbered if d.numbered is None else d.numbered
        return self._stream(tokens, pad, d, numbered)

    def _stream(self, tokens: Tensor, pad: Tensor, d: Decoding, numbered: bool) -> Iterator[str]:
        for k, ids in enumerate(stream_sentences(self.decoder, tokens, pad, d, self._replan), 1):
            text = self.vocab.decode(ids)
            yield f"{k}. {text}" if numbered else text

    def draft(self, exam_tokens: Any, pad_mask: Any, decoding: Decoding | None = None) -> str:
        """The whole impression as one text (numbered lines, or one paragraph)."""
        numbered = self.vocab.numbered if decoding is None or decoding.numbered is None else decoding.numbered
        sentences = list(self.generate(exam_tokens, pad_mask, decoding))  # already numbered when `numbered`
        return ("\n" if numbered else " ").join(sentences)

    def generate_batch(self, exam_tokens: Any, pad_mask: Any, max_sentences: int | None = None,
                       max_tokens: int | None = None) -> list[list[str]]:
        """Greedy sentences (unnumbered) of a batch of exams ([B, S, W], [B, S]) in one pass."""
        d = Decoding(max_sentences=max_sentences, max_tokens=max_tokens).resolve(self.config.model)
        tokens, pad = self._inputs(exam_tokens, pad_mask, batched=True)
        assert d.max_sentences is not None and d.max_tokens is not None
        ids = greedy_batch(self.decoder, tokens, pad, d.max_sentences, d.max_tokens, self._replan)
        return [[self.vocab.decode(s) for s in report] for report in ids]

    def _replan(self, plan: Tensor, ids: list[int]) -> Tensor:
        return remaining_after(plan, self.vocab.decode(ids))

    def format_report(self, sentences: Sequence[str], numbered: bool | None = None) -> str:
        return self.vocab.format_report(sentences, numbered)
