"""A header-only DICOM file (StudyInstanceUID and SOP class, no pixels): enough for finding studies and keying
them, shared by the ingestion unit tests."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian


def header_only_dicom(uid: str) -> bytes:
    ds = Dataset()
    ds.StudyInstanceUID = uid
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = uid + ".9"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
