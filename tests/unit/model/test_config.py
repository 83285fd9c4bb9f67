"""Model configs as data: the shipped JSON files load, round-trip unchanged, and bad input is named."""

from __future__ import annotations

import json

import pytest

from cmr.model.config import CONFIG_DIR, Config, ImageEncoderConfig, list_configs, load_config


@pytest.mark.parametrize("name", ["small", "base"])
def test_shipped_config_loads_and_round_trips(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    d = cfg.to_dict()
    again = Config.from_dict(json.loads(json.dumps(d)))  # through JSON, as inside a checkpoint
    assert again == cfg
    assert again.to_dict() == d
    # The file and the loaded config agree on every model field written in the file.
    raw = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    for k, v in raw["model"]["image"].items():
        got = d["model"]["image"][k]
        assert (list(got) if isinstance(got, tuple) else got) == v, k
    assert d["model"]["embed_dim"] == raw["model"]["embed_dim"]


def test_shipped_names_listed() -> None:
    assert {"small", "base"} <= set(list_configs())


def test_base_profile() -> None:
    m = load_config("base").model
    assert m.exam.length == 64 and m.exam.image_size == 224
    assert m.image.frame_encoder == "vit" and m.image.patch_size == 16
    assert m.exam.image_size % m.image.patch_size == 0


def test_small_profile_is_cnn() -> None:
    m = load_config("small").model
    assert m.image.frame_encoder == "cnn" and m.exam.image_size == 64


def test_unknown_model_field_is_named() -> None:
    d = load_config("small").to_dict()
    d["model"]["image"]["colour"] = 3
    with pytest.raises(ValueError, match="colour"):
        Config.from_dict(d)


@pytest.mark.parametrize("where", ["model", "train", "text", "top"])
def test_unknown_field_anywhere_is_named(where: str) -> None:
    d = load_config("small").to_dict()
    target = {"model": d["model"], "train": d["train"], "text": d["model"]["text"], "top": d}[where]
    target["bogus_setting"] = 1
    with pytest.raises(ValueError, match="bogus_setting"):
        Config.from_dict(d)


def test_unknown_config_name_lists_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match="no_such_profile") as exc:
        load_config("no_such_profile")
    assert "small" in str(exc.value) and "base" in str(exc.value)


def test_config_from_json_path(tmp_path) -> None:  # noqa: ANN001
    p = tmp_path / "mine.json"
    d = load_config("small").to_dict()
    d["model"]["embed_dim"] = 32
    p.write_text(json.dumps(d))
    assert load_config(p).model.embed_dim == 32
    assert load_config(str(p)).model.embed_dim == 32


def test_invalid_values_rejected() -> None:
    with pytest.raises(ValueError, match="frame_encoder"):
        ImageEncoderConfig(frame_encoder="resnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        ImageEncoderConfig(width=10, heads=3)
