"""EncodeStudy's stream -> loader input: files reassembled, zips passed through, limits and refs enforced."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from cmr.rpc.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from cmr.rpc.uploads import read_upload, resolve_ref
from cmr.v1 import common_pb2, encoder_pb2
from encoder_svc.client import upload_requests


def _read(requests, tmp_path: Path, max_bytes: int = 1000, max_files: int = 10):  # noqa: ANN001, ANN202
    return read_upload(iter(requests), max_bytes=max_bytes, max_files=max_files, roots=[tmp_path])


def test_files_are_reassembled_from_chunks(tmp_path: Path) -> None:
    got = _read(upload_requests([("a/1.dcm", b"abcdefg"), ("b.dcm", b"xy")], chunk_bytes=3), tmp_path)
    assert got == {"a/1.dcm": b"abcdefg", "b.dcm": b"xy"}


def test_single_zip_is_passed_through(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.dcm", b"data")
    assert _read(upload_requests([("s.zip", buf.getvalue())], chunk_bytes=50), tmp_path) == buf.getvalue()


def test_limits_stop_reading_early(tmp_path: Path) -> None:
    consumed = []

    def stream():  # noqa: ANN202
        for i, r in enumerate(upload_requests([(f"{i}.dcm", b"x" * 300) for i in range(100)])):
            consumed.append(i)
            yield r

    with pytest.raises(ResourceExhausted, match="upload limit"):
        read_upload(stream(), max_bytes=1000, max_files=1000, roots=[tmp_path])
    assert len(consumed) == 4  # the fourth 300-byte file passes 1000 bytes: nothing after it is read
    with pytest.raises(ResourceExhausted, match="more than 2 files"):
        _read(upload_requests([("a", b"1"), ("b", b"2"), ("c", b"3")]), tmp_path, max_files=2)


@pytest.mark.parametrize("requests, words", [
    ([], "no study received"),
    ([encoder_pb2.EncodeStudyRequest()], "empty"),
    ([encoder_pb2.EncodeStudyRequest(chunk=encoder_pb2.FileChunk(file_name=" ", data=b"x"))], "no file_name"),
])
def test_malformed_streams(tmp_path: Path, requests, words: str) -> None:  # noqa: ANN001
    with pytest.raises(InvalidArgument, match=words):
        _read(requests, tmp_path)


def test_refs_resolve_only_under_the_roots(tmp_path: Path) -> None:
    study = tmp_path / "s1"
    study.mkdir()
    assert resolve_ref(common_pb2.StudyRef(path=str(study)), [tmp_path]) == study.resolve()
    assert resolve_ref(common_pb2.StudyRef(uri=study.as_uri()), [tmp_path]) == study.resolve()
    with pytest.raises(PermissionDenied):
        resolve_ref(common_pb2.StudyRef(path=str(tmp_path / ".." / "elsewhere")), [tmp_path])
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(PermissionDenied):  # a link out of the root is outside it
        resolve_ref(common_pb2.StudyRef(path=str(tmp_path / "link")), [tmp_path])
    with pytest.raises(NotFound):
        resolve_ref(common_pb2.StudyRef(path=str(tmp_path / "missing")), [tmp_path])
    with pytest.raises(InvalidArgument, match="scheme"):
        resolve_ref(common_pb2.StudyRef(uri="ftp://x/y"), [tmp_path])
    with pytest.raises(InvalidArgument, match="empty StudyRef"):
        resolve_ref(common_pb2.StudyRef(), [tmp_path])
