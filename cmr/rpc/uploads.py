"""EncodeStudy's request stream -> what the study loader reads: {file name: bytes} for an upload (a zip sent
as one file is passed through as the archive), or a local path for a StudyRef under an allowed root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from cmr.rpc.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from cmr.v1 import common_pb2, encoder_pb2

StudyInput = Path | bytes | Mapping[str, bytes]


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def read_upload(requests: Iterable[encoder_pb2.EncodeStudyRequest], *, max_bytes: int, max_files: int,
                roots: Sequence[Path]) -> StudyInput:
    """Consume the stream. Stops reading (RESOURCE_EXHAUSTED) as soon as a limit is passed, so an oversized
    upload costs at most one chunk of memory beyond the limit."""
    files: dict[str, bytearray] = {}
    current: str | None = None
    total = 0
    ref: common_pb2.StudyRef | None = None
    for i, req in enumerate(requests):
        part = req.WhichOneof("part")
        if part == "ref":
            if i > 0:
                raise InvalidArgument("a StudyRef must be the only message of the stream")
            ref = req.ref
            continue
        if part != "chunk":
            raise InvalidArgument(f"message {i} of the stream is empty: set `ref` or `chunk`")
        if ref is not None:
            raise InvalidArgument("a StudyRef must be the only message of the stream, but chunks followed it")
        name = req.chunk.file_name.strip()
        if not name:
            raise InvalidArgument(f"chunk {i} has no file_name")
        if name != current:
            if name in files:
                raise InvalidArgument(f"file {name!r} was sent in two separate runs of chunks")
            if len(files) >= max_files:
                raise ResourceExhausted(f"more than {max_files} files in one study (CMR_MAX_STUDY_FILES)")
            files[name] = bytearray()
            current = name
        total += len(req.chunk.data)
        if total > max_bytes:
            raise ResourceExhausted(f"study larger than the upload limit of {max_bytes / 1e6:.0f} MB "
                                    "(CMR_MAX_UPLOAD_BYTES): send it by reference, or split it")
        files[name] += req.chunk.data
    if ref is not None:
        return resolve_ref(ref, roots)
    if not files:
        raise InvalidArgument("no study received: send a StudyRef, or the study's DICOM files as chunks")
    if len(files) == 1:
        (data,) = files.values()
        if _is_zip(bytes(data[:4])):
            return bytes(data)
    return {name: bytes(data) for name, data in files.items()}


def resolve_ref(ref: common_pb2.StudyRef, roots: Sequence[Path]) -> Path:
    """A server-side path (or file:// URI) that must lie under one of `roots` after resolving links and '..'."""
    which = ref.WhichOneof("location")
    if which is None:
        raise InvalidArgument("empty StudyRef: set `path` or `uri`")
    if which == "uri":
        url = urlparse(ref.uri)
        if url.scheme != "file":
            raise InvalidArgument(f"unsupported study URI scheme {url.scheme or '(none)'!r}: this service reads "
                                  "file:// URIs; DICOMweb studies are fetched by the ingest worker")
        raw = unquote(url.path)
    else:
        raw = ref.path
    if not raw.strip():
        raise InvalidArgument("empty study path")
    if "\x00" in raw:  # os calls refuse it with ValueError (found by fuzzing: it surfaced as INTERNAL)
        raise InvalidArgument("study path contains a NUL character")
    path = Path(raw).expanduser().resolve()
    allowed = [r.expanduser().resolve() for r in roots]
    if not any(path == r or path.is_relative_to(r) for r in allowed):
        raise PermissionDenied(f"{raw} is outside the folders this service may read (CMR_STUDY_ROOTS)")
    try:
        found = path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows (ENAMETOOLONG); found by fuzzing
        raise InvalidArgument(f"unusable study path ({exc.strerror or type(exc).__name__})") from exc
    if not found:
        raise NotFound(f"no study at {raw}")
    return path
