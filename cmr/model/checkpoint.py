"""Model checkpoints: config + the weights that differ from what is on disk anyway.

A checkpoint holds the config, the image encoder, both projections, the temperature and only the fine-tuned
text layers (the frozen backbone is re-read from its own files, never duplicated), plus a fingerprint of
the backbone so loading with a different one fails loudly. Loaded with `weights_only=True`: a checkpoint
cannot run code.
"""

from __future__ import annotations

import hashlib

import pickle
from pathlib import Path
from typing import Any

import torch

from cmr.model.clip import CMRCLIP
from cmr.model.config import Config, ModelConfig, TrainConfig, load_config

FORMAT = "cmr-clip-checkpoint/1"
DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "cmr-clip-small.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (wrong format, wrong backbone, missing weights)."""


def create_model(config: str | Path | Config | ModelConfig = "small", seed: int | None = 0) -> CMRCLIP:
    """A freshly initialised model (the "untrained" baseline with seed fixed) from a config name, path or object."""
    if isinstance(config, (str, Path)):
        config = load_config(config)
    mcfg = config.model if isinstance(config, Config) else config
    if seed is not None:
        torch.manual_seed(seed)
    return CMRCLIP(mcfg)


def model_state(model: CMRCLIP, half: bool = False) -> dict[str, torch.Tensor]:
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text.backbone.")}
    state.update({f"text.backbone.{k}": v for k, v in model.text.trainable_state_dict().items()})
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def save_checkpoint(path: Path, model: CMRCLIP, train: TrainConfig | None = None,
                    meta: dict[str, Any] | None = None, half: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": Config(model.cfg, train or TrainConfig()).to_dict(),
        "text_fingerprint": model.text.fingerprint,
        "state": model_state(model, half),
        "meta": meta or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def checkpoint_version(path: str | Path) -> str:
    """'<file stem>@<first 12 hex of sha256>': two different weight files never share a version, and a
    vector is only comparable with vectors of the same version."""
    p = Path(path)
    return f"{p.stem}@{hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, not a torch file at all
        # One line, and never torch's advice to retry with weights_only=False (that would run the file's code).
        why = ("not a PyTorch file, or it holds objects other than tensors and plain data"
               if isinstance(exc, pickle.UnpicklingError) else " ".join(str(exc).split()[:30]))
        raise CheckpointError(f"{p} is not a readable checkpoint: {why}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a CMR-CLIP checkpoint (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})")
    return payload


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu",
               text_backbone: str | None = None) -> CMRCLIP:
    """Load a checkpoint (default: the shipped small model) in eval mode.

    `text_backbone` overrides where the frozen text weights are read from (the same model in another folder)."""
    payload = read_checkpoint(path or DEFAULT_CHECKPOINT)
    cfg = Config.from_dict(payload["config"])
    mcfg = cfg.model
    if text_backbone is not None:
        from dataclasses import replace

        mcfg = replace(mcfg, text=replace(mcfg.text, backbone=text_backbone))
    model = CMRCLIP(mcfg)
    if model.text.fingerprint != payload.get("text_fingerprint"):
        raise CheckpointError(
            f"checkpoint was trained with a different text backbone (fingerprint {payload.get('text_fingerprint')}, "
            f"found {model.text.fingerprint} in {model.text.model_dir})")
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("text.backbone.")]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    trainable = {f"text.backbone.{k}" for k in model.text.trainable_state_dict()}
    absent = trainable - set(state)
    if absent:
        raise CheckpointError(f"checkpoint lacks fine-tuned text weights: {sorted(absent)[:3]}")
    return model.to(device).eval()
