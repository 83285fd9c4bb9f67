"""Checkpoints: exact round trip, only fine-tuned text weights stored, and clear errors for unusable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cmr.model.checkpoint import CheckpointError, create_model, load_model, read_checkpoint, save_checkpoint
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config, TrainConfig
from cmr.model.text_encoder import resolve_backbone

TEXTS = ["dilated LV with reduced ejection fraction", "subendocardial late enhancement in the LAD territory"]


@pytest.fixture(scope="module")
def trained_like(tiny_cfg: Config) -> CMRCLIP:
    """A model whose weights differ from initialisation everywhere a checkpoint must carry them, including
    the fine-tuned text layer (so that re-reading it from the backbone files would be caught)."""
    model = create_model(tiny_cfg, seed=3)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        model.logit_scale.fill_(3.3)
    # BatchNorm running statistics are state too.
    model.train()
    with torch.no_grad():
        model.encode_exam(*_exam(model, 4, seed=5))
    return model.eval()


def _exam(model: CMRCLIP, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = model.spec
    px = torch.rand(b, s.length, s.image_size, s.image_size, generator=g)
    mk = torch.ones(b, s.length, dtype=torch.bool)
    mk[0, -2:] = False
    return px, mk


@pytest.fixture(scope="module")
def saved(trained_like: CMRCLIP, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "sub" / "model.pt"
    save_checkpoint(path, trained_like, TrainConfig(epochs=3), meta={"epoch": 2, "val_loss": 1.5})
    return path


@torch.no_grad()
def test_round_trip_gives_identical_embeddings(trained_like: CMRCLIP, saved: Path) -> None:
    loaded = load_model(saved)
    assert not loaded.training
    assert loaded.cfg == trained_like.cfg
    px, mk = _exam(trained_like, 3, seed=9)
    assert torch.equal(loaded.encode_exam(px, mk), trained_like.encode_exam(px, mk))
    assert torch.equal(loaded.encode_text(TEXTS), trained_like.encode_text(TEXTS))
    assert float(loaded.logit_scale) == pytest.approx(3.3)
    # The fine-tuned layer came from the checkpoint, not from the backbone files.
    fresh = create_model(trained_like.cfg, seed=3)
    assert not torch.allclose(fresh.encode_text(TEXTS), loaded.encode_text(TEXTS), atol=1e-3)


def test_checkpoint_metadata(saved: Path) -> None:
    payload = read_checkpoint(saved)
    assert payload["meta"] == {"epoch": 2, "val_loss": 1.5}
    assert Config.from_dict(payload["config"]).train.epochs == 3
    assert not saved.with_suffix(".pt.tmp").exists()


def test_checkpoint_stores_only_fine_tuned_text_layers(trained_like: CMRCLIP, saved: Path) -> None:
    state = read_checkpoint(saved)["state"]
    text_keys = {k for k in state if k.startswith("text.backbone.")}
    n_layers = len(trained_like.text.backbone.encoder.layer)
    top = f"text.backbone.encoder.layer.{n_layers - 1}."
    assert text_keys and all(k.startswith(top) for k in text_keys)
    assert "text.backbone.embeddings.word_embeddings.weight" not in state
    assert not any(k.startswith("text.backbone.encoder.layer.0.") for k in state)
    # Everything else of the model is there.
    assert "logit_scale" in state and "image_proj.weight" in state and "text_proj.weight" in state
    assert any(k.startswith("visual.") and "running_mean" in k for k in state)
    # Far smaller than the backbone weights it does not duplicate.
    backbone_bytes = sum(f.stat().st_size for f in resolve_backbone("minilm").glob("*.safetensors"))
    assert backbone_bytes > 0
    assert saved.stat().st_size < backbone_bytes / 4


def test_different_backbone_fingerprint_raises(saved: Path, tmp_path: Path) -> None:
    # Same weights, different config/vocabulary files: a different backbone as far as the checkpoint knows.
    src = resolve_backbone("minilm")
    other = tmp_path / "other_bert"
    other.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (other / f.name).symlink_to(f)
    (other / "config.json").unlink()
    cfg = json.loads((src / "config.json").read_text())
    cfg["_name_or_path"] = "a-hospital-bert"
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="different text backbone"):
        load_model(saved, text_backbone=str(other))


def test_tampered_fingerprint_raises(saved: Path, tmp_path: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["text_fingerprint"] = "0000000000000000"
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_model(bad)


def test_missing_fine_tuned_text_weights_raise(saved: Path, tmp_path: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["state"] = {k: v for k, v in payload["state"].items() if not k.startswith("text.backbone.")}
    bad = tmp_path / "notext.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="text"):
        load_model(bad)


def test_state_that_does_not_match_config_raises(saved: Path, tmp_path: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    del payload["state"]["image_proj.weight"]
    bad = tmp_path / "noproj.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="image_proj"):
        load_model(bad)


def test_garbage_file_raises(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint\x00\x01" * 10)
    with pytest.raises(CheckpointError, match="junk.pt") as exc:
        load_model(junk)
    msg = str(exc.value)
    assert "\n" not in msg and "weights_only" not in msg  # one line, no advice to load unsafely


def test_truncated_checkpoint_raises(saved: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as exc:
        load_model(cut)
    assert "\n" not in str(exc.value)


def test_torch_file_that_is_not_a_checkpoint_raises(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a CMR-CLIP checkpoint"):
        load_model(other)
    torch.save([1, 2, 3], other)
    with pytest.raises(CheckpointError, match="not a CMR-CLIP checkpoint"):
        load_model(other)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


@torch.no_grad()
def test_half_checkpoint(trained_like: CMRCLIP, saved: Path, tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    save_checkpoint(path, trained_like, half=True)
    state = read_checkpoint(path)["state"]
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert path.stat().st_size < saved.stat().st_size * 0.7
    loaded = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    px, mk = _exam(trained_like, 2, seed=4)
    assert torch.allclose(loaded.encode_exam(px, mk), trained_like.encode_exam(px, mk), atol=1e-2)
    assert torch.allclose(loaded.encode_text(TEXTS), trained_like.encode_text(TEXTS), atol=1e-2)
