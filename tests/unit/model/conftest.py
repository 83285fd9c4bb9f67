"""Shared fixtures for the CMR-CLIP model tests: a tiny config and one model per session (MiniLM loads once)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from tiny_config import TINY

torch.set_num_threads(1)  # the test machine is shared; keep every test on one core


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
