"""The bytes `Dataset.save_as(path, enforce_file_format=True)` writes, produced faster for datasets read from
a file and partly rewritten (the de-identified study of an import).

Writing was the costliest import stage: pydicom's dcmwrite deep-copies the file meta and sends every element,
also the untouched raw ones (pixel data, numbers, codes: about half of a de-identified header), through its
general element writer (a buffer object, VR dispatch and checks per element). Here raw elements whose encoding
is unchanged are written as they were read: tag, VR, length and the value bytes. Everything else - elements a
handler changed, sequences, pixel data, the file meta - goes through pydicom's own writers, and a dataset this
fast path does not cover (implicit VR, big endian, deflated, re-encoded charset) is written by dcmwrite itself.
A unit test checks the bytes equal dcmwrite's for every synthetic scanner style.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian
_DEFAULT_ENCODING = "iso8859"  # pydicom's default for datasets without SpecificCharacterSet
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


def _fast_path_applies(ds: Dataset) -> bool:
    """Explicit VR little endian, written as it was read, with the character set it was read with."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None or ts.is_private or not ts.is_transfer_syntax or ts == DeflatedExplicitVRLittleEndian:
        return False
    if ts.is_implicit_VR or not ts.is_little_endian or ds.original_encoding != (False, True):
        return False
    # pydicom re-encodes every element when the character set changed since reading (dcmwrite does the same)
    return bool(ds.original_character_set == ds._character_set)  # noqa: SLF001 - pydicom 3.0.2 (pinned)


def _raw_header(raw: RawDataElement) -> bytes | None:
    """Tag, VR and length of a raw explicit-VR element written verbatim; None where pydicom must write it."""
    vr, value = raw.VR, raw.value
    if vr is None or len(vr) != 2 or not isinstance(value, bytes):
        return None
    undefined = raw.length == _UNDEFINED
    if undefined and raw.tag == _PIXEL_DATA:
        return None  # encapsulated pixels: pydicom checks the item tags
    tag = struct.pack("<HH", raw.tag >> 16, raw.tag & 0xFFFF)
    if vr in _LONG_VRS:
        return tag + vr.encode() + struct.pack("<HL", 0, _UNDEFINED if undefined else len(value))
    if undefined or len(value) > 0xFFFF:
        return None  # pydicom rewrites such an element as UN (with a warning)
    return tag + vr.encode() + struct.pack("<H", len(value))


def encode_part10(ds: Dataset) -> bytes:
    """`ds` as a DICOM Part 10 file: the bytes dcmwrite(enforce_file_format=True) gives. Completes `ds.file_meta`
    in place the way dcmwrite completes its copy (the caller owns `ds` and writes it once)."""
    fp = DicomBytesIO()
    if not _fast_path_applies(ds):
        ds.save_as(fp, enforce_file_format=True)
        return bytes(fp.getvalue())
    meta = ds.file_meta
    # dcmwrite(enforce_file_format=True): media storage UIDs follow the dataset's, a preamble is required
    for meta_kw, ds_kw in (("MediaStorageSOPClassUID", "SOPClassUID"),
                           ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        ds_value = ds.get(ds_kw)
        if meta.get(meta_kw) is None or (ds_value and ds_value != meta.get(meta_kw)):
            setattr(meta, meta_kw, ds_value)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = meta.TransferSyntaxUID.is_compressed
    fp.is_little_endian, fp.is_implicit_VR = True, False
    preamble = getattr(ds, "preamble", None)
    if preamble is not None and len(preamble) != 128:
        raise ValueError("Dataset.preamble must be 128-bytes long")
    fp.write(preamble or b"\x00" * 128)
    fp.write(b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)  # validates it, as dcmwrite does
    encodings = ds.get("SpecificCharacterSet", _DEFAULT_ENCODING)
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem: DataElement | RawDataElement = ds.get_item(tag)
        header = _raw_header(elem) if isinstance(elem, RawDataElement) else None
        if header is None:
            write_data_element(fp, elem, encodings)
            continue
        fp.write(header)
        fp.write(elem.value)
        if elem.length == _UNDEFINED:
            fp.write(_SEQUENCE_DELIMITER)
    return bytes(fp.getvalue())


__all__ = ["encode_part10"]
