"""DICOM study loading: read a study (folder, zip, bytes or Datasets), classify its series, and assemble the
fixed-size exam tensor the model consumes.

    study = load_study("path/to/study")          # raises a StudyLoadError subclass for unusable input
    exam = study.to_exam(ExamSpec(image_size=64))
"""

from cmr.dicom.classify import classify_study
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
from cmr.dicom.exam import DEFAULT_SLOTS, Exam, ExamSlot, ExamSpec, assemble_exam, slot_sources
from cmr.dicom.model import Study
from cmr.dicom.reader import StudySource, load_study
from cmr.dicom.series import Series, SeriesInfo, SkippedFile, StudyInfo

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
