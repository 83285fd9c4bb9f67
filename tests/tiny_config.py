"""The tiny CMR-CLIP config shared by the model unit tests and the training/evaluation integration tests:
small enough to train in seconds on one CPU core, with every part of the real architecture."""

from __future__ import annotations

from typing import Any

TINY: dict[str, Any] = {
    "model": {
        "name": "tiny",
        "embed_dim": 16,
        "exam": {
            "image_size": 32,
            "fov_mm": 280.0,
            "slots": [
                {"name": "cine_sax", "sequence": "cine", "view": "sax", "frames": 4},
                {"name": "cine_4ch", "sequence": "cine", "view": "4ch", "frames": 2},
                {"name": "lge_sax", "sequence": "lge", "view": "sax", "frames": 2},
            ],
        },
        "image": {"cnn_channels": [4, 8], "width": 16, "depth": 1, "heads": 2},
        "text": {"trainable_layers": 1, "max_length": 32},
    },
    "train": {"epochs": 2, "batch_size": 4, "max_minutes": 0, "val_fraction": 0.25, "warmup_steps": 1},
}
