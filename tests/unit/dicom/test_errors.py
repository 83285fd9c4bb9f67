"""Every kind of unusable input raises its own StudyLoadError subclass with a one-line reason naming the
file, and nothing else ever escapes load_study."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_builders import full_study, mr_image, orientation_for, pattern, write_datasets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, JPEGLSLossless, generate_uid

from cmr.config import Settings
from cmr.dicom import (
    EmptyStudyError,
    MixedStudiesError,
    NoCineError,
    NoPixelDataError,
    NotDicomError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
    load_study,
)
from cmr.dicom import errors as E


def _one_line(err: StudyLoadError) -> str:
    assert "\n" not in err.reason and err.reason.strip() == err.reason and err.reason
    assert str(err) == err.reason
    return err.reason


def _image(**kw: object) -> pydicom.Dataset:
    return mr_image(pattern(16, 16, 500), study_uid=kw.pop("study_uid", generate_uid()),  # type: ignore[arg-type]
                    series_uid=generate_uid(), iop=orientation_for(np.array([0.5, -0.5, -0.7])),
                    ipp=[0.0, 0.0, 0.0], **kw)  # type: ignore[arg-type]


def test_error_classes_have_distinct_codes_and_one_line_reasons() -> None:
    classes = [c for c in vars(E).values() if isinstance(c, type) and issubclass(c, StudyLoadError)]
    assert len({c.code for c in classes}) == len(classes) >= 10
    err = E.NotDicomError("a.dcm: not\na DICOM   file")
    assert err.reason == "a.dcm: not a DICOM file" and err.code == "not_dicom"
    assert isinstance(err, StudyLoadError) and isinstance(err, Exception)


def test_non_dicom_file(tmp_path: Path) -> None:
    (tmp_path / "x.dcm").write_text("hello, I am not an image\n" * 20)
    with pytest.raises(NotDicomError) as exc:
        load_study(tmp_path)
    assert _one_line(exc.value).startswith("x.dcm: not a DICOM file")


def test_junk_alongside_a_valid_study_is_skipped(midslice_copy: Path) -> None:
    (midslice_copy / "README.txt").write_text("Sunnybrook sample\n")
    (midslice_copy / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(range(256)) * 8)
    study = load_study(midslice_copy)
    assert study.n_files == 22
    assert {s.name for s in study.skipped} == {"README.txt", ".DS_Store"}
    assert all(s.code == "not_dicom" for s in study.skipped)
    assert study.series[0].n_phases == 20


def test_truncated_file_alone(midslice_dir: Path, tmp_path: Path) -> None:
    data = (midslice_dir / "101.dcm").read_bytes()
    (tmp_path / "101.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError) as exc:
        load_study(tmp_path)
    assert _one_line(exc.value).startswith("101.dcm: truncated")


@pytest.mark.parametrize("keep", [200, 1000, 3000])
def test_file_cut_inside_the_header_is_truncated_not_junk(midslice_dir: Path, tmp_path: Path, keep: int) -> None:
    (tmp_path / "105.dcm").write_bytes((midslice_dir / "105.dcm").read_bytes()[:keep])
    with pytest.raises(TruncatedFileError):
        load_study(tmp_path)


def test_one_truncated_file_among_many_is_skipped_and_reported(midslice_copy: Path) -> None:
    victim = midslice_copy / "110.dcm"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    study = load_study(midslice_copy)
    assert [(s.name, s.code) for s in study.skipped] == [("110.dcm", "truncated_file")]
    assert study.series[0].n_phases == 19


def test_no_pixel_data() -> None:
    ds = _image()
    del ds.PixelData
    with pytest.raises(NoPixelDataError) as exc:
        load_study([ds])
    assert "no pixel data" in _one_line(exc.value)


def test_dicom_without_pixels_among_images_is_skipped(tmp_path: Path) -> None:
    datasets = full_study(lge=False, localizer=False, views=("4ch",), sax_slices=3, phases=8)
    sr = _image(study_uid=datasets[0].StudyInstanceUID)
    del sr.PixelData
    study = load_study([*datasets, sr])
    assert [s.code for s in study.skipped] == ["no_pixel_data"]


def test_unsupported_transfer_syntax_jpeg2000_junk() -> None:
    ds = _image()
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not really a codestream" * 4])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000
    with pytest.raises(UnsupportedTransferSyntaxError) as exc:
        load_study([ds])
    assert "JPEG 2000" in _one_line(exc.value)


def test_unsupported_transfer_syntax_without_decoder(tmp_path: Path) -> None:
    ds = _image()
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    write_datasets([ds], tmp_path, ["ls.dcm"])
    with pytest.raises(UnsupportedTransferSyntaxError) as exc:
        load_study(tmp_path)
    assert _one_line(exc.value).startswith("ls.dcm: no decoder installed for transfer syntax JPEG-LS")


def test_mixed_studies(midslice_dir: Path, localizer_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(midslice_dir, tmp_path / "a")
    shutil.copytree(localizer_dir, tmp_path / "b")
    with pytest.raises(MixedStudiesError) as exc:
        load_study(tmp_path)
    reason = _one_line(exc.value)
    assert "2 different studies" in reason and "(20 files)" in reason and "(15 files)" in reason


def test_localizers_alone_have_no_cine(localizer_dir: Path) -> None:
    study = load_study(localizer_dir)  # loading works: the series are fine, just not an exam
    with pytest.raises(NoCineError) as exc:
        study.to_exam()
    assert _one_line(exc.value) == "no cine series in the study (found 3 localizer series)"


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(EmptyStudyError):
        load_study(tmp_path)
    with pytest.raises(EmptyStudyError):
        load_study([])
    with pytest.raises(EmptyStudyError) as exc:
        load_study(tmp_path / "missing")
    assert _one_line(exc.value) == "missing: no such file or directory"


def test_limits_are_enforced_before_any_file_is_parsed(midslice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("dcmread called before the size limits were checked")

    monkeypatch.setattr(pydicom, "dcmread", forbidden)
    with pytest.raises(StudyTooLargeError) as exc:
        load_study(midslice_dir, settings=Settings(max_study_files=5))
    assert "too many files: more than the limit of 5 per study" in _one_line(exc.value)
    with pytest.raises(StudyTooLargeError) as exc:
        load_study(midslice_dir, settings=Settings(max_study_bytes=1_000_000))
    assert "MB exceed the limit" in _one_line(exc.value)


def test_limits_come_from_the_environment(midslice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMR_MAX_STUDY_FILES", "3")
    with pytest.raises(StudyTooLargeError):
        load_study(midslice_dir, settings=Settings())


def test_study_of_only_bad_files_reports_the_most_specific_problem(midslice_dir: Path, tmp_path: Path) -> None:
    data = (midslice_dir / "101.dcm").read_bytes()
    (tmp_path / "101.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("junk")
    with pytest.raises(TruncatedFileError) as exc:
        load_study(tmp_path)
    assert _one_line(exc.value) == "101.dcm: truncated DICOM file (last element (7FE0,0010) is cut short) (and 1 other unusable file)"


def test_bad_zip_bytes() -> None:
    with pytest.raises(NotDicomError):
        load_study(b"PK\x03\x04 this is not really a zip")


def test_non_dataset_items_are_rejected() -> None:
    with pytest.raises(NotDicomError):
        load_study([object()])  # type: ignore[list-item]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=2048))
def test_random_bytes_never_escape_as_raw_exceptions(data: bytes) -> None:
    with pytest.raises(StudyLoadError):
        load_study(data)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=133_000), flip=st.integers(min_value=0, max_value=255))
def test_damaged_real_files_never_escape_as_raw_exceptions(midslice_dir: Path, cut: int, flip: int) -> None:
    data = bytearray((midslice_dir / "101.dcm").read_bytes()[:cut])
    if data:
        data[(cut * 7919) % len(data)] ^= flip
    try:
        study = load_study(bytes(data))
    except StudyLoadError as err:
        _one_line(err)
    else:
        assert study.series
