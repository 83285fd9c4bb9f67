"""Reading the study a NewExam points at, as {file name: bytes}: a folder or zip under the allowed study roots
(CMR_STUDY_ROOTS, the same rule as EncoderService refs), a file:// URI, or a DICOMweb study URL
(WADO-RS retrieve, multipart/related application/dicom). Sizes are checked against the study limits while
reading, so a huge study costs at most one file beyond them.

Failures are IngestFailure(stage fetch): a missing path, a refused root or an HTTP 4xx are bad input; a
connection error, a timeout or an HTTP 5xx are transient and retried.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import requests

from cmr.rpc.errors import ServiceError
from cmr.rpc.uploads import resolve_ref
from cmr.v1 import common_pb2
from ingest_svc.messages import IngestFailure, Stage

StudyFiles = dict[str, bytes]


class StudyFetcher:
    def __init__(self, roots: Sequence[Path], *, max_files: int, max_bytes: int, timeout_s: float = 60.0,
                 session: requests.Session | None = None) -> None:
        self.roots = list(roots)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def fetch(self, ref: common_pb2.StudyRef) -> StudyFiles:
        if ref.WhichOneof("location") == "uri":
            scheme = urlparse(ref.uri).scheme.lower()
            if scheme in ("http", "https"):
                return self._dicomweb(ref.uri)
            if scheme != "file":
                raise IngestFailure(Stage.FETCH, f"unsupported study URI scheme {scheme or '(none)'!r}: use a "
                                    "path, a file:// URI or a DICOMweb http(s) study URL", error_type="BadStudyRef")
        try:
            path = resolve_ref(ref, self.roots)
        except ServiceError as exc:
            # NotFound / PermissionDenied / InvalidArgument: the message points at nothing this worker may read.
            raise IngestFailure(Stage.FETCH, exc.message, error_type=type(exc).__name__) from exc
        return self._local(path)

    # --- local ------------------------------------------------------------------------------------------------
    def _check(self, n_files: int, n_bytes: int) -> None:
        if n_files > self.max_files:
            raise IngestFailure(Stage.FETCH, f"more than {self.max_files} files in one study (CMR_MAX_STUDY_FILES)",
                                error_type="StudyTooLargeError")
        if n_bytes > self.max_bytes:
            raise IngestFailure(Stage.FETCH, f"study larger than {self.max_bytes / 1e6:.0f} MB (CMR_MAX_STUDY_BYTES)",
                                error_type="StudyTooLargeError")

    def _local(self, path: Path) -> StudyFiles:
        try:
            if path.is_dir():
                out: StudyFiles = {}
                total = 0
                for p in sorted(path.rglob("*")):
                    if p.is_file():
                        data = p.read_bytes()
                        total += len(data)
                        self._check(len(out) + 1, total)
                        out[p.relative_to(path).as_posix()] = data
                return out
            if zipfile.is_zipfile(path):
                return self._zip(path)
            data = path.read_bytes()
            self._check(1, len(data))
            return {path.name: data}
        except OSError as exc:
            raise IngestFailure(Stage.FETCH, f"cannot read the study ({exc.strerror or type(exc).__name__})",
                                transient=True, error_type=type(exc).__name__) from exc

    def _zip(self, path: Path) -> StudyFiles:
        try:
            with zipfile.ZipFile(path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                # Declared sizes first: a zip bomb is refused before anything is inflated.
                self._check(len(infos), sum(i.file_size for i in infos))
                out: StudyFiles = {}
                for info in infos:
                    with zf.open(info) as fp:
                        out[info.filename] = fp.read(info.file_size + 1)
                return out
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise IngestFailure(Stage.FETCH, f"unreadable zip archive ({type(exc).__name__})",
                                error_type="BadZipFile") from exc

    # --- DICOMweb ---------------------------------------------------------------------------------------------
    def _dicomweb(self, url: str) -> StudyFiles:
        """WADO-RS: GET {root}/studies/{uid} as multipart/related; type="application/dicom"."""
        if not re.search(r"/studies/[0-9.]+/?$", urlparse(url).path):
            raise IngestFailure(Stage.FETCH, "not a DICOMweb study URL (expected .../studies/{StudyInstanceUID})",
                                error_type="BadStudyRef")
        headers = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
        try:
            with self._session.get(url, headers=headers, timeout=self.timeout_s, stream=True) as r:
                if r.status_code >= 500 or r.status_code == 429:
                    raise IngestFailure(Stage.FETCH, f"DICOMweb server answered HTTP {r.status_code}", transient=True,
                                        error_type=f"HTTP{r.status_code}")
                if r.status_code == 404:
                    raise IngestFailure(Stage.FETCH, "DICOMweb study not found (HTTP 404)", error_type="HTTP404")
                if r.status_code >= 400:
                    raise IngestFailure(Stage.FETCH, f"DICOMweb request refused (HTTP {r.status_code})",
                                        error_type=f"HTTP{r.status_code}")
                body = bytearray()
                for chunk in r.iter_content(1 << 20):
                    body += chunk
                    self._check(0, len(body))
                content_type = r.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            # Refused connections, DNS failures, timeouts: the PACS may be back in a moment.
            raise IngestFailure(Stage.FETCH, f"DICOMweb request failed ({type(exc).__name__})", transient=True,
                                error_type=type(exc).__name__) from exc
        parts = split_multipart(bytes(body), content_type)
        if not parts:
            raise IngestFailure(Stage.FETCH, "DICOMweb study has no instances", error_type="EmptyStudyError")
        self._check(len(parts), len(body))
        return {f"instance_{i:05d}.dcm": p for i, p in enumerate(parts)}


def split_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a multipart/related body (RFC 2046), headers stripped."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not m:
        raise IngestFailure(Stage.FETCH, f"DICOMweb answer is not multipart ({content_type or 'no content type'})",
                            error_type="BadMultipart")
    delimiter = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        parts.append(content)
    return parts


__all__ = ["StudyFetcher", "StudyFiles", "split_multipart"]
