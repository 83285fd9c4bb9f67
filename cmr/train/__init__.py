"""Training CMR-CLIP (kept apart from the model library, open_clip style)."""

from cmr.train.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
