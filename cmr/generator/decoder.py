"""The CMR-TARGET decoder: a pre-norm torch.nn.TransformerDecoder that writes a report as one token stream

    [BOS] s1 ... [SEP] s2 ... [SEP] ... sn ... [SEP] [EOR]

cross-attending to the frozen CMR-CLIP exam tokens (CLS + one per frame, projected to the decoder width,
missing frames masked out). Each input token carries three learnt embeddings: the token (tied with the
output layer), its position inside its sentence and its sentence's index, plus a projection of the exam's
CLS token (global conditioning). A boundary token (BOS, or the SEP that closes sentence k-1) sits at
(sentence k, position 0); from it the decoder either starts sentence k or predicts EOR, which is the learnt
end-of-report decision. Sentence k therefore sees the image and every
sentence written before it, and a caller can stream each sentence as soon as its SEP is written.

The finding plan (`DecoderConfig.plan`): a finding reader (attention pooling over the exam tokens, then an
MLP) predicts the findings and the disease from the image; the decoder is conditioned on that plan (present
findings as 0/1, the disease one-hot, projected and added to every input embedding). Training feeds the
plan the reference report states (teacher forcing), so the decoder learns to write what the plan says and
the reader alone decides what the image shows; generation feeds the reader's own plan, binarised at
per-finding thresholds tuned on held-out studies (`plan_thresholds`, kept in the state dict). The plan is
what is *still to be said*: each sentence's tokens see the plan minus what the sentences before it stated
(by the labeller), so the report ends (EOR) once everything planned has been said, and a rare finding in the
plan is not dropped for the common phrasing of a normal report. Without the
plan a small decoder trained on few reports collapses onto the most common impression ("normal heart").

Training runs the whole stream at once (`forward`, teacher forcing, causal mask). Generation runs it one
token at a time with cached keys and values (`start` / `step`), using the very same layer weights; a test
checks that both give the same logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmr.generator.config import DecoderConfig
from cmr.generator.vocab import PAD
from cmr.labels import DISEASES, FINDINGS

N_FINDINGS = len(FINDINGS)
PLAN_SIZE = len(FINDINGS) + len(DISEASES)  # the plan: one flag per finding, then the disease one-hot


@dataclass
class DecoderState:
    """Key/value caches of one batch of streams: per layer self-attention buffers [B, H, capacity, d] (the
    first `length` positions used; capacity doubles when full) and memory keys/values [B, H, S, d]."""

    self_k: list[Tensor]
    self_v: list[Tensor]
    mem_k: list[Tensor]
    mem_v: list[Tensor]
    mem_bias: Tensor  # [B, 1, 1, S] additive attention bias: 0, or -inf for a padded memory token
    cond: Tensor  # [B, 1, D] the exam's global conditioning, added to every input embedding
    length: int = 0
    plan: Tensor | None = None  # [B, PLAN_SIZE] what is still to be said (plan decoders)
    plan_cond: Tensor | None = None  # [B, 1, D] its projection, added to every input embedding

    def select(self, rows: Tensor) -> DecoderState:
        """The streams `rows` (beam reordering and expansion, dropping finished streams)."""
        n = self.length
        pick = lambda xs: [x[:, :, :n].index_select(0, rows) for x in xs]  # noqa: E731
        mem = lambda xs: [x.index_select(0, rows) for x in xs]  # noqa: E731
        opt = lambda x: None if x is None else x.index_select(0, rows)  # noqa: E731
        return DecoderState(pick(self.self_k), pick(self.self_v), mem(self.mem_k), mem(self.mem_v),
                            self.mem_bias.index_select(0, rows), self.cond.index_select(0, rows), n,
                            opt(self.plan), opt(self.plan_cond))

    def _append(self, i: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        n = self.length
        if self.self_k[i].shape[2] <= n:  # grow: amortised O(1) per token instead of a copy per step
            grow = lambda x: torch.cat([x, torch.zeros_like(x[:, :, :1]).expand(-1, -1, max(16, n), -1)], dim=2)  # noqa: E731
            self.self_k[i], self.self_v[i] = grow(self.self_k[i]), grow(self.self_v[i])
        self.self_k[i][:, :, n : n + 1] = k
        self.self_v[i][:, :, n : n + 1] = v
        return self.self_k[i][:, :, : n + 1], self.self_v[i][:, :, : n + 1]


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """One query per stream ([B, H, 1, d]) against [B, H, L, d]: plain matmuls beat the fused kernel here."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class FindingReader(nn.Module):
    """Findings and disease from the exam tokens: a learnt query pools the frame tokens (attention), and an
    MLP reads [CLS token, pooled frames]. It reads the CLIP features at their own width (not the decoder's
    narrower projection): the plan is only as good as this reader."""

    def __init__(self, memory_width: int, dropout: float, hidden: int = 256) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(memory_width)
        self.query = nn.Parameter(torch.zeros(memory_width))
        self.mlp = nn.Sequential(nn.Linear(2 * memory_width, hidden), nn.GELU(), nn.Dropout(max(dropout, 0.2)),
                                 nn.Linear(hidden, PLAN_SIZE))

    def forward(self, memory: Tensor, memory_pad: Tensor) -> Tensor:
        x = self.norm(memory.float().masked_fill(memory_pad[..., None], 0.0))
        scores = (x @ self.query) * (x.shape[-1] ** -0.5)
        weights = torch.softmax(scores.masked_fill(memory_pad, -math.inf), dim=-1)
        pooled = (weights[..., None] * x).sum(dim=1)
        return self.mlp(torch.cat([x[:, 0], pooled], dim=-1))


class ReportDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, vocab_size: int, memory_width: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.memory_width = memory_width
        d = cfg.width
        self.tok_emb = nn.Embedding(vocab_size, d)
        self.pos_emb = nn.Embedding(cfg.max_tokens + 1, d)  # 0 = the boundary token, 1..max_tokens = words
        self.sent_emb = nn.Embedding(cfg.max_sentences + 1, d)  # the boundary after the last sentence is n
        # Scales: the token embedding enters at sqrt(d) x (std 1, as large as what the blocks add to the residual
        # stream, so word identity is not drowned) and leaves as the tied output weight (std d^-1/2: logits of
        # std 1 at the start); positions and sentence indices enter a little weaker.
        self.emb_scale = math.sqrt(d)
        nn.init.normal_(self.tok_emb.weight, std=d ** -0.5)
        nn.init.normal_(self.pos_emb.weight, std=0.5)
        nn.init.normal_(self.sent_emb.weight, std=0.5)
        self.memory_proj = nn.Sequential(nn.LayerNorm(memory_width), nn.Linear(memory_width, d))
        # The exam's CLS token also goes straight into every input embedding: a shortcut that makes the
        # decoder use the image from the first epochs (cross-attention to every frame token does the rest).
        self.cond_proj = nn.Linear(d, d)
        nn.init.zeros_(self.cond_proj.weight)  # starts silent, grows as far as it helps
        nn.init.zeros_(self.cond_proj.bias)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerDecoderLayer(d, cfg.heads, int(d * cfg.mlp_ratio), cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.norm = nn.LayerNorm(d)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size))  # the output weight is tok_emb (tied)
        # The finding reader: findings + disease logits from the exam tokens (trained on the reference labels,
        # or on what the report states by the rule-based labeller, so any report text can supply them).
        self.finding_reader = FindingReader(memory_width, cfg.dropout)
        if cfg.plan:
            self.plan_proj = nn.Linear(PLAN_SIZE, d)
            # Decision thresholds of the reader's finding probabilities (tuned after training).
            self.register_buffer("plan_thresholds", torch.full((N_FINDINGS,), 0.5))

    # -- shared pieces ------------------------------------------------------------------------------------

    def _embed(self, tokens: Tensor, sent: Tensor, pos: Tensor, cond: Tensor) -> Tensor:
        return self.drop(self.tok_emb(tokens) * self.emb_scale + self.pos_emb(pos) + self.sent_emb(sent) + cond)

    def _logits(self, h: Tensor) -> Tensor:
        return F.linear(self.norm(h), self.tok_emb.weight, self.out_bias)

    def project_memory(self, memory: Tensor, memory_pad: Tensor) -> Tensor:
        """[B, S, W] exam tokens -> [B, S, D]; padded tokens are zeroed first (a NaN there would survive a
        zero attention weight)."""
        if memory.ndim != 3 or memory.shape[-1] != self.memory_width:
            raise ValueError(f"exam tokens of shape {tuple(memory.shape)}: the decoder expects [B, S, "
                             f"{self.memory_width}] (features of another CMR-CLIP model?)")
        if memory_pad.shape != memory.shape[:2]:
            raise ValueError(f"padding mask {tuple(memory_pad.shape)} does not match exam tokens {tuple(memory.shape[:2])}")
        return self.memory_proj(memory.float().masked_fill(memory_pad.bool()[..., None], 0.0))

    # -- training: the whole stream at once ------------------------------------------------------------

    def read_findings(self, memory: Tensor, memory_pad: Tensor) -> Tensor:
        """Finding + disease logits [B, PLAN_SIZE] of the exams (sigmoid per finding, softmax over diseases)."""
        return self.finding_reader(memory, memory_pad.bool())

    def plan_from_logits(self, logits: Tensor) -> Tensor:
        """The reader's plan: each finding present when its probability reaches its threshold, the most
        likely disease one-hot."""
        present = (torch.sigmoid(logits[:, :N_FINDINGS]) >= self.plan_thresholds).float()
        disease = F.one_hot(logits[:, N_FINDINGS:].argmax(-1), len(DISEASES)).float()
        return torch.cat([present, disease], dim=1)

    def _plan(self, mem: Tensor, memory: Tensor, memory_pad: Tensor, plan: Tensor | None,
              findings: Tensor | None = None) -> Tensor | None:
        """The plan to write from: given ([B, P], or [B, K, P] per sentence), or the reader's own; None for a
        decoder without plan."""
        if not self.cfg.plan:
            return None
        if plan is None:
            logits = self.read_findings(memory, memory_pad) if findings is None else findings
            plan = self.plan_from_logits(logits.detach())
        if plan.ndim not in (2, 3) or plan.shape[0] != mem.shape[0] or plan.shape[-1] != PLAN_SIZE:
            raise ValueError(f"plan of shape {tuple(plan.shape)}: expected [{mem.shape[0]}, {PLAN_SIZE}] or "
                             f"[{mem.shape[0]}, sentences + 1, {PLAN_SIZE}] (findings flags, then the disease one-hot)")
        return plan.to(mem.dtype)

    def set_plan(self, state: DecoderState, plan: Tensor) -> None:
        """What is still to be said, from now on ([B, PLAN_SIZE]): generation removes what each finished
        sentence stated, as training did (`cmr.generator.plan.remaining_after`)."""
        state.plan = plan.to(state.cond.dtype)
        state.plan_cond = self.plan_proj(state.plan)[:, None]

    def forward(self, tokens: Tensor, sent: Tensor, pos: Tensor, memory: Tensor, memory_pad: Tensor,
                with_findings: bool = False, plan: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """tokens/sent/pos [B, L] (right padded with PAD), memory [B, S, W], memory_pad [B, S] (True = padded)
        -> logits [B, L, V] (and, `with_findings`, the reader's finding + disease logits [B, PLAN_SIZE]).
        `plan` [B, PLAN_SIZE]: the plan to write from (training: the reference's); None = the reader's.
        Padding needs no mask: it only follows real tokens, which the causal mask hides it from."""
        n = tokens.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
        mem = self.project_memory(memory, memory_pad)
        findings = self.read_findings(memory, memory_pad) if with_findings or (self.cfg.plan and plan is None) else None
        cond = self.cond_proj(mem[:, :1])
        plan = self._plan(mem, memory, memory_pad, plan, findings)
        if plan is not None and plan.ndim == 3:  # per sentence: each token reads the plan of its sentence
            rows = sent.clamp(max=plan.shape[1] - 1)[..., None].expand(-1, -1, PLAN_SIZE)
            cond = cond + self.plan_proj(plan.gather(1, rows))
        elif plan is not None:
            cond = cond + self.plan_proj(plan)[:, None]
        h = self.decoder(self._embed(tokens, sent, pos, cond), mem, tgt_mask=causal,
                         memory_key_padding_mask=memory_pad.bool(), tgt_is_causal=True)
        if with_findings:
            assert findings is not None
            return self._logits(h), findings
        return self._logits(h)

    # -- generation: one token at a time with cached keys and values -------------------------------------

    @torch.no_grad()
    def start(self, memory: Tensor, memory_pad: Tensor, plan: Tensor | None = None) -> DecoderState:
        """Empty caches for a batch of exams, with each layer's memory keys/values computed once; `plan` as in
        `forward` (None = the reader's)."""
        mem = self.project_memory(memory, memory_pad)
        b = mem.shape[0]
        mk, mv = [], []
        for layer in self.decoder.layers:
            attn = layer.multihead_attn
            d = attn.embed_dim
            w, bias = attn.in_proj_weight, attn.in_proj_bias
            k = F.linear(mem, w[d:2 * d], None if bias is None else bias[d:2 * d])
            v = F.linear(mem, w[2 * d:], None if bias is None else bias[2 * d:])
            mk.append(self._heads(k, attn.num_heads))
            mv.append(self._heads(v, attn.num_heads))
        h, dh = self.cfg.heads, self.cfg.width // self.cfg.heads
        bias = torch.zeros(memory_pad.shape, dtype=mem.dtype, device=mem.device)
        bias = bias.masked_fill(memory_pad.bool(), -math.inf)[:, None, None, :]
        n = len(self.decoder.layers)
        state = DecoderState([mem.new_zeros(b, h, 32, dh) for _ in range(n)],
                             [mem.new_zeros(b, h, 32, dh) for _ in range(n)], mk, mv, bias, self.cond_proj(mem[:, :1]))
        initial = self._plan(mem, memory, memory_pad, plan)
        if initial is not None:
            if initial.ndim != 2:
                raise ValueError("generation starts from one plan per exam ([B, PLAN_SIZE])")
            self.set_plan(state, initial)
        return state

    @staticmethod
    def _heads(x: Tensor, heads: int) -> Tensor:  # [B, L, D] -> [B, H, L, D/H]
        b, n, d = x.shape
        return x.view(b, n, heads, d // heads).transpose(1, 2)

    @torch.no_grad()
    def step(self, state: DecoderState, tokens: Tensor, sent: Tensor, pos: Tensor) -> Tensor:
        """Feed one token per stream ([B] each); caches grow by one; returns next-token logits [B, V]."""
        cond = state.cond if state.plan_cond is None else state.cond + state.plan_cond
        x = self._embed(tokens[:, None], sent[:, None], pos[:, None], cond)  # [B, 1, D]
        for i, layer in enumerate(self.decoder.layers):
            # Pre-norm TransformerDecoderLayer, written out (eval mode: dropout is the identity).
            sa = layer.self_attn
            d = sa.embed_dim
            q_in = layer.norm1(x)
            w, bias = sa.in_proj_weight, sa.in_proj_bias
            q, k, v = (F.linear(q_in, w[j * d:(j + 1) * d], None if bias is None else bias[j * d:(j + 1) * d])
                       for j in range(3))
            keys, values = state._append(i, self._heads(k, sa.num_heads), self._heads(v, sa.num_heads))
            a = _attend(self._heads(q, sa.num_heads), keys, values)
            x = x + sa.out_proj(a.transpose(1, 2).reshape(x.shape))
            ca = layer.multihead_attn
            q = F.linear(layer.norm2(x), ca.in_proj_weight[:d], None if ca.in_proj_bias is None else ca.in_proj_bias[:d])
            a = _attend(self._heads(q, ca.num_heads), state.mem_k[i], state.mem_v[i], state.mem_bias)
            x = x + ca.out_proj(a.transpose(1, 2).reshape(x.shape))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
        state.length += 1
        return self._logits(x)[:, 0]


def stream_positions(sentences: list[list[int]], bos: int, sep: int, eor: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Teacher-forcing arrays of one report: (input tokens, their sentence index, their position, targets)."""
    seq, sent, pos = [bos], [0], [0]
    for k, ids in enumerate(sentences):
        seq += ids
        sent += [k] * len(ids)
        pos += list(range(1, len(ids) + 1))
        seq.append(sep)
        sent.append(k + 1)
        pos.append(0)
    targets = seq[1:] + [eor]
    return seq, sent, pos, targets


def collate(streams: list[tuple[list[int], list[int], list[int], list[int]]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Right-pad a batch of `stream_positions` outputs; padded targets are PAD (ignored by the loss)."""
    n = max(len(s[0]) for s in streams)
    out = torch.full((4, len(streams), n), PAD, dtype=torch.long)
    for b, parts in enumerate(streams):
        for j, values in enumerate(parts):
            out[j, b, : len(values)] = torch.tensor(values, dtype=torch.long)
    return out[0], out[1], out[2], out[3]
