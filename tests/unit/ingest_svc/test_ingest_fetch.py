"""Study references: multipart parsing of WADO-RS answers, root checks, zip limits, finding studies under paths."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ingest_svc.fetch import StudyFetcher, split_multipart
from ingest_svc.messages import IngestFailure, study_ref
from ingest_svc.producer import find_studies
from study_headers import header_only_dicom


def test_split_multipart() -> None:
    body = (b"--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n"
            b"--b1\r\nContent-Type: application/dicom\r\n\r\nB\r\nB\r\n--b1--\r\n")
    assert split_multipart(body, 'multipart/related; type="application/dicom"; boundary=b1') == [b"AAA", b"B\r\nB"]
    with pytest.raises(IngestFailure):
        split_multipart(body, "application/json")


def test_local_refs_stay_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "s1" / "series").mkdir(parents=True)
    (root / "s1" / "series" / "a.dcm").write_bytes(b"x" * 10)
    f = StudyFetcher([root], max_files=10, max_bytes=1000)
    assert f.fetch(study_ref(path=str(root / "s1"))) == {"series/a.dcm": b"x" * 10}
    for bad in (str(tmp_path), str(root / "missing")):
        with pytest.raises(IngestFailure) as err:
            f.fetch(study_ref(path=bad))
        assert err.value.stage.value == "fetch" and not err.value.transient
    with pytest.raises(IngestFailure, match="unsupported study URI scheme"):
        f.fetch(study_ref(uri="ftp://host/x"))
    with pytest.raises(IngestFailure, match="not a DICOMweb study URL"):
        f.fetch(study_ref(uri="http://127.0.0.1:1/whatever"))


def test_zip_limits_are_checked_before_inflating(tmp_path: Path) -> None:
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * 5000)
    with pytest.raises(IngestFailure, match="larger than"):
        StudyFetcher([tmp_path], max_files=10, max_bytes=1000).fetch(study_ref(path=str(z)))
    assert StudyFetcher([tmp_path], max_files=10, max_bytes=10_000).fetch(study_ref(path=str(z))) == {
        "a.dcm": b"\0" * 5000}




def test_find_studies(tmp_path: Path) -> None:
    for study, uid in (("a/s1/series_001", "1.1"), ("a/s1/series_002", "1.1"), ("b/s2", "1.2"), ("b/s4", "1.4")):
        (tmp_path / study).mkdir(parents=True)
        (tmp_path / study / "IM1").write_bytes(header_only_dicom(uid))
    with zipfile.ZipFile(tmp_path / "b" / "s3.zip", "w") as zf:
        zf.writestr("IM1", header_only_dicom("1.3"))
    (tmp_path / "b" / "notes.txt").write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_studies([tmp_path])]
    assert found == ["a/s1", "b/s3.zip", "b/s2", "b/s4"]
