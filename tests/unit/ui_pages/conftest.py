"""One synthetic study on disk for the pages that segment a study on this host (contours)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cmr.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("ui_synth")
    generate_dataset(out, studies=1, seed=21, workers=1, progress=False)
    return out / "studies" / "study_00000"
