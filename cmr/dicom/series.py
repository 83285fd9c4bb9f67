"""Data classes of the series of a loaded study: `Series` (a 4-D image stack plus geometry and header facts),
and the plain summaries (`SeriesInfo`, `StudyInfo`) that go into exams, JSON and logs. Below both the series
classifier and the exam assembly, which read them; `cmr.dicom.model.Study` sits above those."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from cmr.dicom import geometry
from cmr.dicom.quirks import HeaderQuirk

SeriesKind = Literal["cine", "lge", "localizer", "other"]
View = Literal["sax", "2ch", "3ch", "4ch", "lax", "axial", "sagittal", "coronal", "unknown"]

ENHANCED_MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # .1 to .4 are its multi-frame variants


def is_secondary_capture(sop_class_uid: str) -> bool:
    """A Secondary Capture image (screenshot, report page): never an acquisition to assemble."""
    return sop_class_uid == SECONDARY_CAPTURE_SOP_CLASS or sop_class_uid.startswith(SECONDARY_CAPTURE_SOP_CLASS + ".")


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the study, with the error code and one-line reason."""

    name: str
    code: str
    reason: str


@dataclass(eq=False)
class Series:
    """One image series (or one orientation of a multi-orientation series) as a regular 4-D stack.

    `pixels` is float32 [slices, phases, rows, cols] with modality rescale applied; slices are ordered by
    increasing position along `normal`, phases by trigger time.
    """

    key: str  # unique within the study: the SeriesInstanceUID, plus "#k" for orientation parts
    series_instance_uid: str
    pixels: NDArray[np.float32]
    orientation: NDArray[np.float64]  # ImageOrientationPatient: row direction (3) then column direction (3)
    positions: NDArray[np.float64]  # [slices, 3] ImagePositionPatient of each slice (first phase)
    pixel_spacing: tuple[float, float]  # (between rows, between columns) in mm, as DICOM PixelSpacing
    trigger_times: NDArray[np.float64]  # [slices, phases] in ms; NaN where unknown
    distinct_phases: int  # distinct trigger times (or temporal positions) per slice position, median
    slice_thickness: float | None = None
    series_number: int | None = None
    description: str = ""
    protocol_name: str = ""
    manufacturer: str = ""
    model: str = ""
    field_strength: float | None = None
    inversion_time: float | None = None
    image_type: tuple[str, ...] = ()
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    sop_class_uid: str = ""
    cardiac_number_of_images: int | None = None
    sequence_name: str = ""
    echo_time: float | None = None
    source_files: tuple[str, ...] = ()
    part: int = 0  # index of this orientation within its SeriesInstanceUID
    n_parts: int = 1  # number of distinct orientations the SeriesInstanceUID had
    sibling_normals: tuple[tuple[float, float, float], ...] = ()  # normals of all parts, this one included
    kind: SeriesKind = "other"
    view: View = "unknown"
    warnings: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def n_phases(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def cols(self) -> int:
        return int(self.pixels.shape[3])

    @property
    def normal(self) -> NDArray[np.float64]:
        return geometry.plane_normal(self.orientation)

    @property
    def slice_offsets(self) -> NDArray[np.float64]:
        """Distance of each slice along `normal` (increasing)."""
        return geometry.positions_along(self.normal, self.positions)

    @property
    def spacing_between_slices(self) -> float | None:
        """Median centre-to-centre slice distance computed from positions (not the header tag)."""
        return geometry.spacing_between_slices(self.normal, self.positions)

    @property
    def phase_times(self) -> NDArray[np.float64]:
        """Trigger time of each phase, averaged over slices (NaN when unknown)."""
        t = self.trigger_times
        if np.all(np.isnan(t)):
            return np.full(t.shape[1], np.nan)
        return np.nanmean(t, axis=0)

    @property
    def is_enhanced(self) -> bool:
        return self.sop_class_uid == ENHANCED_MR_SOP_CLASS

    def info(self) -> SeriesInfo:
        spacing = self.spacing_between_slices
        return SeriesInfo(
            series_uid=self.series_instance_uid,
            key=self.key,
            series_number=self.series_number,
            kind=self.kind,
            view=self.view,
            slices=self.n_slices,
            phases=self.n_phases,
            rows=self.rows,
            cols=self.cols,
            pixel_spacing=(round(self.pixel_spacing[0], 4), round(self.pixel_spacing[1], 4)),
            slice_thickness=self.slice_thickness,
            spacing_between_slices=None if spacing is None else round(spacing, 3),
            description=self.description,
            manufacturer=self.manufacturer,
            model=self.model,
            field_strength=self.field_strength,
            sop_class_uid=self.sop_class_uid,
        )


@dataclass(frozen=True)
class SeriesInfo:
    """Plain summary of a series (no pixels): what `cmr inspect` shows and exams carry."""

    series_uid: str
    key: str
    series_number: int | None
    kind: str
    view: str
    slices: int
    phases: int
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    spacing_between_slices: float | None
    description: str
    manufacturer: str
    model: str
    field_strength: float | None
    sop_class_uid: str

    @property
    def scanner(self) -> str:
        parts = [self.manufacturer, self.model]
        if self.field_strength:
            parts.append(f"{self.field_strength:g}T")
        return " ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixel_spacing"] = list(self.pixel_spacing)
        d["scanner"] = self.scanner
        return d


@dataclass(frozen=True)
class StudyInfo:
    """Study-level facts: identity, scanner, and what was skipped while loading."""

    study_instance_uid: str
    manufacturer: str
    model: str
    field_strength: float | None
    study_date: dt.date | None
    n_files: int
    skipped: tuple[SkippedFile, ...] = ()
    warnings: tuple[str, ...] = ()
    header_quirks: tuple[HeaderQuirk, ...] = ()  # once per kind of header problem, with counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "field_strength": self.field_strength,
            "study_date": None if self.study_date is None else self.study_date.isoformat(),
            "n_files": self.n_files,
            "skipped": [asdict(s) for s in self.skipped],
            "warnings": list(self.warnings),
            "header_quirks": [q.to_dict() for q in self.header_quirks],
        }
