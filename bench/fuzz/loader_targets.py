"""Study-loader targets: one file's bytes, a folder on disk, zip bytes, and an EncodeStudy upload stream, each
loaded and assembled into the exam tensor (load_study -> Study.to_exam -> pixels), as the encoder does.

Oracle. `load_study` documents that only `StudyLoadError` leaves it, and the services turn its subclasses into
INVALID_ARGUMENT / RESOURCE_EXHAUSTED with the reason; the upload reader (cmr.rpc.uploads) raises the
service errors InvalidArgument, ResourceExhausted, NotFound and PermissionDenied. So a rejection is allowed when
it is one of those with a non-empty one-line reason. Anything else is a crash, including the loader's bare
`StudyLoadError("unexpected ...")`: that is its last-resort wrapper around an exception it did not anticipate
(contained, but a bug the fuzzer should surface). A result that is not a finite exam tensor is a crash too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from bench.fuzz.dicom_inputs import Seeds, dicom_file, study_files, zip_archive
from bench.fuzz.harness import Outcome, Target, clear_message, pack_frames
from cmr.dicom import Exam, ExamSpec, StudyLoadError, load_study
from cmr.rpc.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from cmr.rpc.uploads import read_upload
from cmr.v1 import common_pb2, encoder_pb2

LOADER_ALLOWED = "StudyLoadError subclasses (NotDicom, Truncated, Corrupt, NoPixelData, UnsupportedTransferSyntax, " \
                 "MixedStudies, NoCine, EmptyStudy, StudyTooLarge, InvalidGeometry) with a one-line reason"
UPLOAD_ALLOWED = LOADER_ALLOWED + "; InvalidArgument, ResourceExhausted, NotFound, PermissionDenied from the " \
                 "upload reader"
_UPLOAD_ERRORS = (InvalidArgument, ResourceExhausted, NotFound, PermissionDenied)
UPLOAD_LIMIT = 32 * 1024**2
UPLOAD_MAX_FILES = 64


def check_exam(load: Callable[[], Exam]) -> Outcome:
    """Run a load and judge it (see the module doc)."""
    try:
        exam = load()
        px = exam.pixels_uint8()
        if px.ndim != 3 or not exam.mask.any() or not np.isfinite(exam.pixels).all():
            return Outcome("crash", "BadExam", f"exam tensor {px.shape}, {int(exam.mask.sum())} frames present")
        return Outcome("accepted")
    except StudyLoadError as exc:
        reason = str(exc)
        if type(exc) is StudyLoadError:  # the loader's last resort: an exception it did not expect
            cause = exc.__cause__
            return Outcome("crash", f"unexpected {type(cause).__name__}" if cause else "StudyLoadError", reason)
        if not clear_message(reason) or "\n" in reason:
            return Outcome("crash", f"unclear {type(exc).__name__}", reason)
        return Outcome("rejected", type(exc).__name__, reason)
    except _UPLOAD_ERRORS as exc:
        if not clear_message(exc.message):
            return Outcome("crash", f"unclear {type(exc).__name__}", exc.message)
        return Outcome("rejected", exc.code.name, exc.message)


def _safe_name(name: str, i: int) -> str:
    """A hostile name as a path inside the study folder (the folder target is about contents, not names)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..") and "\x00" not in p]
    return "/".join(p[:100] for p in parts) or f"file{i}"


def file_target(seeds: Seeds, spec: ExamSpec) -> Target:
    return Target("loader_file", "loader", dicom_file(seeds),
                  lambda data: check_exam(lambda: load_study(data).to_exam(spec)), bytes, 30.0, LOADER_ALLOWED)


