"""The study loader end to end on the two kinds of data it must read: studies written by `cmr synth` (every
scanner style, single-frame and enhanced multi-frame) and the real Sunnybrook samples; plus the CLI's
one-line errors on unusable input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cmr.dicom import ExamSpec, NoCineError, NotDicomError, StudyLoadError, TruncatedFileError, load_study
from cmr.synth.generate import StudyRequest, generate_study
from cmr.synth.scanners import STYLES
from realdata_paths import SHARED_REALDATA, SUNNYBROOK_CONTOURED, needs_shared_realdata
from realdata_paths import SUNNYBROOK_LOCALIZERS as LOCALIZERS, SUNNYBROOK_MIDSLICE as MIDSLICE

CMR = [sys.executable, "-m", "orchestration.cli.main"]


@pytest.fixture(scope="module")
def one_study_per_style(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("styles")
    folders = {}
    for i, style in enumerate(STYLES):
        rec = generate_study(StudyRequest(out, 99, i, style, "train"))
        folders[style] = out / rec["folder"]
    return folders


@pytest.mark.parametrize("style", list(STYLES))
def test_every_view_of_every_style_is_found_from_geometry(style: str, one_study_per_style: dict[str, Path]) -> None:
    study = load_study(one_study_per_style[style])
    # The synthetic exam carries a real exam's other series (scouts, maps, flow, perfusion, ...: kind "other" or
    # "localizer") and one repeated cine ("_RPT"): every view is found as cine and LGE, the repeat once more.
    kinds_views = [(s.kind, s.view) for s in study.series if s.kind in ("cine", "lge")]
    assert sorted(set(kinds_views)) == sorted([
        ("cine", "sax"), ("cine", "4ch"), ("cine", "2ch"), ("cine", "3ch"),
        ("lge", "sax"), ("lge", "4ch"), ("lge", "2ch"), ("lge", "3ch"),
    ])
    repeated = [kv for kv in set(kinds_views) if kinds_views.count(kv) > 1]
    assert len(repeated) == 1 and repeated[0][0] == "cine" and len(kinds_views) == 9
    assert any("acquired 2 times" in w for w in study.warnings)
    exam = study.to_exam(ExamSpec())
    assert exam.missing == []
    assert exam.mask.all()
    assert exam.pixels.shape == (exam.spec.length, exam.spec.image_size, exam.spec.image_size)
    assert 0.0 <= float(exam.pixels.min()) and float(exam.pixels.max()) <= 1.0
    assert exam.study.manufacturer == STYLES[style].manufacturer


def test_zip_equals_folder(one_study_per_style: dict[str, Path], tmp_path: Path) -> None:
    folder = one_study_per_style["ge_signa_1.5T"]
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*.dcm"):
            zf.write(f, f.relative_to(folder).as_posix())
    a = load_study(folder).to_exam(ExamSpec())
    b = load_study(archive).to_exam(ExamSpec())
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_sunnybrook_midslice_is_a_20_phase_short_axis_cine() -> None:
    study = load_study(MIDSLICE)
    cine = [s for s in study.series if s.kind == "cine"]
    assert len(cine) == 1 and cine[0].view == "sax"
    exam = study.to_exam(ExamSpec())
    assert exam.present["cine_sax"]
    assert "cine_4ch" in exam.missing and "lge_sax" in exam.missing
    assert exam.study.study_date is None  # "20120000" is not a date


def test_sunnybrook_localizers_alone_have_no_cine() -> None:
    study = load_study(LOCALIZERS)  # inspectable...
    assert study.series and all(s.kind == "localizer" for s in study.series)
    with pytest.raises(NoCineError) as err:  # ...but no exam can be built from it
        study.to_exam(ExamSpec())
    assert "\n" not in str(err.value)


def _contoured_image(contour: Path) -> Path:
    """IM-0001-0047-icontour-manual.txt -> dicom/47.dcm"""
    return SUNNYBROOK_CONTOURED / "dicom" / f"{int(contour.name.split('-')[2])}.dcm"


def test_sunnybrook_contours_name_images_kept_in_the_repository() -> None:
    contours = sorted(SUNNYBROOK_CONTOURED.glob("[io]-contours/*-manual.txt"))
    assert len(contours) == 27  # 18 endocardial (ED + ES of 9 slices), 9 epicardial (ED)
    for contour in contours:
        ds = pydicom.dcmread(_contoured_image(contour), stop_before_pixels=True)
        assert int(ds.InstanceNumber) == int(_contoured_image(contour).stem)
        points = np.loadtxt(contour)
        assert points.ndim == 2 and points.shape[1] == 2 and len(points) > 10
        assert (points >= 0).all() and (points[:, 0] < ds.Columns).all() and (points[:, 1] < ds.Rows).all()


def test_sunnybrook_reduced_stack_has_every_slice_at_one_phase(tmp_path: Path) -> None:
    # phase 20 (end-diastole, the o-contoured phase) is kept for all 13 slices: images 20, 40, ..., 260
    for k in range(1, 14):
        shutil.copy(SUNNYBROOK_CONTOURED / "dicom" / f"{20 * k}.dcm", tmp_path)
    [series] = load_study(tmp_path).series
    assert series.view == "sax" and series.pixels.shape == (13, 1, 256, 256)
    gaps = np.linalg.norm(np.diff(series.positions, axis=0), axis=1)
    np.testing.assert_allclose(gaps, 10.0, atol=0.05)  # sorted along the normal (SliceLocation would say 6.68)


@needs_shared_realdata("sunnybrook/SCD0000201_SC-HF-I-2/dicom")
def test_full_sunnybrook_stack_and_its_in_repo_subset() -> None:
    full = SHARED_REALDATA / "sunnybrook" / "SCD0000201_SC-HF-I-2"
    [cine] = [s for s in load_study(full / "dicom").series if s.kind == "cine"]
    assert cine.view == "sax" and cine.pixels.shape == (13, 20, 256, 256)
    kept = [f for f in SUNNYBROOK_CONTOURED.rglob("*") if f.is_file()]
    assert len(kept) == 22 + 27
    for f in kept:  # the in-repo files are unmodified copies
        assert f.read_bytes() == (full / f.relative_to(SUNNYBROOK_CONTOURED)).read_bytes(), f


def test_truncated_and_non_dicom_files_get_typed_one_line_errors(tmp_path: Path) -> None:
    src = next(MIDSLICE.glob("*.dcm"))
    (tmp_path / "cut").mkdir()
    data = src.read_bytes()
    (tmp_path / "cut" / "1.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError) as err:
        load_study(tmp_path / "cut")
    assert "1.dcm" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.dcm").write_text("this is not DICOM")
    with pytest.raises(NotDicomError):
        load_study(tmp_path / "junk")


def test_cli_inspect_json_and_one_line_error(one_study_per_style: dict[str, Path], tmp_path: Path) -> None:
    folder = one_study_per_style["philips_ingenia_1.5T"]
    res = subprocess.run(CMR + ["inspect", str(folder), "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report  # the series and slots are listed
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.dcm").write_bytes(b"\x00" * 50)
    res = subprocess.run(CMR + ["inspect", str(tmp_path / "bad")], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error:")


def test_cli_synth_lists_styles_with_the_held_out_one_marked() -> None:
    res = subprocess.run(CMR + ["synth", "--list-scanners"], capture_output=True, text=True, timeout=120,
                         env={"COLUMNS": "200", "PATH": ""})
    assert res.returncode == 0, res.stderr
    for name in STYLES:
        assert name in res.stdout
    assert "HELD OUT" in res.stdout


def test_missing_view_is_reported_not_an_error(one_study_per_style: dict[str, Path], tmp_path: Path) -> None:
    src = one_study_per_style["siemens_aera_1.5T"]
    dst = tmp_path / "no_lge"
    shutil.copytree(src, dst)
    # Drop every LGE series: the exam still assembles, with the LGE slots reported missing.
    lge_uids = {s.series_instance_uid for s in load_study(dst).series if s.kind == "lge"}
    assert lge_uids
    for f in dst.rglob("*.dcm"):
        if pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID in lge_uids:
            f.unlink()
    exam = load_study(dst).to_exam(ExamSpec())
    assert set(exam.missing) == {"lge_sax", "lge_lax"}
    assert exam.present["cine_sax"]
    assert not exam.mask[[i for i, s in enumerate(exam.slot_index) if exam.spec.slots[s].sequence == "lge"]].any()
