"""`cmr eval --numbers measured`: a measuring model is evaluated on what the segmenter measures on each study (as
served), measured once per study and segmenter version, not on the records' perfect numbers."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import cmr.quant.segmenter as qs
from cmr.eval import run
from cmr.eval.measured import cache_path
from cmr.model.checkpoint import create_model
from cmr.model.config import Config
from fake_segmenter import DrawnMaskSegmenter
from tiny_config import TINY


class CountingSegmenter(DrawnMaskSegmenter):
    calls = 0

    def locate_heart(self, slices):  # noqa: ANN001, ANN201 - the Segmenter interface
        CountingSegmenter.calls += 1
        return super().locate_heart(slices)


@pytest.fixture()
def data(synth_dir: Path, tmp_path: Path) -> Path:
    """Two studies of the shared synthetic set (copied: the measurements are written beside the studies)."""
    import json
    import shutil

    out = tmp_path / "data"
    (out / "studies").mkdir(parents=True)
    lines = (synth_dir / "reports.jsonl").read_text().splitlines()[:2]
    for line in lines:
        rec = json.loads(line)
        shutil.copytree(synth_dir / rec["folder"], out / rec["folder"])
    (out / "reports.jsonl").write_text("\n".join(lines) + "\n")
    return out


def test_measured_numbers_come_from_the_segmenter_and_are_kept_per_study(data: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": ["lvef_pct", "lvedvi_ml_m2"], "pooling": "attention"})
    model = create_model(Config.from_dict(d), seed=0).eval()
    seg = CountingSegmenter()
    monkeypatch.setattr(qs, "load_segmenter", lambda *a, **k: seg)
    reference = run.TestSet.load(data, model, progress=False)
    measured = run.TestSet.load(data, model, progress=False, numbers="measured")
    assert reference.measurements is not None and measured.measurements is not None
    # the drawn masks' LV (a disc shrinking 14 -> 9 px radius) is not the phantom's: other numbers, all finite
    assert np.isfinite(measured.measurements).all()
    assert not np.allclose(measured.measurements, reference.measurements)
    assert CountingSegmenter.calls == 2
    again = run.TestSet.load(data, model, progress=False, numbers="measured")
    assert CountingSegmenter.calls == 2  # kept beside the studies
    np.testing.assert_allclose(again.measurements, measured.measurements)
    assert cache_path(data / reference.records[0].folder, seg.version)[0].is_file()
