"""Shared fixtures for the CMR-CLIP model tests: a tiny config and one model per session (MiniLM loads once)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config

torch.set_num_threads(1)  # the test machine is shared; keep every test on one core

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


@pytest.fixture
def tiny_dict() -> dict[str, Any]:
    """A fresh copy of the tiny config as JSON data, for tests that change a field."""
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    return Config.from_dict(copy.deepcopy(TINY))


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg: Config) -> CMRCLIP:
    """Shared, in eval mode: tests must not change its weights (copy it first)."""
    return create_model(tiny_cfg, seed=0).eval()
