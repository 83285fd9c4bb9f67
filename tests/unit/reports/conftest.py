"""Synthetic impressions for the report labeller tests: ground truths written once per phrasing per session
(no DICOM rendering: `sample_truth` + `write_impression` only, well under a second)."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.synth.report import Impression, write_impression
from cmr.synth.truth import StudyTruth, sample_truth

N_TRUTHS = 400
PHRASINGS = ("train", "heldout")


@pytest.fixture(scope="session")
def report_truths() -> list[StudyTruth]:
    rng = np.random.default_rng(20240611)
    return [sample_truth(rng) for _ in range(N_TRUTHS)]


@pytest.fixture(scope="session")
def impressions_by_phrasing(report_truths: list[StudyTruth]) -> dict[str, list[Impression]]:
    out: dict[str, list[Impression]] = {}
    for seed, phrasing in enumerate(PHRASINGS, start=11):
        rng = np.random.default_rng(seed)
        out[phrasing] = [write_impression(t, rng, phrasing) for t in report_truths]  # type: ignore[arg-type]
    return out
