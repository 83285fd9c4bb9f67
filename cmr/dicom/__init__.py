"""DICOM study loading: read a study (folder, zip, bytes or Datasets), classify its series, and assemble the
fixed-size exam tensor the model consumes.

    study = load_study("path/to/study")          # raises a StudyLoadError subclass for unusable input
    exam = study.to_exam(ExamSpec(image_size=64))

The errors are imported with the package; the loader (pydicom, scipy: about half a second) when one of its
names is first used, so a client that only maps StudyLoadError to a status code (cmr.rpc.errors, `cmr search`)
does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmr.dicom.errors import (
    CorruptFileError,
    EmptyStudyError,
    InvalidGeometryError,
    MixedStudiesError,
    NoCineError,
    NoPixelDataError,
    NotDicomError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
)

if TYPE_CHECKING:
    from cmr.dicom.classify import classify_study
    from cmr.dicom.exam import DEFAULT_SLOTS, Exam, ExamSlot, ExamSpec, assemble_exam, slot_sources
    from cmr.dicom.model import Study
    from cmr.dicom.reader import StudySource, load_study
    from cmr.dicom.series import Series, SeriesInfo, SkippedFile, StudyInfo

_LAZY = {
    "classify_study": "cmr.dicom.classify",
    **dict.fromkeys(("DEFAULT_SLOTS", "Exam", "ExamSlot", "ExamSpec", "assemble_exam", "slot_sources"),
                    "cmr.dicom.exam"),
    "Study": "cmr.dicom.model",
    **dict.fromkeys(("StudySource", "load_study"), "cmr.dicom.reader"),
    **dict.fromkeys(("Series", "SeriesInfo", "SkippedFile", "StudyInfo"), "cmr.dicom.series"),
}


def __getattr__(name: str) -> Any:
    """`cmr.dicom.load_study` and the other loader names, imported on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "DEFAULT_SLOTS",
    "CorruptFileError",
    "EmptyStudyError",
    "Exam",
    "ExamSlot",
    "ExamSpec",
    "InvalidGeometryError",
    "MixedStudiesError",
    "NoCineError",
    "NoPixelDataError",
    "NotDicomError",
    "Series",
    "SeriesInfo",
    "SkippedFile",
    "Study",
    "StudyInfo",
    "StudyLoadError",
    "StudySource",
    "StudyTooLargeError",
    "TruncatedFileError",
    "UnsupportedTransferSyntaxError",
    "assemble_exam",
    "classify_study",
    "load_study",
    "slot_sources",
]
