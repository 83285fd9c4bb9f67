"""How GeneratorService reads a request's decoding options and marks the last sentence."""

from __future__ import annotations

import pytest

from cmr.rpc.errors import InvalidArgument
from cmr.v1 import generator_pb2
from generator_svc.client import generate_request
from generator_svc.service import _with_last, decoding_of


def test_zero_values_mean_defaults() -> None:
    d = decoding_of(generator_pb2.DecodingOptions())
    assert (d.strategy, d.beam_width, d.temperature, d.max_sentences, d.max_tokens) == ("greedy", 4, 1.0, None, None)


def test_options_map_one_to_one() -> None:
    d = decoding_of(generator_pb2.DecodingOptions(strategy=generator_pb2.DECODING_STRATEGY_SAMPLE, temperature=0.5,
                                                  seed=7, max_sentences=3, max_tokens=20))
    assert (d.strategy, d.temperature, d.seed, d.max_sentences, d.max_tokens) == ("sample", 0.5, 7, 3, 20)
    assert decoding_of(generator_pb2.DecodingOptions(strategy=generator_pb2.DECODING_STRATEGY_BEAM,
                                                     beam_width=8)).beam_width == 8


@pytest.mark.parametrize("options, words", [
    (dict(beam_width=9), "beam_width"),
    (dict(temperature=2.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(max_sentences=13), "max_sentences"),
    (dict(max_tokens=65), "max_tokens"),
    (dict(strategy=42), "strategy"),
])
def test_out_of_limit_options_are_refused(options: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        decoding_of(generator_pb2.DecodingOptions(**options))


def test_last_flag_needs_one_item_of_look_ahead() -> None:
    assert list(_with_last(iter([]))) == []
    assert list(_with_last(iter(["a"]))) == [("a", True)]
    assert list(_with_last(iter("abc"))) == [("a", False), ("b", False), ("c", True)]


def test_client_request_builder_checks_names() -> None:
    r = generate_request("target", study_key="a" * 32, strategy="beam", beam_width=2)
    assert r.mode == generator_pb2.DRAFT_MODE_TARGET and r.decoding.beam_width == 2 and r.study.study_key == "a" * 32
    with pytest.raises(ValueError, match="mode"):
        generate_request("poetry", study_key="a" * 32)
    with pytest.raises(ValueError, match="strategy"):
        generate_request("target", study_key="a" * 32, strategy="nucleus")
