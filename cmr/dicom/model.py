"""A loaded study: `Study`, all usable series of one DICOM study, classified, and what was skipped while
reading; it assembles its exam tensor (`to_exam`, see `cmr.dicom.exam`). The series it holds are
`cmr.dicom.series` classes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cmr.dicom.exam import Exam, ExamSpec, assemble_exam
from cmr.dicom.quirks import HeaderQuirk
from cmr.dicom.series import Series, SkippedFile, StudyInfo


@dataclass(eq=False)
class Study:
    """All usable series of one DICOM study, classified, plus what was skipped while reading."""

    study_instance_uid: str
    series: list[Series]
    n_files: int
    study_date: dt.date | None = None
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Patient characteristics read before de-identification (PS3.15 "retain patient characteristics"):
    # body surface area for indexed volumes. None when the header has none.
    patient_height_m: float | None = None
    patient_weight_kg: float | None = None
    header_quirks: list[HeaderQuirk] = field(default_factory=list)  # pydicom's complaints, counted per kind

    def of_kind(self, kind: str, view: str | None = None) -> list[Series]:
        """Series of a kind (and view), in series order."""
        return [s for s in self.series if s.kind == kind and (view is None or s.view == view)]

    @property
    def has_cine(self) -> bool:
        return any(s.kind == "cine" for s in self.series)

    def _scanner_fact(self, attr: str) -> Any:
        # The most common non-empty value over series: one odd series (e.g. a post-processed one) must not win.
        values = [getattr(s, attr) for s in self.series if getattr(s, attr) not in (None, "")]
        if not values:
            return None
        return max(set(values), key=values.count)

    def info(self) -> StudyInfo:
        return StudyInfo(
            study_instance_uid=self.study_instance_uid,
            manufacturer=self._scanner_fact("manufacturer") or "",
            model=self._scanner_fact("model") or "",
            field_strength=self._scanner_fact("field_strength"),
            study_date=self.study_date,
            n_files=self.n_files,
            skipped=tuple(self.skipped),
            warnings=tuple(self.warnings),
            header_quirks=tuple(self.header_quirks),
        )

    def to_exam(self, spec: ExamSpec | None = None) -> Exam:
        """Assemble the fixed-size exam tensor (see `cmr.dicom.exam`)."""
        return assemble_exam(self, spec)

