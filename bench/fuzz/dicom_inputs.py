"""Hostile study inputs from real DICOM: seed files (Sunnybrook, small synthetic studies) shrunk to a few KB, and
hypothesis strategies that mutate them (bytes: truncation, bit flips, spliced garbage, huge declared lengths;
headers: garbled tags, wrong VRs, impossible geometry) and pack them as folders, zips (path traversal, nested
archives, bombs, lying size fields) and upload streams.

Shrinking keeps every header and the geometry consistent (pixel spacing grows with the stride), so an
unmutated seed still loads as the study it was: mutations start from inputs that reach deep into the loader.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import strategies as st
from pydicom.dataelem import DataElement

from bench.fuzz.proto_strategies import rarely

SHRUNK_PIXELS = 16  # rows/cols of a shrunk seed image


@dataclass(frozen=True)
class Seeds:
    """Seed files (name, bytes): `files` every one, `studies` groups that load as one study each."""

    files: tuple[tuple[str, bytes], ...]
    studies: tuple[tuple[tuple[str, bytes], ...], ...]

    def __repr__(self) -> str:  # hypothesis prints strategies' arguments: keep the bytes out of it
        return f"Seeds({len(self.files)} files, {len(self.studies)} studies)"


def shrink(data: bytes, size: int = SHRUNK_PIXELS) -> bytes:
    """A DICOM file with its image subsampled to about `size` x `size`, headers kept consistent."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    px = ds.pixel_array
    step = max(1, int(np.ceil(max(px.shape[-2:]) / size)))
    small = np.ascontiguousarray(px[..., ::step, ::step])
    ds.PixelData = small.tobytes()
    ds.Rows, ds.Columns = int(small.shape[-2]), int(small.shape[-1])
    if "PixelSpacing" in ds:
        ds.PixelSpacing = [float(v) * step for v in ds.PixelSpacing]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _files(folder: Path, limit: int) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())[:limit]


def load_seeds(realdata: Path | None, synth_studies: Sequence[Path] = (), per_series: int = 2) -> Seeds:
    """Shrunk seeds: the Sunnybrook cine slice and localizers, and from each synthetic study the first
    `per_series` images of every series (a mini study that still has cine and LGE)."""
    files: list[tuple[str, bytes]] = []
    studies: list[tuple[tuple[str, bytes], ...]] = []
    if realdata is not None and realdata.is_dir():
        for folder in (realdata / "sunnybrook" / "SCD0000301_SC-HF-I-4_midslice" / "dicom",
                       realdata / "sunnybrook" / "SCD0003701_SC-N-2_localizers"):
            if folder.is_dir():
                study = tuple((p.name, shrink(p.read_bytes())) for p in _files(folder, 10))
                files += study
                studies.append(study)
    for root in synth_studies:
        study = []
        for series in sorted(p for p in root.iterdir() if p.is_dir()):
            study += [(f"{series.name}/{p.name}", shrink(p.read_bytes())) for p in _files(series, per_series)]
        files += study
        studies.append(tuple(study))
    if not files:
        raise FileNotFoundError("no seed DICOM files: give the realdata folder or synthetic studies")
    return Seeds(tuple(files), tuple(studies))


# --- byte mutations ------------------------------------------------------------------------------------------

NON_DICOM = (b"", b"\x00" * 200, b"hello, not dicom\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"%PDF-1.4\n",
             b"\xff" * 132, b"\x00" * 128 + b"DICM", b"PK\x03\x04" + b"\x00" * 26, b"{\"resourceType\": \"Study\"}")


