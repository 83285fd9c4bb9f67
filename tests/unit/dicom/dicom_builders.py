"""Build valid MR DICOM datasets in memory for tests: single-frame MR Image Storage, Enhanced MR multi-frame,
and whole synthetic studies with anatomically placed planes (cine SAX stack, LAX views, LGE, localizer).

Pixel values encode (slice, phase) so tests can check ordering: value = base + 100 * slice + 3 * phase on a
bright square, 10 elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
PRIOR_AXIS = np.array([0.55, -0.45, -0.70]) / np.linalg.norm([0.55, -0.45, -0.70])

Vec = NDArray[np.float64]


def unit(v: Sequence[float] | Vec) -> Vec:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def orientation_for(normal: Vec, row_hint: Vec | None = None) -> list[float]:
    """ImageOrientationPatient (row, col) whose row x col equals `normal`."""
    n = unit(normal)
    hint = np.array([1.0, 0.0, 0.0]) if row_hint is None else np.asarray(row_hint, dtype=np.float64)
    if abs(float(hint @ n)) > 0.95:
        hint = np.array([0.0, 1.0, 0.0])
    row = unit(hint - (hint @ n) * n)
    col = np.cross(n, row)
    return [float(x) for x in (*row, *col)]


def pattern(rows: int, cols: int, value: float) -> NDArray[np.uint16]:
    """A bright centred square of `value` on a background of 10."""
    img = np.full((rows, cols), 10, dtype=np.uint16)
    img[rows // 4 : 3 * rows // 4, cols // 4 : 3 * cols // 4] = int(value)
    return img


def _meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _common(ds: Dataset, study_uid: str, series_uid: str, series_number: int, description: str,
            rows: int, cols: int) -> None:
    ds.Modality = "MR"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.StudyDate = "20240102"
    ds.Manufacturer = "TESTVENDOR"
    ds.ManufacturerModelName = "Model X"
    ds.MagneticFieldStrength = 1.5
    ds.PatientID = "TEST"
    ds.FrameOfReferenceUID = generate_uid()
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0


def mr_image(
    pixels: NDArray[np.uint16],
    *,
    study_uid: str,
    series_uid: str,
    iop: Sequence[float],
    ipp: Sequence[float],
    spacing: tuple[float, float] = (2.0, 2.0),
    thickness: float = 8.0,
    trigger_time: float | None = None,
    instance: int = 1,
    slice_location: float | None = None,
    series_number: int = 1,
    description: str = "",
    scanning_sequence: str = "GR",
    inversion_time: float | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "NONE"),
    slope: float | None = None,
    intercept: float | None = None,
    cardiac_images: int | None = None,
) -> Dataset:
    """One single-frame MR Image Storage dataset with file meta (ready for save_as or load_study)."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(MR_IMAGE_STORAGE, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, sop_uid
    rows, cols = pixels.shape
    _common(ds, study_uid, series_uid, series_number, description, rows, cols)
    ds.ImageType = list(image_type)
    ds.ScanningSequence = scanning_sequence
    ds.SequenceVariant = "SK"
    if inversion_time is not None:
        ds.InversionTime = inversion_time
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = [round(float(x), 6) for x in iop]
    ds.ImagePositionPatient = [round(float(x), 4) for x in ipp]
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = thickness
    if slice_location is not None:
        ds.SliceLocation = slice_location
    if trigger_time is not None:
        ds.TriggerTime = trigger_time
    if cardiac_images is not None:
        ds.CardiacNumberOfImages = cardiac_images
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def _item(**kw: object) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def enhanced_mr(
    frames: NDArray[np.uint16],
    *,
    study_uid: str,
    series_uid: str,
    iop: Sequence[float],
    positions: Sequence[Sequence[float]],
    trigger_times: Sequence[float | None],
    spacing: tuple[float, float] = (2.0, 2.0),
    thickness: float = 8.0,
    series_number: int = 1,
    description: str = "",
    slope: float | None = None,
    intercept: float | None = None,
    per_frame_geometry: bool = False,
    inversion_time: float | None = None,
    temporal_indices: Sequence[int] | None = None,
    in_stack: Sequence[int] | None = None,
) -> Dataset:
    """One Enhanced MR Image Storage dataset holding `frames` [N, rows, cols] with functional groups."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(ENHANCED_MR_STORAGE, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR_STORAGE, sop_uid
    n, rows, cols = frames.shape
    _common(ds, study_uid, series_uid, series_number, description, rows, cols)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n
    iop_r = [round(float(x), 6) for x in iop]
    measures = _item(PixelSpacing=list(spacing), SliceThickness=thickness)
    shared = Dataset()
    if not per_frame_geometry:
        shared.PixelMeasuresSequence = DicomSequence([measures])
        shared.PlaneOrientationSequence = DicomSequence([_item(ImageOrientationPatient=iop_r)])
    if slope is not None or intercept is not None:
        shared.PixelValueTransformationSequence = DicomSequence(
            [_item(RescaleSlope=slope if slope is not None else 1.0, RescaleIntercept=intercept or 0.0,
                   RescaleType="US")]
        )
    if inversion_time is not None:
        shared.MRModifierSequence = DicomSequence([_item(InversionRecovery="YES", InversionTimes=[inversion_time])])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for i in range(n):
        item = Dataset()
        item.PlanePositionSequence = DicomSequence(
            [_item(ImagePositionPatient=[round(float(x), 4) for x in positions[i]])]
        )
        if per_frame_geometry:
            item.PlaneOrientationSequence = DicomSequence([_item(ImageOrientationPatient=iop_r)])
            item.PixelMeasuresSequence = DicomSequence([_item(PixelSpacing=list(spacing), SliceThickness=thickness)])
        if trigger_times[i] is not None:
            item.CardiacSynchronizationSequence = DicomSequence(
                [_item(NominalCardiacTriggerDelayTime=trigger_times[i])]
            )
        content = _item(StackID="1")
        if temporal_indices is not None:
            content.TemporalPositionIndex = int(temporal_indices[i])
        if in_stack is not None:
            content.InStackPositionNumber = int(in_stack[i])
        item.FrameContentSequence = DicomSequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(frames, dtype=np.uint16).tobytes()
    return ds


# --- whole series and studies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heart:
    """A heart frame in LPS: `u` base -> apex, `s` towards the septum/RV, `a` anterior (all unit, orthogonal)."""

    u: Vec
    s: Vec
    a: Vec
    centre: Vec

    @classmethod
    def make(cls, rng: np.random.Generator | None = None, jitter: float = 0.0) -> Heart:
        rng = rng or np.random.default_rng(0)
        u = unit(PRIOR_AXIS + rng.normal(0, jitter, 3))
        s0 = np.array([-0.72, -0.62, 0.12])
        s = unit(s0 - (s0 @ u) * u)
        a = unit(np.cross(u, s))
        if a[1] > 0:  # anterior is -y in LPS
            a = -a
        return cls(u=u, s=s, a=a, centre=np.array([10.0, -20.0, 15.0]))

    def lax_normal(self, view: str) -> Vec:
        """Normal of the 4CH / 2CH / 3CH plane (the plane contains the long axis and this in-plane direction)."""
        d = {"4ch": -self.s, "2ch": self.a, "3ch": unit(0.55 * self.s + 0.85 * self.a)}[view]
        return unit(np.cross(d, -self.u))


def ipp_for(centre: Vec, iop: Sequence[float], rows: int, cols: int, spacing: tuple[float, float]) -> Vec:
    """ImagePositionPatient (first pixel centre) for an image centred on `centre`."""
    o = np.asarray(iop, dtype=np.float64)
    return centre - o[:3] * spacing[1] * (cols - 1) / 2.0 - o[3:] * spacing[0] * (rows - 1) / 2.0


def stack_series(
    *,
    study_uid: str,
    normal: Vec,
    centres: Sequence[Vec],
    phases: int,
    series_number: int,
    description: str = "",
    size: int = 24,
    spacing: tuple[float, float] = (2.0, 2.0),
    rr_ms: float = 900.0,
    lge: bool = False,
    enhanced: bool = False,
    base_value: float = 200.0,
    series_uid: str | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "NONE"),
    slice_location: str = "true",
) -> list[Dataset]:
    """A series of len(centres) parallel slices x `phases` (single-frame files, or one enhanced file).

    slice_location: "true" (distance along normal), "reversed" (misleading) or "none".
    """
    series_uid = series_uid or generate_uid()
    iop = orientation_for(normal)
    n = unit(normal)
    triggers = [None] if lge else [round(k * rr_ms / phases, 1) for k in range(phases)]
    out: list[Dataset] = []
    frames, positions, times = [], [], []
    for k, c in enumerate(centres):
        ipp = ipp_for(np.asarray(c), iop, size, size, spacing)
        loc = float(ipp @ n)
        sl = {"true": loc, "reversed": -loc * 3.0 + 7.0, "none": None}[slice_location]
        for f, t in enumerate(triggers):
            img = pattern(size, size, base_value + 100 * k + 3 * f)
            if enhanced:
                frames.append(img)
                positions.append(ipp)
                times.append(t)
                continue
            out.append(mr_image(
                img, study_uid=study_uid, series_uid=series_uid, iop=iop, ipp=ipp, spacing=spacing,
                trigger_time=t, instance=k * len(triggers) + f + 1, slice_location=sl, series_number=series_number,
                description=description, scanning_sequence="GR\\IR" if lge else "GR",
                inversion_time=300.0 if lge else None, image_type=image_type,
                cardiac_images=None if lge else phases,
            ))
    if enhanced:
        out.append(enhanced_mr(
            np.stack(frames), study_uid=study_uid, series_uid=series_uid, iop=iop, positions=positions,
            trigger_times=times, spacing=spacing, series_number=series_number, description=description,
            inversion_time=300.0 if lge else None,
        ))
    return out


def localizer_series(*, study_uid: str, centre: Vec, series_number: int = 1, size: int = 24,
                     description: str = "") -> list[Dataset]:
    """A 3-plane scout in one series: one axial, one coronal, one sagittal image through `centre`."""
    uid = generate_uid()
    out = []
    for i, normal in enumerate(([0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0])):
        iop = orientation_for(np.array(normal), np.array([1.0, 0, 0]) if i < 2 else np.array([0, 1.0, 0]))
        ipp = ipp_for(centre, iop, size, size, (4.0, 4.0))
        out.append(mr_image(pattern(size, size, 300), study_uid=study_uid, series_uid=uid, iop=iop, ipp=ipp,
                            spacing=(4.0, 4.0), instance=i + 1, series_number=series_number,
                            description=description))
    return out


def full_study(
    *,
    heart: Heart | None = None,
    sax_slices: int = 6,
    phases: int = 12,
    views: Sequence[str] = ("4ch", "2ch", "3ch"),
    lge: bool = True,
    localizer: bool = True,
    descriptions: bool = False,
    enhanced: bool = False,
    size: int = 24,
    study_uid: str | None = None,
) -> list[Dataset]:
    """A whole synthetic exam. SAX slice k sits 8*k mm from the base towards the apex (k = 0 is the base)."""
    heart = heart or Heart.make()
    study_uid = study_uid or generate_uid()
    desc = (lambda d: d) if descriptions else (lambda d: "")
    base = heart.centre - heart.u * 8.0 * (sax_slices - 1) / 2.0
    sax_centres = [base + heart.u * 8.0 * k for k in range(sax_slices)]
    out: list[Dataset] = []
    number = 1
    if localizer:
        out += localizer_series(study_uid=study_uid, centre=heart.centre, description=desc("3-plane loc"))
    number += 1
    for v in views:
        out += stack_series(study_uid=study_uid, normal=heart.lax_normal(v), centres=[heart.centre], phases=phases,
                            series_number=number, description=desc(f"cine {v}"), size=size, enhanced=enhanced)
        number += 1
    if sax_slices:
        out += stack_series(study_uid=study_uid, normal=heart.u, centres=sax_centres, phases=phases,
                            series_number=number, description=desc("cine sax"), size=size, enhanced=enhanced)
    number += 1
    if lge:
        if sax_slices:
            out += stack_series(study_uid=study_uid, normal=heart.u, centres=sax_centres, phases=1,
                                series_number=number, description=desc("PSIR sax"), size=size, lge=True,
                                enhanced=enhanced)
        number += 1
        for v in views:
            out += stack_series(study_uid=study_uid, normal=heart.lax_normal(v), centres=[heart.centre], phases=1,
                                series_number=number, description=desc(f"PSIR {v}"), size=size, lge=True,
                                enhanced=enhanced)
            number += 1
    return out


def write_datasets(datasets: Sequence[Dataset], folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Save datasets as DICOM files (with preamble and file meta) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        path = folder / (names[i] if names else f"{i + 1:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
