"""Decoding the CMR-TARGET token stream sentence by sentence: greedy, beam search (per sentence) and
temperature sampling, with a learnt end-of-report decision and hard, validated limits.

At every sentence boundary the decoder's distribution over (first word of the next sentence | EOR) decides
whether the report goes on: greedy and beam stop when ending is more likely than going on (P(EOR) >= 1/2;
comparing EOR with the single most likely first word instead would end reports early, because the mass of
"go on" is split over many first words), sampling stops when it samples EOR. Beam search then searches the words of that one sentence (length-normalised log-probability)
and commits the best before moving on, so sentences can be streamed as they are produced. A sentence that
repeats one already written ends the report (a degenerate loop, never useful in an impression).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from cmr.generator.config import MAX_SENTENCES_LIMIT, MAX_TOKENS_LIMIT, DecoderConfig
from cmr.generator.decoder import DecoderState, ReportDecoder
from cmr.generator.vocab import BOS, EOR, N_SPECIAL, SEP

STRATEGIES = ("greedy", "beam", "sample")
MAX_BEAM_WIDTH = 8
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**64 - 1


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Decoding:
    """How to decode. Limits are checked here (ValueError) and against the model in `resolve`.

    strategy: "greedy" | "beam" | "sample"; beam_width: 1..8 (beam only); temperature: (0, 2] (sample only);
    seed: 0..2**64-1 (sample only; the same seed gives the same report); max_sentences: 1..12 and max_tokens
    (WordPiece tokens per sentence): 1..64, None = the model's own limit; numbered: prefix "1. ", "2. ", ...
    (None = as most of the training impressions were)."""

    strategy: str = "greedy"
    beam_width: int = 4
    temperature: float = 1.0
    seed: int = 0
    max_sentences: int | None = None
    max_tokens: int | None = None
    numbered: bool | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"decoding strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not _is_int(self.beam_width) or not 1 <= self.beam_width <= MAX_BEAM_WIDTH:
            raise ValueError(f"beam_width must be an integer from 1 to {MAX_BEAM_WIDTH}, not {self.beam_width!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be a number above 0 and at most {MAX_TEMPERATURE}, not {t!r}")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to 2**64-1, not {self.seed!r}")
        if self.max_sentences is not None and (not _is_int(self.max_sentences)
                                               or not 1 <= self.max_sentences <= MAX_SENTENCES_LIMIT):
            raise ValueError(f"max_sentences must be an integer from 1 to {MAX_SENTENCES_LIMIT}, not {self.max_sentences!r}")
        if self.max_tokens is not None and (not _is_int(self.max_tokens) or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT):
            raise ValueError(f"max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}, not {self.max_tokens!r}")
        if self.numbered is not None and not isinstance(self.numbered, bool):
            raise ValueError(f"numbered must be true, false or None, not {self.numbered!r}")

    def resolve(self, cfg: DecoderConfig) -> Decoding:
        """Limits filled in from the model; a request beyond what the model was built for is refused."""
        if self.max_sentences is not None and self.max_sentences > cfg.max_sentences:
            raise ValueError(f"max_sentences={self.max_sentences}: this model writes at most {cfg.max_sentences} sentences")
        if self.max_tokens is not None and self.max_tokens > cfg.max_tokens:
            raise ValueError(f"max_tokens={self.max_tokens}: this model writes at most {cfg.max_tokens} tokens per sentence")
        return replace(self, max_sentences=self.max_sentences or cfg.max_sentences,
                       max_tokens=self.max_tokens or cfg.max_tokens)


def _allowed(logits: Tensor, *, eor: bool, sep: bool) -> Tensor:
    """Logits with the special tokens that may not come next set to -inf (words are always allowed)."""
    out = logits.clone()
    out[..., :N_SPECIAL] = -math.inf
    if eor:
        out[..., EOR] = logits[..., EOR]
    if sep:
        out[..., SEP] = logits[..., SEP]
    return out


def _ends(boundary_logits: Tensor) -> Tensor:
    """Whether the report ends here: P(EOR) >= 1/2 among what may follow a boundary (bool, per row)."""
    return torch.softmax(boundary_logits.float(), dim=-1)[..., EOR] >= 0.5


def _sample(logits: Tensor, temperature: float, gen: torch.Generator) -> int:
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _one(value: int, device: torch.device) -> Tensor:
    return torch.tensor([value], dtype=torch.long, device=device)


Replan = Callable[[Tensor, list[int]], Tensor]  # (plan [PLAN_SIZE], sentence ids) -> what is still to be said


def stream_sentences(decoder: ReportDecoder, memory: Tensor, memory_pad: Tensor, decoding: Decoding,
                     replan: Replan | None = None) -> Iterator[list[int]]:
    """Decoder token ids of each sentence of one exam's report ([1, S, W] memory, [1, S] padding mask),
    yielded as soon as the sentence is complete. `decoding` must be resolved (`Decoding.resolve`).
    `replan`: for a plan decoder, the plan after each sentence (what it stated removed)."""
    if decoding.max_sentences is None or decoding.max_tokens is None:
        raise ValueError("resolve the decoding options against the model first (Decoding.resolve)")
    if memory.shape[0] != 1:
        raise ValueError(f"one exam at a time: got a batch of {memory.shape[0]}")
    decoder.eval()
    dev = memory.device
    gen = torch.Generator().manual_seed(decoding.seed)
    with torch.no_grad():
        state = decoder.start(memory, memory_pad)
        logits = decoder.step(state, _one(BOS, dev), _one(0, dev), _one(0, dev))[0]
    written: list[list[int]] = []
    for k in range(decoding.max_sentences):
        with torch.no_grad():
            boundary = _allowed(logits, eor=True, sep=False)
            if decoding.strategy == "sample":
                first = _sample(boundary, decoding.temperature, gen)
            else:
                first = EOR if _ends(boundary) else int(_allowed(logits, eor=False, sep=False).argmax())
            if first == EOR:
                return
            if decoding.strategy == "beam" and decoding.beam_width > 1:
                ids = _beam_sentence(decoder, state, logits, k, decoding.beam_width, decoding.max_tokens)
                for j, tok in enumerate(ids):
                    logits = decoder.step(state, _one(tok, dev), _one(k, dev), _one(j + 1, dev))[0]
            else:
                ids, cur = [], first
                while True:
                    ids.append(cur)
                    logits = decoder.step(state, _one(cur, dev), _one(k, dev), _one(len(ids), dev))[0]
                    if len(ids) >= decoding.max_tokens:
                        break  # cut: the sentence ends here
                    nxt = _allowed(logits, eor=False, sep=True)
                    cur = _sample(nxt, decoding.temperature, gen) if decoding.strategy == "sample" else int(nxt.argmax())
                    if cur == SEP:
                        break
        if ids in written:
            return
        written.append(ids)
        yield ids
        if k + 1 < decoding.max_sentences:
            with torch.no_grad():
                if replan is not None and state.plan is not None:
                    decoder.set_plan(state, replan(state.plan[0], ids)[None])
                logits = decoder.step(state, _one(SEP, dev), _one(k + 1, dev), _one(0, dev))[0]


def _beam_sentence(decoder: ReportDecoder, state: DecoderState, boundary_logits: Tensor, k: int, width: int,
                   max_tokens: int) -> list[int]:
    """Beam search over the words of sentence k from a boundary state (left unchanged); the best sentence by
    mean log-probability per token (its SEP included). A hypothesis ends when SEP ranks among the `width`
    best continuations; the search stops when `width` have ended and no live one can still beat them."""
    dev = boundary_logits.device
    lp = torch.log_softmax(_allowed(boundary_logits, eor=False, sep=False).float(), dim=-1)
    n_first = min(width, int(torch.isfinite(lp).sum()))
    scores, first = lp.topk(n_first)
    hyps = first[:, None]  # [A, n]
    bstate = state.select(torch.zeros(n_first, dtype=torch.long, device=dev))
    finished: list[tuple[float, list[int]]] = []
    for n in range(1, max_tokens + 1):
        a = hyps.shape[0]
        logits = decoder.step(bstate, hyps[:, -1], torch.full((a,), k, device=dev), torch.full((a,), n, device=dev))
        lp = torch.log_softmax(_allowed(logits, eor=False, sep=True).float(), dim=-1)  # [A, V]
        if n >= max_tokens:  # cut: every live hypothesis ends here, scored like one that chose to end
            finished += [(float(scores[i] + lp[i, SEP]) / (n + 1), hyps[i].tolist()) for i in range(a)]
            break
        cand = (scores[:, None] + lp).flatten()
        top_scores, top_idx = cand.topk(min(2 * width, int(torch.isfinite(cand).sum())))
        keep_rows, keep_tok, keep_scores = [], [], []
        for rank, (sc, i) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
            row, tok = divmod(i, lp.shape[1])
            if tok == SEP:
                if rank < width:
                    finished.append((sc / (n + 1), hyps[row].tolist()))
            elif len(keep_rows) < width:
                keep_rows.append(row)
                keep_tok.append(tok)
                keep_scores.append(sc)
        finished = sorted(finished, key=lambda f: -f[0])[:width]
        if not keep_rows:
            break
        # Log-probabilities only fall: a live hypothesis's mean can rise only by growing longer, and the best it
        # can do is hold its current sum over more tokens (the usual beam-search stopping heuristic).
        if len(finished) >= width and max(keep_scores) / (n + 2) <= finished[-1][0]:
            break
        rows = torch.tensor(keep_rows, dtype=torch.long, device=dev)
        bstate = bstate.select(rows)
        hyps = torch.cat([hyps[rows], torch.tensor(keep_tok, dtype=torch.long, device=dev)[:, None]], dim=1)
        scores = torch.tensor(keep_scores, device=dev)
    return max(finished, key=lambda f: f[0])[1]


@torch.no_grad()
def greedy_batch(decoder: ReportDecoder, memory: Tensor, memory_pad: Tensor, max_sentences: int,
                 max_tokens: int, replan: Replan | None = None) -> list[list[list[int]]]:
    """Greedy reports of a batch of exams at once (validation, bulk drafting): per exam, the token ids of
    each sentence. Same decisions as `stream_sentences` with strategy "greedy" (and the same `replan`)."""
    decoder.eval()
    dev = memory.device
    b = memory.shape[0]
    state = decoder.start(memory, memory_pad)
    rows = list(range(b))  # live stream -> exam
    out: list[list[list[int]]] = [[] for _ in range(b)]
    cur: list[list[int]] = [[] for _ in range(b)]
    sent = [0] * b
    logits = decoder.step(state, torch.full((b,), BOS, device=dev), torch.zeros(b, dtype=torch.long, device=dev),
                          torch.zeros(b, dtype=torch.long, device=dev))
    while rows:
        at_boundary = torch.tensor([not cur[e] for e in rows], device=dev)
        choice_t = torch.where(at_boundary[:, None], _allowed(logits, eor=False, sep=False),
                               _allowed(logits, eor=False, sep=True)).argmax(-1)
        ends = at_boundary & _ends(_allowed(logits, eor=True, sep=False))
        choice = torch.where(ends, torch.full_like(choice_t, EOR), choice_t).tolist()
        keep, feed_tok, feed_sent, feed_pos = [], [], [], []
        replans: list[tuple[int, Tensor]] = []  # (row among those kept, its new plan)
        for j, e in enumerate(rows):
            tok = choice[j]
            if not cur[e] and tok == EOR:
                continue
            if cur[e] and len(cur[e]) >= max_tokens:
                tok = SEP
            if tok == SEP:
                ids, cur[e] = cur[e], []
                if ids in out[e]:
                    continue
                out[e].append(ids)
                if len(out[e]) >= max_sentences:
                    continue
                sent[e] += 1
                if replan is not None and state.plan is not None:
                    replans.append((len(keep), replan(state.plan[j], ids)))
                keep.append(j), feed_tok.append(SEP), feed_sent.append(sent[e]), feed_pos.append(0)
            else:
                cur[e].append(tok)
                keep.append(j), feed_tok.append(tok), feed_sent.append(sent[e]), feed_pos.append(len(cur[e]))
        if not keep:
            break
        if len(keep) < len(rows):
            state = state.select(torch.tensor(keep, dtype=torch.long, device=dev))
        rows = [rows[j] for j in keep]
        if replans:
            assert state.plan is not None
            plan = state.plan.clone()
            for r, new in replans:
                plan[r] = new
            decoder.set_plan(state, plan)
        t = lambda xs: torch.tensor(xs, dtype=torch.long, device=dev)  # noqa: E731
        logits = decoder.step(state, t(feed_tok), t(feed_sent), t(feed_pos))
    return out


__all__ = ["Decoding", "MAX_BEAM_WIDTH", "MAX_TEMPERATURE", "STRATEGIES", "greedy_batch", "stream_sentences"]
