"""`load_study`: read a DICOM study from a folder, a zip (path or bytes), one file, or in-memory Datasets,
group its frames into series stacks and classify them.

Unusable files among usable ones are skipped and reported in `Study.skipped`; a study with nothing usable
raises the most specific `StudyLoadError` subclass. No pydicom/numpy exception escapes.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cmr.config import Settings, get_settings
from cmr.dicom import geometry, quirks
from cmr.dicom.classify import classify_study
from cmr.dicom.exam import repeat_notes
from cmr.dicom.errors import (
    CorruptFileError,
    EmptyStudyError,
    InvalidGeometryError,
    MixedStudiesError,
    NoPixelDataError,
    NotDicomError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
)
from cmr.dicom.frames import Frame, check_integrity, iter_frames
from cmr.dicom.model import Study
from cmr.dicom.series import Series, SkippedFile

log = logging.getLogger(__name__)

# A Mapping is {file name: file bytes}: a study uploaded file by file (EncoderService.EncodeStudy).
StudySource = Union[str, os.PathLike[str], bytes, bytearray, memoryview, Mapping[str, bytes], Iterable[Dataset]]

# When nothing usable remains, the error raised is that of the most DICOM-specific problem seen: a folder of
# JPEG-LS files plus a README should say "unsupported transfer syntax", not "README: not DICOM".
_ERROR_PRIORITY: tuple[type[StudyLoadError], ...] = (
    UnsupportedTransferSyntaxError,
    TruncatedFileError,
    CorruptFileError,
    InvalidGeometryError,
    NoPixelDataError,
    NotDicomError,
)
# Frames closer than this along the normal are one slice: a fifth of the slice thickness (at least 0.1 mm)
# absorbs header rounding and small per-phase drift while staying well under any real slice spacing.
_SLICE_POSITION_TOL_MM = 0.1
_SLICE_POSITION_TOL_THICKNESS = 0.2
_ORIENTATION_TOL_DEG = 5.0  # frames of one series within this share a plane orientation
_MAX_HEADER_ELEMENTS = 20_000  # top-level elements of one file; real headers have a few hundred


@dataclass(frozen=True)
class _Source:
    """One input item: a file on disk, a zip member, or an in-memory dataset."""

    name: str  # path relative to the input root, for reports
    size: int
    open: Callable[[], BinaryIO] | None = None
    dataset: Dataset | None = None

    @property
    def basename(self) -> str:
        return self.name.replace("\\", "/").rsplit("/", 1)[-1] or self.name


# --- enumerating inputs ------------------------------------------------------------------------------------


def _zip_sources(zf: zipfile.ZipFile) -> list[_Source]:
    sources = []
    for info in zf.infolist():
        if info.filename.endswith("/"):  # ZipInfo.is_dir() raises IndexError on an empty name (found by fuzzing)
            continue
        # Read at most the announced size so a lying header cannot inflate memory use.
        def opener(info: zipfile.ZipInfo = info) -> BinaryIO:
            with zf.open(info) as fp:
                return io.BytesIO(fp.read(info.file_size + 1))

        sources.append(_Source(name=info.filename, size=info.file_size, open=opener))
    return sources


def _open_zip(data: Path | bytes, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:  # an odd zip version
        raise NotDicomError(f"{label}: not a readable zip archive ({type(exc).__name__})") from exc


def _folder_files(root: Path, max_files: int) -> list[Path]:
    """Files under `root`, sorted; stops listing past `max_files` (the caller then refuses the study)."""
    files: list[Path] = []
    for p in root.rglob("*"):
        if p.is_file():
            files.append(p)
            if len(files) > max_files:
                break
    return sorted(files)


@contextmanager
def _sources(source: StudySource, max_files: int) -> Iterator[list[_Source]]:
    """Enumerate `source` into `_Source`s without reading file contents."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
            with _open_zip(data, "<zip bytes>") as zf:
                yield _zip_sources(zf)
        else:
            yield [_Source(name="<bytes>", size=len(data), open=lambda: io.BytesIO(data))]
        return
    if isinstance(source, Mapping):
        yield [_Source(name=str(name), size=len(data), open=lambda data=data: io.BytesIO(bytes(data)))
               for name, data in source.items()]
        return
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = _folder_files(path, max_files)
            yield [
                _Source(name=p.relative_to(path).as_posix(), size=p.stat().st_size, open=lambda p=p: p.open("rb"))
                for p in files
            ]
            return
        if path.is_file():
            if zipfile.is_zipfile(path):
                with _open_zip(path, path.name) as zf:
                    yield _zip_sources(zf)
            else:
                yield [_Source(name=path.name, size=path.stat().st_size, open=lambda: path.open("rb"))]
            return
        raise EmptyStudyError(f"{path.name or path}: no such file or directory")
    if isinstance(source, Dataset):
        source = [source]
    try:
        items = list(source)
    except TypeError as exc:
        raise EmptyStudyError(f"unsupported study source of type {type(source).__name__}") from exc
    out = []
    for i, ds in enumerate(items):
        if not isinstance(ds, Dataset):
            raise NotDicomError(f"item {i}: not a pydicom Dataset ({type(ds).__name__})")
        name = Path(str(ds.filename)).name if isinstance(getattr(ds, "filename", None), str) else f"dataset[{i}]"
        pixel_bytes = ds.get("PixelData")
        size = len(pixel_bytes) if isinstance(pixel_bytes, (bytes, bytearray)) else 0
        out.append(_Source(name=name, size=size, dataset=ds))
    yield out


