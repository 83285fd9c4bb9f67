"""Tissue exams: the label maps of synthetic studies assembled frame for frame like their images, cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmr.data.cache import build_cache
from cmr.data.tissue_cache import NOT_DRAWN, TissueMapError, build_tissue_cache, tissue_exam, tissue_study
from cmr.dicom import ExamSpec, load_study
from cmr.synth.generate import generate_dataset
from cmr.synth.tissues import TISSUE_ID

SPEC = ExamSpec.from_dict({
    "image_size": 32, "fov_mm": 200.0, "centre": "heart",
    "slots": [{"name": "cine_sax", "sequence": "cine", "view": "sax", "frames": 4, "slices": 2},
              {"name": "cine_4ch", "sequence": "cine", "view": "4ch", "frames": 2},
              {"name": "lge_sax", "sequence": "lge", "view": "sax", "frames": 2}]})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tissues") / "data"
    generate_dataset(out, 3, 5, workers=1, scanner="training", phrasing="train", progress=False)
    return out


def _record(data: Path, k: int) -> dict:
    return [json.loads(line) for line in (data / "reports.jsonl").read_text().splitlines()][k]


def test_tissue_exam_is_aligned_with_the_image_exam(data: Path) -> None:
    rec = _record(data, 0)
    ids = tissue_exam(data / rec["folder"], data / rec["label_maps"], SPEC)
    exam = load_study(data / rec["folder"]).to_exam(SPEC)
    assert ids.shape == exam.pixels.shape and ids.dtype == np.uint8
    cine = slice(0, 10)  # 8 SAX + 2 4CH frames
    assert (ids[cine] != NOT_DRAWN).all() and (ids[10:] == NOT_DRAWN).all()  # LGE frames are never drawn
    # Where the map says blood pool the image is bright, where it says lung it is dark: the same pixels.
    blood = np.isin(ids[cine], [TISSUE_ID["lv_blood"], TISSUE_ID["rv_blood"]])
    lung = ids[cine] == TISSUE_ID["lung"]
    assert blood.sum() > 50 and lung.sum() > 50
    assert exam.pixels[cine][blood].mean() > exam.pixels[cine][lung].mean() + 0.3
    # The heart beats in the map as in the images: the LV blood pool changes size over the cycle.
    lv = (ids[:4] == TISSUE_ID["lv_blood"]).sum(axis=(1, 2))
    assert lv.max() > 1.2 * lv.min()


def test_maps_that_do_not_fit_the_images_are_refused(data: Path) -> None:
    rec = _record(data, 0)
    study = load_study(data / rec["folder"])
    s = study.series[0]
    name = f"series_{s.series_number:03d}"
    bad = {name: np.zeros((s.n_slices, s.pixels.shape[1], 3, 3), np.uint8),
           name + "_positions": np.asarray(s.positions)}
    with pytest.raises(TissueMapError, match="do not match"):
        tissue_study(study, bad)


def test_cache_builds_once_and_marks_studies_without_maps(data: Path) -> None:
    build_cache(data, SPEC, workers=1, progress=False)
    lines = (data / "reports.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    rec.pop("label_maps")  # a hospital's study: no label maps
    (data / "reports.jsonl").write_text("\n".join([*lines[:2], json.dumps(rec)]) + "\n")
    cache = build_tissue_cache(data, SPEC, workers=1, progress=False)
    assert cache.available.tolist() == [True, True, False] and not cache.errors
    assert (cache.tissues[2] == NOT_DRAWN).all() and (cache.tissues[0, :10] != NOT_DRAWN).all()
    again = build_tissue_cache(data, SPEC, workers=1, progress=False)  # resumable: nothing to do
    np.testing.assert_array_equal(np.asarray(again.tissues), np.asarray(cache.tissues))
