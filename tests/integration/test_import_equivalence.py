"""The same synthetic studies reach `cmr train` identically through both paths: the synthesiser's own
data directory (reports.jsonl) and `cmr dataset import` of its DICOM folders and RIS export (de-identified
images, impressions cut out of the full reports, numbers read from the reports). For each study the exam
tensor the training loader produces, its impression and its measurement tokens are equal, and the training /
validation split puts it on the same side; only the study order, names and labels (silver) may differ.
Tiny sizes: four studies, the tiny model's exam spec (bench/import_equivalence.py trains on both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmr.archive.importer import ImportRequest, import_archive
from cmr.config import get_settings
from cmr.data.cache import ExamCache, build_cache
from cmr.model.config import Config
from cmr.model.measurements import MEASUREMENT_NAMES
from cmr.synth.generate import generate_dataset
from cmr.synth.ris import CSV_FILE, RIS_DIR
from cmr.train.inputs import split_sides, training_inputs
from tiny_config import TINY

N_STUDIES = 4
MEASURED = MEASUREMENT_NAMES  # every measurement token (the small profile reads all eight)


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExamCache, ExamCache]:
    root = tmp_path_factory.mktemp("equivalence")
    generate_dataset(root / "synth", N_STUDIES, 21, workers=2, progress=False)
    import_archive(ImportRequest(studies=root / "synth" / "studies", reports=root / "synth" / RIS_DIR / CSV_FILE,
                                 out=root / "imported", workers=2, progress=False), get_settings())
    spec = Config.from_dict(TINY).model.exam
    return (build_cache(root / "synth", spec, workers=1, progress=False),
            build_cache(root / "imported", spec, workers=1, progress=False))


def test_every_study_loads_through_both_paths(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    assert synth.errors == {} and imported.errors == {}
    assert int(synth.ok.sum()) == int(imported.ok.sum()) == N_STUDIES
    assert all(r.folder.startswith("studies/") and "study_" not in r.folder for r in imported.records)  # renamed


def test_same_exam_tensors_with_the_same_impressions_and_numbers(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    a, b = training_inputs(synth, MEASURED), training_inputs(imported, MEASURED)
    assert len(a) == N_STUDIES  # no two studies share an exam tensor: the hash names one study
    assert a == b
    assert all(None not in s.measurements for s in b.values())  # every token has its number on both paths


def test_a_study_falls_on_the_same_side_of_the_validation_split(both_paths: tuple[ExamCache, ExamCache]) -> None:
    synth, imported = both_paths
    for seed in range(4):
        assert split_sides(synth, 0.5, seed) == split_sides(imported, 0.5, seed)
