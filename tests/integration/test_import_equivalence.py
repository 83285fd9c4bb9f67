"""The same synthetic studies reach `cmr train` identically through both paths: the synthesiser's own
data directory (reports.jsonl) and `cmr dataset import` of its DICOM folders and RIS export (de-identified
images, impressions cut out of the full reports, numbers read from the reports). For each study the exam
tensor the training loader produces, its impression and its measurement tokens are equal, and the training /
validation split puts it on the same side; only the study order, names and labels (silver) may differ.
Tiny sizes: four studies, the tiny model's exam spec (bench/import_equivalence.py trains on both)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cmr.archive.importer import ImportRequest, import_archive
from cmr.config import get_settings
from cmr.data.cache import ExamCache, build_cache
from cmr.model.config import Config
from cmr.synth.generate import generate_dataset
from cmr.synth.ris import CSV_FILE, RIS_DIR
from cmr.train.loop import load_batch, split
from tiny_config import TINY

N_STUDIES = 4
MEASURED = ("lvef_pct", "rvef_pct", "lvedvi_ml_m2", "lvesvi_ml_m2", "rvedvi_ml_m2", "lv_mass_index_g_m2",
            "rv_lv_edv_ratio", "lv_mass_edv_ratio")  # the small profile's measurement tokens


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExamCache, ExamCache]:
    root = tmp_path_factory.mktemp("equivalence")
    generate_dataset(root / "synth", N_STUDIES, 21, workers=2, progress=False)
    import_archive(ImportRequest(studies=root / "synth" / "studies", reports=root / "synth" / RIS_DIR / CSV_FILE,
                                 out=root / "imported", workers=2, progress=False), get_settings())
    spec = Config.from_dict(TINY).model.exam
    return (build_cache(root / "synth", spec, workers=1, progress=False),
            build_cache(root / "imported", spec, workers=1, progress=False))


def _inputs(cache: ExamCache) -> dict[str, tuple[str, tuple[float, ...]]]:
    """What training reads of each usable study, keyed by a hash of its exam tensor (pixels as the loader
    hands them to the model, and the frame mask): (impression, measurement tokens)."""
    ok = np.flatnonzero(cache.ok)
    px, mask = load_batch(cache, ok, torch.device("cpu"))
    tokens = cache.measurements(MEASURED)
    out = {}
    for row, i in enumerate(ok):
        key = hashlib.sha256(px[row].numpy().tobytes() + mask[row].numpy().tobytes()).hexdigest()
        out[key] = (cache.records[i].impression, tuple(np.nan_to_num(tokens[i], nan=-1.0).round(4)))
    return out


def _sides(cache: ExamCache, val_fraction: float, seed: int) -> dict[str, str]:
    """Exam-tensor hash -> "train" or "val", as the trainer splits the usable studies."""
    ok = np.flatnonzero(cache.ok)
    keys = list(_inputs(cache))  # in `ok` order
    train_rows, val_rows = split(len(ok), val_fraction, seed)
    return {**{keys[r]: "train" for r in train_rows}, **{keys[r]: "val" for r in val_rows}}


def test_every_study_loads_through_both_paths(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    assert synth.errors == {} and imported.errors == {}
    assert int(synth.ok.sum()) == int(imported.ok.sum()) == N_STUDIES
    assert all(r.folder.startswith("studies/") and "study_" not in r.folder for r in imported.records)  # renamed


def test_same_exam_tensors_with_the_same_impressions_and_numbers(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    a, b = _inputs(synth), _inputs(imported)
    assert len(a) == N_STUDIES  # no two studies share an exam tensor: the hash names one study
    assert a == b
    assert all(tokens[0] != -1.0 for _, tokens in b.values())  # the imported studies have numbers (LVEF), too


def test_a_study_falls_on_the_same_side_of_the_validation_split(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    for seed in range(4):
        assert _sides(synth, 0.5, seed) == _sides(imported, 0.5, seed)
