"""CMR-TARGET configs as JSON data: the shipped config, validation, and `--set KEY=JSON` overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmr.generator.config import (
    DecoderConfig,
    GeneratorTrainConfig,
    TargetConfig,
    apply_overrides,
    list_target_configs,
    load_target_config,
)


def test_shipped_config_loads_and_round_trips() -> None:
    assert "target_small" in list_target_configs()
    cfg = load_target_config("target_small")
    assert cfg.clip == "shipped" and cfg.model.tokenizer == "minilm"
    assert 0 < cfg.train.max_minutes <= 25 and isinstance(cfg.train.max_minutes, float)
    assert TargetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_from_a_json_path(tmp_path: Path) -> None:
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"name": "mine", "model": {"layers": 1, "width": 32, "heads": 2}, "train": {"lr": 1}}))
    cfg = load_target_config(p)
    assert cfg.model.layers == 1 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("bad, match", [
    ({"model": {"width": 30, "heads": 4}}, "divisible"),
    ({"model": {"max_tokens": 65}}, "max_tokens"),
    ({"model": {"max_sentences": 13}}, "max_sentences"),
    ({"model": {"layers": 0}}, "layers"),
    ({"model": {"depth": 2}}, "unknown fields"),
    ({"train": {"lr": 0}}, "lr"),
    ({"train": {"epochs": True}}, "epochs"),
    ({"train": {"val_fraction": 0.95}}, "val_fraction"),
    ({"extra": 1}, "unknown fields"),
])
def test_bad_configs_are_refused(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TargetConfig.from_dict(bad)
    with pytest.raises(FileNotFoundError, match="target_small"):
        load_target_config("no_such_config")


def test_overrides() -> None:
    cfg = TargetConfig()
    out = apply_overrides(cfg, ["epochs=3", "train.max_minutes=2", "model.layers=2", 'clip="runs/clip/best.pt"',
                                "name=other"])
    assert out.train.epochs == 3 and out.train.max_minutes == 2.0 and out.model.layers == 2
    assert out.clip == "runs/clip/best.pt" and out.name == "other"
    assert apply_overrides(cfg, ["clip=shipped"]).clip == "shipped"  # a bare word for a string setting
    assert cfg == TargetConfig()  # the original is untouched


@pytest.mark.parametrize("item, match", [
    ("epochs", "KEY=JSON"),
    ("nope=1", "unknown setting"),
    ("model.nope=1", "unknown setting"),
    ("epochs=1.5", "takes a int"),
    ("lr=abc", "not JSON"),
    ("model.max_tokens=500", "max_tokens"),
])
def test_bad_overrides_are_refused(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        apply_overrides(TargetConfig(), [item])


def test_defaults_are_valid() -> None:
    assert DecoderConfig() and GeneratorTrainConfig()
