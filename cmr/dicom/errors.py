"""Typed study-loading errors: each carries a one-line human `reason` and a stable machine `code`."""

from __future__ import annotations

from typing import ClassVar


class StudyLoadError(Exception):
    """Base of every error `load_study` / `Study.to_exam` may raise for unusable input."""

    code: ClassVar[str] = "study_load_error"

    def __init__(self, reason: str) -> None:
        # Keep the reason on one line: it is printed as "error: <reason>" and stored in logs/JSON.
        self.reason = " ".join(str(reason).split())
        super().__init__(self.reason)

    def __str__(self) -> str:
        return self.reason


class NotDicomError(StudyLoadError):
    code = "not_dicom"


class TruncatedFileError(StudyLoadError):
    code = "truncated_file"


class CorruptFileError(StudyLoadError):
    """DICOM that parses but whose header or contents cannot be interpreted."""

    code = "corrupt_file"


class NoPixelDataError(StudyLoadError):
    code = "no_pixel_data"


class UnsupportedTransferSyntaxError(StudyLoadError):
    code = "unsupported_transfer_syntax"


class MixedStudiesError(StudyLoadError):
    code = "mixed_studies"


class NoCineError(StudyLoadError):
    code = "no_cine"


class EmptyStudyError(StudyLoadError):
    code = "empty_study"


class StudyTooLargeError(StudyLoadError):
    code = "study_too_large"


class InvalidGeometryError(StudyLoadError):
    """Image headers are DICOM but lack or contradict the geometry needed to place the image."""

    code = "invalid_geometry"
