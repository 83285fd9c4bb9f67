"""The study loader under fuzzing (bench.fuzz.loader_targets): the corpus in tests/fuzz_corpus (seeds and every
input that once crashed or hung it) replays cleanly, and a short derandomized hypothesis run of each loader
target finds no crash and no hang: each input loads, or is refused with a documented error and a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz.corpus import corpus_files, replay
from bench.fuzz.dicom_inputs import Seeds, load_seeds
from bench.fuzz.harness import Target, fuzz
from bench.fuzz.loader_targets import loader_targets
from cmr.config import Settings
from cmr.dicom import ExamSpec
from cmr.model.runtime import ModelIdentity, checkpoint_path
from realdata_paths import TEST_REALDATA as REALDATA  # the Sunnybrook samples in tests/data are the real seeds

CORPUS = Path(__file__).resolve().parents[2] / "fuzz_corpus"
NAMES = ("loader_file", "loader_folder", "loader_zip", "loader_upload")
# mutated headers make pydicom warn on every odd value; the oracle judges outcomes, not warnings
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Target]:
    seeds: Seeds = load_seeds(REALDATA)
    spec: ExamSpec = ModelIdentity.from_checkpoint(checkpoint_path(Settings()), device="cpu").spec
    root = tmp_path_factory.mktemp("fuzz_roots")
    return {t.name: t for t in loader_targets(seeds, spec, [root, REALDATA])}


@pytest.mark.parametrize("name", NAMES)
def test_corpus_replays_without_failures(targets: dict[str, Target], name: str) -> None:
    assert corpus_files(CORPUS, name), f"no corpus for {name} in {CORPUS}"
    bad = [f"{path.name}: {o.status} {o.code}: {o.detail[:200]}" for path, o in replay(targets[name], CORPUS)
           if o.status not in ("accepted", "rejected")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", NAMES)
def test_short_fuzz_run_finds_nothing(targets: dict[str, Target], name: str) -> None:
    stats = fuzz(targets[name], 25, seed_value=7)
    assert stats.inputs == 25
    assert stats.failed == 0, stats.failure_kinds
    assert stats.rejected  # the oracle saw refusals with their documented types
