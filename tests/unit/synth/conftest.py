"""Shared samples for the impression tests: thousands of truths, written once per phrasing per session."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.synth.report import Impression, write_impression
from cmr.synth.truth import StudyTruth, sample_truth

N_STUDIES = 2000


@pytest.fixture(scope="session")
def truths() -> list[StudyTruth]:
    rng = np.random.default_rng(20240607)
    return [sample_truth(rng) for _ in range(N_STUDIES)]


def _write_all(truths: list[StudyTruth], phrasing: str, seed: int) -> list[Impression]:
    rng = np.random.default_rng(seed)
    return [write_impression(t, rng, phrasing) for t in truths]  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def train_impressions(truths: list[StudyTruth]) -> list[Impression]:
    return _write_all(truths, "train", 1)


@pytest.fixture(scope="session")
def heldout_impressions(truths: list[StudyTruth]) -> list[Impression]:
    return _write_all(truths, "heldout", 2)
