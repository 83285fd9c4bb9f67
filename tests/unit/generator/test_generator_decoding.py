"""Generation: sentences are streamed one at a time, every decoding limit holds, bad options and inputs are
refused with clear errors, and the learnt end-of-report decision is obeyed. Run on random tiny decoders whose
output biases are pushed to force the behaviour under test."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from cmr.generator.decoding import Decoding, _allowed, _beam_sentence, greedy_batch, stream_sentences
from cmr.generator.model import TargetGenerator
from cmr.generator.vocab import BOS, EOR, SEP, ReportVocab
from target_helpers import MEMORY_WIDTH, exam, make_generator


def _never(gen: TargetGenerator, token: int) -> TargetGenerator:
    with torch.no_grad():
        gen.decoder.out_bias[token] = -1e4
    return gen


def _ids(gen: TargetGenerator, d: Decoding, seed: int = 0) -> list[list[int]]:
    tokens, pad = exam(seed)
    return list(stream_sentences(gen.decoder, tokens[None], pad[None], d.resolve(gen.config.model)))


def test_generate_streams_sentences_lazily(vocab: ReportVocab) -> None:
    gen = _never(make_generator(vocab), EOR)
    tokens, pad = exam()
    it = gen.generate(tokens, pad, Decoding(max_sentences=3))
    assert isinstance(it, types.GeneratorType)
    first = next(it)  # the first sentence is available before the others are written
    assert isinstance(first, str) and first
    rest = list(it)
    assert 1 + len(rest) <= 3


@pytest.mark.parametrize("d", [
    Decoding(), Decoding(strategy="beam", beam_width=3), Decoding(strategy="beam", beam_width=8),
    Decoding(strategy="sample", temperature=2.0, seed=5), Decoding(strategy="sample", temperature=0.1),
])
def test_every_strategy_respects_the_token_limit(vocab: ReportVocab, d: Decoding) -> None:
    gen = _never(make_generator(vocab, max_tokens=8), SEP)  # no sentence ends by itself: every one is cut
    for limit in (1, 3, 8):
        out = _ids(gen, Decoding(**{**vars(d), "max_tokens": limit, "max_sentences": 2}))
        assert out and all(len(s) == limit for s in out)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_every_strategy_respects_the_sentence_limit(vocab: ReportVocab, strategy: str) -> None:
    gen = _never(make_generator(vocab, max_tokens=6, max_sentences=4), EOR)  # the report never ends by itself
    for limit in (1, 2, 4):
        out = _ids(gen, Decoding(strategy=strategy, temperature=2.0, max_sentences=limit))
        assert 1 <= len(out) <= limit
    sampled = _ids(gen, Decoding(strategy="sample", temperature=2.0, seed=3))
    assert len(sampled) == 4  # diverse sentences: only the limit stops it (the model's own max_sentences)
    texts = list(gen.generate(*exam(), Decoding(strategy="sample", temperature=2.0, seed=3)))
    assert len(texts) == 4


def test_learnt_end_of_report_decision(vocab: ReportVocab) -> None:
    gen = make_generator(vocab)
    with torch.no_grad():
        gen.decoder.out_bias[EOR] = 1e4  # the model is sure the report is over
    for d in (Decoding(), Decoding(strategy="beam"), Decoding(strategy="sample")):
        assert list(gen.generate(*exam(), d)) == []


def test_sampling_is_reproducible_with_its_seed(vocab: ReportVocab) -> None:
    gen = _never(make_generator(vocab), EOR)
    d = Decoding(strategy="sample", temperature=1.5, seed=42)
    a = list(gen.generate(*exam(), d))
    assert a == list(gen.generate(*exam(), d))
    others = [list(gen.generate(*exam(), Decoding(strategy="sample", temperature=1.5, seed=s))) for s in range(1, 4)]
    assert any(o != a for o in others)
    assert list(gen.generate(*exam(), Decoding(strategy="sample", seed=2**64 - 1)))  # the whole seed range works


def test_beam_of_width_one_is_greedy_and_batch_greedy_matches_streaming(vocab: ReportVocab) -> None:
    gen = make_generator(vocab, max_tokens=8, max_sentences=4, seed=3)
    for s in range(3):
        assert _ids(gen, Decoding(strategy="beam", beam_width=1), s) == _ids(gen, Decoding(), s)
    tokens, pad = exam(0, batch=3)
    batched = greedy_batch(gen.decoder, tokens, pad, 4, 8)
    single = [list(stream_sentences(gen.decoder, tokens[i : i + 1], pad[i : i + 1], Decoding().resolve(gen.config.model)))
              for i in range(3)]
    assert batched == single
    texts = gen.generate_batch(tokens, pad)
    assert texts == [[vocab.decode(s) for s in r] for r in single]


def _sentence_score(gen: TargetGenerator, tokens: torch.Tensor, pad: torch.Tensor, ids: list[int]) -> float:
    """Mean log-probability per token of the first sentence `ids` (+ its SEP), as beam search ranks it."""
    d = gen.decoder
    with torch.no_grad():
        state = d.start(tokens[None], pad[None])
        logits = d.step(state, torch.tensor([BOS]), torch.tensor([0]), torch.tensor([0]))[0]
        total = float(torch.log_softmax(_allowed(logits, eor=False, sep=False), -1)[ids[0]])
        for j, tok in enumerate(ids):
            logits = d.step(state, torch.tensor([tok]), torch.tensor([0]), torch.tensor([j + 1]))[0]
            nxt = ids[j + 1] if j + 1 < len(ids) else SEP
            total += float(torch.log_softmax(_allowed(logits, eor=False, sep=True), -1)[nxt])
    return total / (len(ids) + 1)


def test_beam_search_finds_sentences_at_least_as_likely_as_greedy(vocab: ReportVocab) -> None:
    for seed in range(4):
        gen = make_generator(vocab, max_tokens=6, seed=seed)
        with torch.no_grad():
            gen.decoder.out_bias[SEP] = 4.0  # some sentences end by themselves, some are cut
        tokens, pad = exam(seed)
        d = gen.decoder
        with torch.no_grad():
            state = d.start(tokens[None], pad[None])
            logits = d.step(state, torch.tensor([BOS]), torch.tensor([0]), torch.tensor([0]))[0]
            greedy = _ids(gen, Decoding(max_sentences=1), seed)[0]
            assert _beam_sentence(d, state, logits, 0, 1, 6) == greedy  # the beam code itself, at width 1
            assert state.length == 1  # the search works on copies of the caller's state
            for width in (2, 4, 8):
                beam = _beam_sentence(d, state, logits, 0, width, 6)
                assert _sentence_score(gen, tokens, pad, beam) >= _sentence_score(gen, tokens, pad, greedy) - 1e-5


def test_numbering(vocab: ReportVocab) -> None:
    gen = _never(make_generator(vocab), EOR)
    numbered = list(gen.generate(*exam(), Decoding(max_sentences=2, numbered=True)))
    plain = list(gen.generate(*exam(), Decoding(max_sentences=2, numbered=False)))
    assert [s.split(". ", 1)[0] for s in numbered] == [str(k) for k in range(1, len(numbered) + 1)]
    assert [s.split(". ", 1)[1] for s in numbered] == plain
    assert gen.draft(*exam(), Decoding(max_sentences=2, numbered=True)) == "\n".join(numbered)
    assert gen.draft(*exam(), Decoding(max_sentences=2, numbered=False)) == " ".join(plain)


@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "top_k"}, "strategy"),
    ({"beam_width": 0}, "beam_width"),
    ({"beam_width": 9}, "beam_width"),
    ({"beam_width": True}, "beam_width"),
    ({"beam_width": 2.0}, "beam_width"),
    ({"temperature": 0}, "temperature"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": 2.01}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"max_sentences": 0}, "max_sentences"),
    ({"max_sentences": 13}, "max_sentences"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 65}, "max_tokens"),
    ({"max_tokens": "8"}, "max_tokens"),
    ({"numbered": "yes"}, "numbered"),
])
def test_bad_decoding_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Decoding(**kwargs)


def test_options_beyond_the_model_are_refused_before_anything_is_written(vocab: ReportVocab) -> None:
    gen = make_generator(vocab, max_tokens=8, max_sentences=4)
    with pytest.raises(ValueError, match="at most 8 tokens"):
        gen.generate(*exam(), Decoding(max_tokens=9))  # raised by the call itself, not on first iteration
    with pytest.raises(ValueError, match="at most 4 sentences"):
        gen.generate(*exam(), Decoding(max_sentences=5))


def test_bad_inputs_are_refused(vocab: ReportVocab) -> None:
    gen = make_generator(vocab)
    tokens, pad = exam()
    with pytest.raises(ValueError, match="one report"):
        gen.generate(*exam(batch=2))
    with pytest.raises(ValueError, match=str(MEMORY_WIDTH)):
        gen.generate(torch.randn(6, MEMORY_WIDTH + 1), pad)
    with pytest.raises(ValueError, match="does not match"):
        gen.generate(tokens, pad[:4])
    with pytest.raises(ValueError, match="boolean"):
        gen.generate(tokens, pad.float())
    with pytest.raises(ValueError, match="every token padded"):
        gen.generate(tokens, torch.ones_like(pad))
    bad = tokens.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gen.generate(bad, pad)
    nan_in_padding = tokens.clone()
    nan_in_padding[3] = float("nan")  # a padded frame's values do not matter
    assert list(gen.generate(nan_in_padding, pad)) == list(gen.generate(tokens, pad))
    with pytest.raises(TypeError):
        gen.generate(tokens.tolist(), pad)
    # numpy input (what a service gets from an encoder) works, read-only memory included
    np_tokens = tokens.numpy().astype(np.float16)
    np_tokens.setflags(write=False)
    assert isinstance(list(gen.generate(np_tokens, pad.numpy())), list)
