"""Fixtures of the CMR-TARGET unit tests (helpers live in target_helpers.py)."""

from __future__ import annotations

import pytest
import torch

from cmr.generator.vocab import ReportVocab
from target_helpers import IMPRESSIONS

torch.set_num_threads(1)  # the test machine is shared; keep every test on one core


@pytest.fixture(scope="session")
def vocab() -> ReportVocab:
    return ReportVocab.build("minilm", IMPRESSIONS)