def _enforce_limits(sources: list[_Source], settings: Settings) -> None:
    if len(sources) > settings.max_study_files:
        raise StudyTooLargeError(
            f"too many files: more than the limit of {settings.max_study_files} per study (CMR_MAX_STUDY_FILES)"
        )
    total = sum(s.size for s in sources)
    if total > settings.max_study_bytes:
        raise StudyTooLargeError(
            f"{total / 1e6:.1f} MB exceed the limit of {settings.max_study_bytes / 1e6:.1f} MB per study "
            "(CMR_MAX_STUDY_BYTES)"
        )


# --- parsing -----------------------------------------------------------------------------------------------


def _ensure_transfer_syntax(ds: Dataset) -> Dataset:
    """Give a dataset without file meta a transfer syntax matching how it was read, so pixels decode."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return ds
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        ts = ImplicitVRLittleEndian
    elif little is False:
        ts = ExplicitVRBigEndian
    else:
        ts = ExplicitVRLittleEndian
    out = copy.copy(ds)  # never mutate a caller's in-memory dataset
    out.file_meta = copy.copy(meta) if meta is not None else pydicom.dataset.FileMetaDataset()
    out.file_meta.TransferSyntaxUID = ts
    return out


class _ElementGuard:
    """pydicom `stop_when`: ends the read at a group 0000 element (the DIMSE command group, never part of a
    stored file: zero padding after the image, which pydicom parses as endless empty elements at about 1 s of CPU
    per MB) or past _MAX_HEADER_ELEMENTS elements (a flood of tiny elements). Found by fuzzing."""

    def __init__(self) -> None:
        self.count = 0
        self.too_many = False

    def __call__(self, tag: pydicom.tag.BaseTag, vr: str | None, length: int) -> bool:
        self.count += 1
        self.too_many = self.count > _MAX_HEADER_ELEMENTS
        return self.too_many or tag.group == 0


def _parse(src: _Source) -> Dataset:
    """Read one source into a Dataset, verifying it really is DICOM and can give an image."""
    if src.dataset is not None:
        ds = _ensure_transfer_syntax(src.dataset)
        check_integrity(ds, src.basename)
        return ds
    assert src.open is not None
    try:
        fp = src.open()
    except OSError as exc:
        raise NotDicomError(f"{src.basename}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    with fp:
        head = fp.read(134)
        fp.seek(0)
        has_preamble = head[128:132] == b"DICM"
        if (head[132:134] if has_preamble else head[:2]) == b"\x00\x00":
            # group 0000 first: a DIMSE command set (pydicom reads it element by element before any limit
            # applies, ~1 s of CPU per MB of zeros) or zero-filled junk, never a stored image
            raise NotDicomError(f"{src.basename}: not a DICOM file (zero-filled, or a DIMSE command set)")
        guard = _ElementGuard()
        try:
            ds = pydicom.filereader.read_partial(fp, stop_when=guard, force=True)
        except Exception as exc:  # pydicom raises a zoo of types on junk
            if has_preamble:
                raise TruncatedFileError(
                    f"{src.basename}: truncated or corrupt DICOM file ({type(exc).__name__} while parsing)"
                ) from exc
            raise NotDicomError(
                f"{src.basename}: not a DICOM file (no DICM preamble and not parseable as implicit VR)"
            ) from exc
    if guard.too_many:
        raise CorruptFileError(f"{src.basename}: more than {_MAX_HEADER_ELEMENTS} header elements (not a DICOM "
                               "image header)")
    meta = getattr(ds, "file_meta", None)
    has_meta = meta is not None and "TransferSyntaxUID" in meta
    # force=True parses anything; junk yields a few nonsense tags. Real DICOM has a file meta, a SOP class or
    # pixels.
    if not (has_preamble or has_meta or "SOPClassUID" in ds or "PixelData" in ds):
        raise NotDicomError(f"{src.basename}: not a DICOM file (no DICM preamble and not parseable as implicit VR)")
    ds = _ensure_transfer_syntax(ds)
    check_integrity(ds, src.basename)
    return ds


# --- stacking frames into series ---------------------------------------------------------------------------


def _cluster_positions(offsets: np.ndarray, tol_mm: float) -> list[list[int]]:
    """Indices of frames grouped by slice position (offsets along the normal), ordered by increasing offset."""
    order = np.argsort(offsets, kind="stable")
    groups: list[list[int]] = []
    last = None
    for i in order:
        if last is None or offsets[i] - last > tol_mm:
            groups.append([])
        groups[-1].append(int(i))
        last = offsets[i]
    return groups


def _frame_sort_key(f: Frame) -> tuple[float, int, int, int, str]:
    t = f.trigger_time if f.trigger_time is not None else float("inf")
    return (t, f.temporal_index or 0, f.instance_number, f.frame_number, f.file)


def _distinct_phases(slice_frames: list[Frame]) -> int:
    if all(f.trigger_time is not None for f in slice_frames):
        return len({round(float(f.trigger_time), 0) for f in slice_frames})  # type: ignore[arg-type]
    if all(f.temporal_index is not None for f in slice_frames):
        return len({f.temporal_index for f in slice_frames})
    return len(slice_frames)


def _stack(frames: list[Frame], key: str, part: int, n_parts: int, siblings: tuple[tuple[float, float, float], ...]) -> Series:
    """Build a regular [slices, phases, rows, cols] series from frames sharing orientation and matrix."""
    first = frames[0]
    normal = geometry.plane_normal(first.orientation)
    offsets = geometry.positions_along(normal, np.stack([f.position for f in frames]))
    thickness = next((f.slice_thickness for f in frames if f.slice_thickness), None)
    tol = max(_SLICE_POSITION_TOL_MM, _SLICE_POSITION_TOL_THICKNESS * (thickness or 0.0))
    slices = [sorted((frames[i] for i in g), key=_frame_sort_key) for g in _cluster_positions(offsets, tol)]
    counts = Counter(len(s) for s in slices)
    n_phases = max(counts, key=lambda c: (counts[c], c))
    notes: list[str] = []
    if len(counts) > 1:
        # Uneven phase counts (a missing or repeated image): resample each slice to the common count.
        notes.append(f"series {key}: slices have {sorted(counts)} images each; resampled to {n_phases} phases")
        slices = [[s[j] for j in np.round(np.linspace(0, len(s) - 1, n_phases)).astype(int)] for s in slices]
    pixels = np.stack([np.stack([f.pixels for f in s]) for s in slices]).astype(np.float32, copy=False)
    trig = np.array(
        [[np.nan if f.trigger_time is None else f.trigger_time for f in s] for s in slices], dtype=np.float64
    )
    h = first.header
    return Series(
        key=key,
        series_instance_uid=h.series_uid,
        pixels=pixels,
        orientation=first.orientation.copy(),
        positions=np.stack([s[0].position for s in slices]),
        pixel_spacing=first.pixel_spacing,
        trigger_times=trig,
        distinct_phases=int(np.median([_distinct_phases(s) for s in slices])),
        slice_thickness=thickness,
        series_number=h.series_number,
        description=h.description,
        protocol_name=h.protocol_name,
        manufacturer=h.manufacturer,
        model=h.model,
        field_strength=h.field_strength,
        inversion_time=h.inversion_time,
        image_type=h.image_type,
        scanning_sequence=h.scanning_sequence,
        sequence_variant=h.sequence_variant,
        sop_class_uid=h.sop_class_uid,
        cardiac_number_of_images=h.cardiac_number_of_images,
        sequence_name=h.sequence_name,
        echo_time=h.echo_time,
        source_files=tuple(sorted({f.file for f in frames})),
        part=part,
        n_parts=n_parts,
        sibling_normals=siblings,
        warnings=notes,
    )


def build_series(frames: list[Frame]) -> list[Series]:
    """Group frames by SeriesInstanceUID, split each by plane orientation and matrix size, and stack them."""
    by_uid: dict[str, list[Frame]] = {}
    for f in frames:
        uid = f.header.series_uid or f"no-series-uid-{f.header.series_number}"
        by_uid.setdefault(uid, []).append(f)
    out: list[Series] = []
    for uid, fs in by_uid.items():
        labels = geometry.cluster_orientations([f.orientation for f in fs], _ORIENTATION_TOL_DEG)
        parts: dict[tuple[int, tuple[int, ...]], list[Frame]] = {}
        for f, label in zip(fs, labels):
            parts.setdefault((label, f.pixels.shape), []).append(f)
        siblings = tuple(tuple(float(x) for x in geometry.plane_normal(p[0].orientation)) for p in parts.values())
        for k, part_frames in enumerate(parts.values()):
            key = uid if len(parts) == 1 else f"{uid}#{k + 1}"
            out.append(_stack(part_frames, key, k, len(parts), siblings))  # type: ignore[arg-type]
    out.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.key))
    return out


# --- the loader --------------------------------------------------------------------------------------------


def _raise_nothing_usable(skipped: list[SkippedFile], errors: list[StudyLoadError], n_files: int) -> None:
    for cls in _ERROR_PRIORITY:
        hits = [e for e in errors if type(e) is cls]
        if hits:
            others = n_files - 1
            suffix = f" (and {others} other unusable file{'s' if others != 1 else ''})" if others > 0 else ""
            raise cls(hits[0].reason + suffix)
    raise EmptyStudyError(f"no usable DICOM images among {n_files} files")


def load_study(source: StudySource, *, settings: Settings | None = None) -> Study:
    """Load one DICOM study from a folder (recursive), a .zip path, zip bytes, a file, or pydicom Datasets.

    Raises a `StudyLoadError` subclass with a one-line reason for unusable input.
    """
    settings = settings or get_settings()
    try:
        with warnings.catch_warnings(), quirks.collect() as header_quirks:
            # Real headers trigger many pydicom validation warnings (e.g. UIDs with leading zeros), once per file:
            # they are counted into the study's `header_quirks` instead of being logged or warned one by one.
            warnings.simplefilter("ignore")
            study = _load(source, settings, header_quirks)
        study.header_quirks = header_quirks.summary()
        for q in study.header_quirks:
            log.info("study %s: header quirk: %s", study.study_instance_uid, q)
        return study
    except StudyLoadError:
        raise
    except MemoryError as exc:
        raise StudyTooLargeError("study does not fit in memory") from exc
    except Exception as exc:  # last resort: the contract is that only StudyLoadError leaves this function
        log.exception("unexpected error while loading a study")
        raise StudyLoadError(f"unexpected {type(exc).__name__} while loading the study: {exc}") from exc


def _load(source: StudySource, settings: Settings, header_quirks: quirks.QuirkLog) -> Study:
    with _sources(source, settings.max_study_files) as sources:
        if not sources:
            raise EmptyStudyError("no files found in the study source")
        _enforce_limits(sources, settings)

        skipped: list[SkippedFile] = []
        errors: list[StudyLoadError] = []

        def skip(src: _Source, err: StudyLoadError) -> None:
            log.info("skipping %s", err.reason)
            skipped.append(SkippedFile(name=src.name, code=err.code, reason=err.reason))
            errors.append(err)

        parsed: list[tuple[_Source, Dataset]] = []
        uids: list[str] = []
        for src in sources:
            header_quirks.at(src.name)
            try:
                ds = _parse(src)
                # read per file: a garbled element (e.g. an unknown VR) raises on first access (found by fuzzing:
                # it escaped as an unexpected error for the whole study)
                uid = str(ds.get("StudyInstanceUID", "") or "").strip()
            except StudyLoadError as err:
                skip(src, err)
            except Exception as exc:  # e.g. a zip member failing its CRC
                skip(src, CorruptFileError(f"{src.basename}: unreadable ({type(exc).__name__}: {exc})"))
            else:
                parsed.append((src, ds))
                uids.append(uid)

    study_uids = Counter(uids)
    study_uids.pop("", None)
    if len(study_uids) > 1:
        listing = ", ".join(f"{uid} ({n} files)" for uid, n in study_uids.most_common())
        raise MixedStudiesError(f"files belong to {len(study_uids)} different studies: {listing}")

    frames: list[Frame] = []
    notes: list[str] = []
    seen_instances: set[str] = set()
    study_date = None
    height_m: float | None = None
    weight_kg: float | None = None
    for i, (src, ds) in enumerate(parsed):
        header_quirks.at(src.name)
        try:
            new = list(iter_frames(ds, src.basename))
        except StudyLoadError as err:
            skip(src, err)
            continue
        except Exception as exc:  # malformed header values surface lazily, when first accessed
            skip(src, CorruptFileError(f"{src.basename}: corrupt DICOM header ({type(exc).__name__}: {exc})"))
            continue
        finally:
            parsed[i] = (src, Dataset())  # free the raw pixel bytes as soon as they are decoded
        if new and new[0].sop_instance_uid:
            if new[0].sop_instance_uid in seen_instances:
                # The same image twice (copied files, DICOMDIR trees): keep the first, or phases would double.
                notes.append(f"{src.name}: duplicate of an image already read (SOPInstanceUID); ignored")
                continue
            seen_instances.add(new[0].sop_instance_uid)
        frames.extend(new)
        study_date = study_date or new[0].header.study_date
        height_m = height_m or new[0].header.patient_height_m
        weight_kg = weight_kg or new[0].header.patient_weight_kg

    if not frames:
        _raise_nothing_usable(skipped, errors, len(sources))

    series = build_series(frames)
    classify_study(series)
    notes += [w for s in series for w in s.warnings] + repeat_notes(series)
    for note in notes:
        log.info(note)  # reported in Study.warnings; logging them louder would clutter CLI error output
    study = Study(
        study_instance_uid=next(iter(study_uids), ""),
        series=series,
        n_files=len(sources),
        study_date=study_date,
        skipped=skipped,
        warnings=notes,
        patient_height_m=height_m,
        patient_weight_kg=weight_kg,
    )
    log.info(
        "loaded study %s: %d series from %d files (%d skipped)",
        study.study_instance_uid, len(series), study.n_files, len(skipped),
    )
    return study