@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """One to four byte-level mutations of `data`."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        n = len(buf)
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "duplicate",
                                     "huge_length", "zero_span"]))
        at = draw(st.integers(0, max(n - 1, 0)))
        if kind == "truncate":
            del buf[at:]
        elif kind == "flip" and n:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite" and n:
            chunk = draw(st.binary(min_size=1, max_size=16))
            buf[at : at + len(chunk)] = chunk
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del buf[at : at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            span = bytes(buf[at : at + draw(st.integers(1, 256))])
            buf[at:at] = span
        elif kind == "huge_length":
            # an element header's 4-byte length set to something enormous (explicit VR OB/OW/UN/SQ/UT layout
            # or implicit VR): find a tag-looking spot after the preamble and lie about its length
            at = max(at, 132)
            if at + 8 <= n:
                buf[at + 4 : at + 8] = struct.pack("<I", draw(st.sampled_from(
                    [0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 2**31, n * 10, 0xFFFE])))
        elif kind == "zero_span":
            span = draw(st.integers(1, 512))
            buf[at : at + span] = b"\x00" * min(span, max(n - at, 0))
    return bytes(buf)


# --- header mutations ----------------------------------------------------------------------------------------

_GEOMETRY = ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
             "SliceThickness", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
             "NumberOfFrames", "TriggerTime", "InstanceNumber", "SeriesInstanceUID", "StudyInstanceUID",
             "SOPInstanceUID", "SeriesDescription", "PixelData", "PhotometricInterpretation", "RescaleSlope",
             "RescaleIntercept", "StudyDate", "MagneticFieldStrength", "CardiacNumberOfImages", "ImageType",
             "TemporalPositionIndex", "SeriesNumber", "Manufacturer", "SOPClassUID", "WindowCenter")
_VRS = ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OW", "PN", "SH",
        "SL", "SQ", "SS", "ST", "TM", "UI", "UL", "UN", "US", "UT")
_ODD_VALUES = (b"", b"\x00", b"-1", b"0", b"1e309", b"NaN", b"inf", b"\\\\\\", b"1\\2", b"65535", b"99999999999",
               b"\xff\xfe", "é🫀".encode(), b"1.2.3", b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0", b" " * 70)
_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
                      "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99", "1.2.3.4", "")


@st.composite
def mutate_header(draw: st.DrawFn, data: bytes) -> bytes:
    """Parse the seed, garble one to three elements (delete, odd raw value under a random VR, huge or
    negative geometry, a foreign transfer syntax), write it back."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:  # noqa: BLE001 - an already-mutated seed: fall back to byte mutations
        return draw(mutate_bytes(data))
    for _ in range(draw(st.integers(1, 3))):
        keyword = draw(st.sampled_from(_GEOMETRY))
        kind = draw(st.sampled_from(["delete", "raw", "number", "random_tag", "transfer_syntax"]))
        tag = pydicom.datadict.tag_for_keyword(keyword)
        try:
            _garble(draw, ds, keyword, tag, kind)
        except Exception:  # noqa: BLE001 - pydicom refuses some values at assignment: skip that mutation
            pass
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - pydicom refuses to write some garbage: byte-mutate instead
        return draw(mutate_bytes(data))
    return out.getvalue()


def _garble(draw: st.DrawFn, ds: pydicom.Dataset, keyword: str, tag: int, kind: str) -> None:
    """Apply one header mutation of `kind` to `ds` in place."""
    if kind == "delete":
        if keyword in ds:
            del ds[keyword]
    elif kind == "raw":
        ds[tag] = DataElement(tag, draw(st.sampled_from(_VRS)),
                              draw(st.one_of(st.sampled_from(_ODD_VALUES), st.binary(max_size=24))))
    elif kind == "number":
        value = draw(st.sampled_from([0, 1, -1, 2, 3, 7, 255, 4096, 65535, 2**31 - 1]))
        vr = pydicom.datadict.dictionary_VR(tag)
        if vr in ("US", "UL", "SS", "SL", "IS", "DS", "FL", "FD"):
            if vr in ("US", "UL") and value < 0:
                value = 0
            ds[tag] = DataElement(tag, vr, str(value) if vr in ("IS", "DS") else min(value, 65535)
                                  if vr in ("US", "SS") else value)
    elif kind == "random_tag":
        group = draw(st.sampled_from([0x0008, 0x0010, 0x0018, 0x0020, 0x0028, 0x7FE0, 0x0009, 0xFFFE]))
        rtag = (group << 16) | draw(st.integers(0, 0xFFFF))
        ds[rtag] = DataElement(rtag, draw(st.sampled_from(_VRS)), draw(st.binary(max_size=32)))
    elif kind == "transfer_syntax" and getattr(ds, "file_meta", None) is not None:
        ds.file_meta.TransferSyntaxUID = draw(st.sampled_from(_TRANSFER_SYNTAXES))


def dicom_file(seeds: Seeds) -> st.SearchStrategy[bytes]:
    """A seed as is (now and then), byte-mutated, header-mutated, both, or a non-DICOM file."""
    seed = st.sampled_from([d for _, d in seeds.files])
    return st.one_of(
        rarely(seed.flatmap(mutate_bytes), seed, 10),
        seed.flatmap(mutate_header),
        seed.flatmap(mutate_header).flatmap(mutate_bytes),
        rarely(seed.flatmap(mutate_bytes), st.sampled_from(NON_DICOM), 3),
    )


