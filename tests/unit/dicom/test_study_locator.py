"""StudyLocator: a study key finds its study folder (or zip) under the roots, by header, without a path in the
index; studies that arrive later are found after the rescan interval."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cmr.dicom.locator import StudyLocator


def _write(path: Path, study_uid: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def key_of(uid: str) -> str:
    return "k" + uid.replace(".", "")[-8:]


def test_finds_study_folder_zip_and_later_arrivals(tmp_path: Path) -> None:
    a, b, c = generate_uid(), generate_uid(), generate_uid()
    for series in ("series_001", "series_002"):
        for i in range(2):
            _write(tmp_path / "root" / "study_a" / series / f"{i}.dcm", a)
    _write(tmp_path / "root" / "nested" / "deeper" / "study_b" / "img.dcm", b)
    (tmp_path / "root" / "study_a" / "notes.txt").write_text("not DICOM")
    (tmp_path / "root" / "junk").mkdir()
    (tmp_path / "root" / "junk" / "x.dcm").write_bytes(b"garbage")
    _write(tmp_path / "tmp_c" / "1.dcm", c)
    with zipfile.ZipFile(tmp_path / "root" / "study_c.zip", "w") as zf:
        zf.write(tmp_path / "tmp_c" / "1.dcm", "1.dcm")

    locator = StudyLocator([tmp_path / "root", tmp_path / "missing_root"], key_of, rescan_interval_s=0.0)
    assert locator.locate(key_of(a)) == tmp_path / "root" / "study_a"  # the study, not one of its series
    assert locator.locate(key_of(b)) == tmp_path / "root" / "nested" / "deeper" / "study_b"
    assert locator.locate(key_of(c)) == tmp_path / "root" / "study_c.zip"
    assert locator.locate("unknown") is None

    d = generate_uid()
    _write(tmp_path / "root" / "study_d" / "1.dcm", d)  # arrives after the first scan
    assert locator.locate(key_of(d)) == tmp_path / "root" / "study_d"


def test_rescans_at_most_every_interval(tmp_path: Path) -> None:
    locator = StudyLocator([tmp_path], key_of, rescan_interval_s=3600.0)
    assert locator.locate("nothing") is None
    uid = generate_uid()
    _write(tmp_path / "late" / "1.dcm", uid)
    assert locator.locate(key_of(uid)) is None  # a miss does not rescan the disk on every request
