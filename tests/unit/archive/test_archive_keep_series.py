"""`cmr dataset import --keep-series exam` writes only the series the exam needs, and the written study loads to
exactly what the whole de-identified study loads to (`--keep-series all`): the same exam tensor, the same series
picked for each slot, the same views, study facts and record. One study per scanner style, distractors in all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cmr.archive.exam_series import kept_by_exam
from cmr.archive.importer import ImportRequest, ImportResult, import_archive
from cmr.config import get_settings
from cmr.dicom import ExamSpec, Study, load_study
from cmr.synth.generate import generate_dataset
from cmr.synth.scanners import STYLES
from test_archive_reports import write_export


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportResult, ImportResult, Path, Path, Path]:
    """The same studies (one per scanner style) imported with `exam` and with `all`."""
    root = tmp_path_factory.mktemp("keep_series")
    entries = []
    for n, style in enumerate(sorted(STYLES)):
        synth = root / f"synth_{n}"
        (record,) = generate_dataset(synth, 1, 70 + n, workers=1, scanner=style, progress=False)
        shutil.move(synth / record["folder"], root / "studies" / f"exam_{n}")
        shutil.rmtree(synth)
        entries.append(record["ris"])
    export = write_export(root, entries, "hl7")
    results = []
    for keep in ("exam", "all"):
        req = ImportRequest(root / "studies", export, root / keep, workers=1, progress=False,
                            keep_series=keep)  # type: ignore[arg-type]
        results.append(import_archive(req, get_settings()))
    return results[0], results[1], root / "exam", root / "all", export


def _records(out: Path) -> dict[str, dict]:
    return {r["study_key"]: r for r in map(json.loads, (out / "reports.jsonl").read_text().splitlines())}


def _exam_parts(study: Study) -> list[tuple[str, str, str, int | None]]:
    return [(s.key, s.kind, s.view, s.series_number) for s in study.series if s.kind in ("cine", "lge")]


def test_every_scanner_style_loads_to_the_same_exam_with_only_exam_series(imports) -> None:  # type: ignore[no-untyped-def]
    exam_result, all_result, exam_out, all_out, _ = imports
    assert exam_result.imported == all_result.imported == len(STYLES)
    exam_records, all_records = _records(exam_out), _records(all_out)
    assert exam_records == all_records  # impression, labels, scanner, views, pseudonymous UID: all the same
    spec = ExamSpec(image_size=32, centre="heart")  # heart centring reads every long-axis plane's geometry
    for key, record in exam_records.items():
        only, whole = load_study(exam_out / record["folder"]), load_study(all_out / record["folder"])
        assert only.n_files < whole.n_files  # distractors were left out...
        assert any(s.kind in ("localizer", "other") for s in whole.series)
        assert all(kept_by_exam(s) for s in only.series)  # ...and nothing the exam does not need was written
        assert _exam_parts(only) == _exam_parts(whole)
        a, b = only.to_exam(spec), whole.to_exam(spec)
        assert a.sources == b.sources and a.missing == b.missing
        assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.mask, b.mask)
        # The study's facts; not what the loader skipped or noted about files that are no longer written.
        facts = ("study_instance_uid", "manufacturer", "model", "field_strength", "study_date")
        assert [getattr(a.study, f) for f in facts] == [getattr(b.study, f) for f in facts]
        assert (only.patient_height_m, only.patient_weight_kg) == (whole.patient_height_m, whole.patient_weight_kg)


def test_the_card_counts_every_series_found_and_why_it_was_skipped(imports) -> None:  # type: ignore[no-untyped-def]
    exam_result, all_result, *_ = imports
    exam_card, all_card = exam_result.card, all_result.card
    assert exam_card["series_kinds"] == all_card["series_kinds"]  # series found: the same
    assert exam_card["protocols"] == all_card["protocols"]
    assert exam_card["keep_series"] == "exam" and all_card["keep_series"] == "all"
    kept = exam_card["series_kept"]
    assert kept["cine"]["skipped"] == kept["lge"]["skipped"] == 0 and kept["localizer"]["kept"] == 0
    assert kept["other"]["skipped"] > 0
    assert set(exam_card["series_skipped_reasons"]) == {"not an exam series (localizer)",
                                                        "not an exam series (other)"}
    assert all(v["skipped"] == 0 for v in all_card["series_kept"].values())
    assert exam_card["files"]["dicom"] == all_card["files"]["dicom"] == all_card["files"]["written"]
    assert exam_card["files"]["written"] < exam_card["files"]["dicom"]
    card_md = (Path(imports[2]) / "dataset_card.md").read_text()
    assert "Series skipped: why" in card_md and "Kept besides cine and LGE" in card_md


def test_a_resumed_import_with_the_other_option_is_refused(imports) -> None:  # type: ignore[no-untyped-def]
    _, _, exam_out, all_out, export = imports
    for out, other in ((exam_out, "all"), (all_out, "exam")):
        req = ImportRequest(out.parent / "studies", export, out, workers=1, progress=False,
                            keep_series=other)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="keep_series"):
            import_archive(req, get_settings())