# --- studies: folders, zips, uploads ------------------------------------------------------------------------

_NAMES = ("a.dcm", "IM0001", "../../escape.dcm", "/etc/abs.dcm", "sub/dir/x.dcm", "..", ".", "", " ", "a" * 300,
          "\\windows\\x.dcm", "x\x00y.dcm", "é🫀.dcm", "DICOMDIR", "nested.zip", "C:/x.dcm")


@st.composite
def study_files(draw: st.DrawFn, seeds: Seeds) -> list[tuple[str, bytes]]:
    """A study as (relative name, bytes): a seed study with some files mutated, dropped, duplicated or
    replaced by junk, or a handful of unrelated files (mixed studies, no cine, nothing usable)."""
    kind = draw(st.sampled_from(["seed_study", "seed_study", "loose_files", "loose_files", "empty"]))
    if kind == "empty":
        return []
    if kind == "loose_files":
        return [(f"f{i}.dcm", draw(dicom_file(seeds))) for i in range(draw(st.integers(1, 6)))]
    study = list(draw(st.sampled_from(seeds.studies)))
    for i in draw(st.lists(st.integers(0, len(study) - 1), max_size=4, unique=True)):
        study[i] = (study[i][0], draw(st.one_of(st.just(b""), st.binary(max_size=64),
                                                st.just(study[i][1]).flatmap(mutate_bytes),
                                                st.just(study[i][1]).flatmap(mutate_header))))
    if draw(st.booleans()):
        keep = draw(st.lists(st.booleans(), min_size=len(study), max_size=len(study)))
        study = [f for f, k in zip(study, keep) if k] or study[:1]
    if draw(st.integers(0, 4)) == 0:
        study.append(("README.txt", b"not an image\n"))
    if draw(st.integers(0, 5)) == 0 and study:
        study.append((f"copy/{study[0][0]}", study[0][1]))  # the same image twice
    return study


def _zip(members: Sequence[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name or "_", date_time=(2020, 1, 1, 0, 0, 0)), data, compress_type=method)
    return out.getvalue()


def _lie_about_sizes(archive: bytes, size: int) -> bytes:
    """Rewrite every local and central header's uncompressed size (zip bomb declaring a huge or tiny size)."""
    buf = bytearray(archive)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = buf.find(sig)
        while at >= 0:
            if at + offset + 4 <= len(buf):
                buf[at + offset : at + offset + 4] = struct.pack("<I", size & 0xFFFFFFFF)
            at = buf.find(sig, at + 4)
    return bytes(buf)


@st.composite
def zip_archive(draw: st.DrawFn, seeds: Seeds) -> bytes:
    """A study zip: honest, with hostile member names, nested, a bomb, lying sizes, or damaged bytes."""
    members = draw(study_files(seeds))
    kind = draw(st.sampled_from(["plain", "plain", "names", "nested", "bomb", "lying_sizes", "damaged", "stored"]))
    if kind == "names":
        members = [(draw(st.one_of(st.sampled_from(_NAMES), st.text(max_size=30))), d) for _, d in members] or \
                  [("../../x.dcm", b"")]
    elif kind == "nested":
        inner = _zip(members)
        for _ in range(draw(st.integers(0, 2))):
            inner = _zip([("inner.zip", inner)])
        members = [("study.zip", inner), *draw(st.lists(st.sampled_from(list(seeds.files)), max_size=2))]
    elif kind == "bomb":
        # highly compressible members: a few MB inflated (bombs of GBs are refused by their declared size,
        # which `lying_sizes` covers without this process allocating them)
        members = members + [(f"bomb{i}.dcm", b"\x00" * draw(st.sampled_from([1 << 20, 4 << 20, 16 << 20])))
                             for i in range(draw(st.integers(1, 2)))]
    archive = _zip(members, zipfile.ZIP_STORED if kind == "stored" else zipfile.ZIP_DEFLATED)
    if kind == "lying_sizes":
        archive = _lie_about_sizes(archive, draw(st.sampled_from([0, 1, 100, 2**31, 2**32 - 1, 3 * 2**30])))
    elif kind == "damaged":
        archive = draw(mutate_bytes(archive))
    return archive


__all__ = ["NON_DICOM", "Seeds", "dicom_file", "load_seeds", "mutate_bytes", "mutate_header", "shrink",
           "study_files", "zip_archive"]