def folder_target(seeds: Seeds, spec: ExamSpec) -> Target:
    def run(files: Sequence[tuple[str, bytes]]) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="cmr-fuzz-") as tmp:
            root = Path(tmp) / "study"
            root.mkdir()
            for i, (name, data) in enumerate(files):
                path = root / _safe_name(name, i)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.is_dir():
                    path.write_bytes(data)
            return check_exam(lambda: load_study(root).to_exam(spec))

    return Target("loader_folder", "loader", study_files(seeds), run,
                  lambda files: pack_frames([x for name, data in files for x in (name.encode(), data)]),
                  30.0, LOADER_ALLOWED)


def zip_target(seeds: Seeds, spec: ExamSpec) -> Target:
    return Target("loader_zip", "loader", zip_archive(seeds),
                  lambda data: check_exam(lambda: load_study(data).to_exam(spec)), bytes, 30.0, LOADER_ALLOWED)


@st.composite
def upload_stream(draw: st.DrawFn, seeds: Seeds, roots: Sequence[Path]) -> list[encoder_pb2.EncodeStudyRequest]:
    """What EncodeStudy receives: a study in chunks (files split at random points), a zip in one file, a
    StudyRef (inside or outside the roots, traversal, URIs), or a malformed stream."""
    kind = draw(st.sampled_from(["files", "files", "zip", "ref", "malformed"]))
    Req, Chunk = encoder_pb2.EncodeStudyRequest, encoder_pb2.FileChunk
    if kind == "ref":
        root = str(draw(st.sampled_from(list(roots)))) if roots else "/tmp"
        path = draw(st.sampled_from([root, f"{root}/../../etc", "/etc/passwd", "", " ", f"{root}/nope",
                                     "~", "/", f"{root}/" + "a" * 300, f"{root}\x00x"]))
        ref = draw(st.sampled_from([common_pb2.StudyRef(path=path), common_pb2.StudyRef(uri=f"file://{path}"),
                                    common_pb2.StudyRef(uri="http://example.invalid/studies/1"),
                                    common_pb2.StudyRef(uri="file:///%2e%2e/%2e%2e/etc"), common_pb2.StudyRef()]))
        return [Req(ref=ref)] + ([Req(ref=ref)] if draw(st.integers(0, 4)) == 0 else [])
    if kind == "malformed":
        return draw(st.lists(st.one_of(st.just(Req()), st.builds(lambda n, d: Req(chunk=Chunk(file_name=n, data=d)),
                                                                 st.sampled_from(["", " ", "a", "b", "a/b"]),
                                                                 st.binary(max_size=32))), max_size=5))
    files = [("study.zip", draw(zip_archive(seeds)))] if kind == "zip" else draw(study_files(seeds))
    out = []
    for name, data in files:
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        out += [Req(chunk=Chunk(file_name=name, data=data[a:b])) for a, b in zip(bounds, bounds[1:])]
    return out


def load_upload(requests: Sequence[encoder_pb2.EncodeStudyRequest], spec: ExamSpec, roots: Sequence[Path]) -> Exam:
    source = read_upload(iter(requests), max_bytes=UPLOAD_LIMIT, max_files=UPLOAD_MAX_FILES, roots=list(roots))
    return load_study(source).to_exam(spec)


def upload_target(seeds: Seeds, spec: ExamSpec, roots: Sequence[Path]) -> Target:
    return Target("loader_upload", "loader", upload_stream(seeds, roots),
                  lambda reqs: check_exam(lambda: load_upload(reqs, spec, roots)),
                  lambda reqs: pack_frames([r.SerializeToString() for r in reqs]), 30.0, UPLOAD_ALLOWED)


def loader_targets(seeds: Seeds, spec: ExamSpec, roots: Sequence[Path]) -> list[Target]:
    return [file_target(seeds, spec), folder_target(seeds, spec), zip_target(seeds, spec),
            upload_target(seeds, spec, roots)]


__all__ = ["LOADER_ALLOWED", "UPLOAD_ALLOWED", "check_exam", "file_target", "folder_target", "load_upload",
           "loader_targets", "upload_stream", "upload_target", "zip_target"]
