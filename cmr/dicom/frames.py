"""Turn one pydicom Dataset (single-frame, classic multi-frame or Enhanced MR) into per-frame records with
geometry, timing, rescaled pixels and the series-level header facts.

Everything that can fail on bad data is mapped to a `StudyLoadError` subclass naming the file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import apply_rescale, get_decoder
from pydicom.uid import UID
from pydicom.valuerep import DA

from cmr.dicom.series import is_secondary_capture
from cmr.dicom.errors import (
    InvalidGeometryError,
    NoPixelDataError,
    StudyLoadError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
)

log = logging.getLogger(__name__)

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class HeaderFacts:
    """Series-level header values of one file (identical for all its frames)."""

    study_uid: str
    series_uid: str
    series_number: int | None
    description: str
    protocol_name: str
    manufacturer: str
    model: str
    field_strength: float | None
    inversion_time: float | None
    image_type: tuple[str, ...]
    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    sop_class_uid: str
    cardiac_number_of_images: int | None
    study_date: dt.date | None
    sequence_name: str = ""  # vendor pulse-sequence name, e.g. Siemens "*fl2d1_v150in" (flow, VENC 150)
    echo_time: float | None = None  # ms
    patient_height_m: float | None = None  # PatientSize (m): indexes volumes to body surface area
    patient_weight_kg: float | None = None  # PatientWeight (kg)


@dataclass(eq=False)
class Frame:
    """One 2-D image with everything needed to place it in a series stack."""

    file: str
    sop_instance_uid: str
    frame_number: int  # 0-based index within its file
    instance_number: int
    orientation: NDArray[np.float64]  # (6,)
    position: NDArray[np.float64]  # (3,)
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    trigger_time: float | None
    temporal_index: int | None
    stack_id: str | None
    in_stack_position: int | None
    pixels: NDArray[np.float32]  # (rows, cols), rescaled
    header: HeaderFacts


# --- small tolerant accessors: real headers carry empty or malformed values ---------------------------------


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _int(value: Any) -> int | None:
    f = _float(value)
    return None if f is None else int(round(f))


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _multi(value: Any) -> tuple[str, ...]:
    """A CS multi-value (or a single string) as upper-case tokens."""
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).strip().upper() for v in items if str(v).strip())


def _floats(value: Any, n: int) -> NDArray[np.float64] | None:
    try:
        a = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) and np.all(np.isfinite(a)) else None


def _date(value: Any) -> dt.date | None:
    # pydicom's DA raises for invalid dates such as the anonymised "20120000"; that means "unknown".
    try:
        d = DA(_str(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return d if isinstance(d, dt.date) else None


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    seq = ds.get(keyword)
    try:
        return list(seq) if seq is not None else []
    except TypeError:
        return []


def _fg_item(ds: Dataset, frame: int | None, macro: str) -> Dataset | None:
    """First item of functional-group macro `macro` for a frame: per-frame group first, then shared."""
    if frame is not None:
        per_frame = _items(ds, "PerFrameFunctionalGroupsSequence")
        if frame < len(per_frame):
            found = _items(per_frame[frame], macro)
            if found:
                return found[0]
    shared = _items(ds, "SharedFunctionalGroupsSequence")
    if shared:
        found = _items(shared[0], macro)
        if found:
            return found[0]
    return None


def _lookup(ds: Dataset, frame: int | None, macro: str, keyword: str) -> Any:
    """`keyword` from the functional-group macro of `frame`, else from the top level of the dataset.

    frame None means "not a functional-group image": only the top level is read."""
    if frame is None:
        return ds.get(keyword)
    item = _fg_item(ds, frame, macro)
    if item is not None and keyword in item:
        return item.get(keyword)
    return ds.get(keyword)


def _deep_get(ds: Dataset, keyword: str) -> Any:
    """`keyword` at the top level, else in any first-level item of the shared / first per-frame groups.

    Enhanced MR keeps scanner parameters (e.g. InversionTimes) in assorted macros; where exactly varies."""
    if keyword in ds:
        return ds.get(keyword)
    for groups in (_items(ds, "SharedFunctionalGroupsSequence"), _items(ds, "PerFrameFunctionalGroupsSequence")[:1]):
        for group in groups:
            for elem in group:
                if elem.VR == "SQ":
                    for item in elem.value:
                        if keyword in item:
                            return item.get(keyword)
    return None


# --- header facts ------------------------------------------------------------------------------------------


def header_facts(ds: Dataset) -> HeaderFacts:
    """Series-level facts of a dataset (tolerant of missing or malformed values)."""
    inversion = _float(_deep_get(ds, "InversionTime"))
    if inversion is None:
        # Enhanced MR: MR Modifier macro's InversionTimes (FD, possibly multi-valued).
        times = _deep_get(ds, "InversionTimes")
        values = [times] if isinstance(times, (int, float)) else list(times or [])
        inversion = next((v for v in map(_float, values) if v), None)
    scanning = _multi(ds.get("ScanningSequence"))
    if "IR" not in scanning and _str(_deep_get(ds, "InversionRecovery")).upper() == "YES":
        # Enhanced MR has no ScanningSequence; its MR Modifier macro says whether inversion recovery was used.
        scanning = (*scanning, "IR")
    return HeaderFacts(
        study_uid=_str(ds.get("StudyInstanceUID")),
        series_uid=_str(ds.get("SeriesInstanceUID")),
        series_number=_int(ds.get("SeriesNumber")),
        description=_str(ds.get("SeriesDescription")),
        protocol_name=_str(ds.get("ProtocolName")),
        manufacturer=_str(ds.get("Manufacturer")),
        model=_str(ds.get("ManufacturerModelName")),
        field_strength=_float(ds.get("MagneticFieldStrength")),
        inversion_time=inversion if inversion and inversion > 0 else None,  # GE writes 0 for "none"
        image_type=_multi(ds.get("ImageType")),
        scanning_sequence=scanning,
        sequence_variant=_multi(ds.get("SequenceVariant")),
        sop_class_uid=_str(ds.get("SOPClassUID")),
        cardiac_number_of_images=_int(_deep_get(ds, "CardiacNumberOfImages")),
        study_date=_date(ds.get("StudyDate")),
        sequence_name=_str(_deep_get(ds, "SequenceName") or _deep_get(ds, "PulseSequenceName")),
        echo_time=_float(_deep_get(ds, "EchoTime") or _deep_get(ds, "EffectiveEchoTime")),
        patient_height_m=_positive(ds.get("PatientSize")),
        patient_weight_kg=_positive(ds.get("PatientWeight")),
    )


def _positive(value: Any) -> float | None:
    f = _float(value)
    return f if f is not None and f > 0 else None


# --- integrity and pixel decoding --------------------------------------------------------------------------


def _has_pixels(ds: Dataset) -> bool:
    return any(t in ds for t in _PIXEL_TAGS)


def _last_value_short(ds: Dataset) -> bool:
    """True when the last element read has fewer value bytes than its header announced (file cut short)."""
    tags = list(ds.keys())
    if not tags:
        return False
    raw = ds.get_item(tags[-1])
    if isinstance(raw, RawDataElement) and raw.value is not None and raw.length != 0xFFFFFFFF:
        return len(raw.value) < raw.length
    return False


def check_integrity(ds: Dataset, name: str) -> None:
    """Raise TruncatedFileError / NoPixelDataError for datasets that cannot give an image."""
    if _last_value_short(ds):
        raise TruncatedFileError(f"{name}: truncated DICOM file (last element {list(ds.keys())[-1]} is cut short)")
    if _has_pixels(ds):
        return
    meta = getattr(ds, "file_meta", None)
    sop = UID(_str(ds.get("SOPClassUID")) or _str(meta.get("MediaStorageSOPClassUID") if meta is not None else ""))
    is_image_class = "Image Storage" in (sop.name if sop else "")
    if (is_image_class and "Rows" not in ds) or len(ds) == 0:
        # An image SOP class without even the image pixel module (or a bare file meta): the file ended early.
        raise TruncatedFileError(f"{name}: truncated DICOM file (headers end before the pixel data)")
    what = sop.name if sop and sop.name != sop else (sop or "unknown SOP class")
    raise NoPixelDataError(f"{name}: no pixel data ({what})")


def _decode(ds: Dataset, name: str) -> NDArray[Any]:
    """The stored pixel values, mapping decoder problems to typed errors."""
    ts = UID(_str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")))
    if ts and ts.is_compressed:
        try:
            available = get_decoder(ts).is_available
        except (NotImplementedError, ValueError):
            available = False
        if not available:
            raise UnsupportedTransferSyntaxError(f"{name}: no decoder installed for transfer syntax {ts.name} ({ts})")
    try:
        return np.asarray(ds.pixel_array)
    except StudyLoadError:
        raise
    except Exception as exc:  # decoders raise many types; all mean "cannot get pixels"
        msg = " ".join(str(exc).split())[:160]
        if ts and ts.is_compressed:
            raise UnsupportedTransferSyntaxError(
                f"{name}: cannot decode {ts.name} pixel data ({type(exc).__name__}: {msg})"
            ) from exc
        if "less than expected" in msg or "shorter" in msg:
            raise TruncatedFileError(f"{name}: truncated DICOM file (pixel data shorter than Rows x Columns)") from exc
        if "Transfer Syntax" in msg and ts == "":
            raise UnsupportedTransferSyntaxError(f"{name}: no transfer syntax in file meta; cannot decode pixels") from exc
        raise NoPixelDataError(f"{name}: unreadable pixel data ({type(exc).__name__}: {msg})") from exc


def _to_gray(arr: NDArray[Any], ds: Dataset, n_frames: int) -> NDArray[Any]:
    """Pixel array as [frames, rows, cols]; colour images are averaged to grey (CMR is grey-scale)."""
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1 and arr.ndim >= 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[0] != n_frames:
        arr = arr.reshape(-1, arr.shape[-2], arr.shape[-1])[:n_frames]
    return arr


def _rescaled(frame_pixels: NDArray[Any], ds: Dataset, frame: int, enhanced: bool) -> NDArray[np.float32]:
    if enhanced:
        # pydicom's apply_rescale reads only top-level tags; Enhanced MR keeps them per frame or shared.
        slope = _float(_lookup(ds, frame, "PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _float(_lookup(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
        out = frame_pixels.astype(np.float32)
        if slope is not None and slope != 1.0:
            out *= np.float32(slope)
        if intercept:
            out += np.float32(intercept)
        return out
    return np.asarray(apply_rescale(frame_pixels, ds), dtype=np.float32)


# --- frames ------------------------------------------------------------------------------------------------


def _uses_functional_groups(ds: Dataset) -> bool:
    return bool(_items(ds, "SharedFunctionalGroupsSequence")) or (
        int(_int(ds.get("NumberOfFrames")) or 1) > 1 and bool(_items(ds, "PerFrameFunctionalGroupsSequence"))
    )


def iter_frames(ds: Dataset, name: str) -> Iterator[Frame]:
    """All frames of a dataset, in file order. Raises StudyLoadError subclasses for unusable files."""
    check_integrity(ds, name)
    header = header_facts(ds)
    n_frames = max(1, _int(ds.get("NumberOfFrames")) or 1)
    enhanced = _uses_functional_groups(ds)
    try:
        stored = _to_gray(_decode(ds, name), ds, n_frames)
    except StudyLoadError:
        raise
    except Exception as exc:
        raise NoPixelDataError(f"{name}: unusable pixel array ({type(exc).__name__})") from exc
    n_frames = min(n_frames, stored.shape[0])
    instance = _int(ds.get("InstanceNumber")) or 0
    sop_uid = _str(ds.get("SOPInstanceUID"))
    frame_time = _float(ds.get("FrameTime"))

    for i in range(n_frames):
        fi = i if enhanced else None
        orientation = _floats(_lookup(ds, fi, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        position = _floats(_lookup(ds, fi, "PlanePositionSequence", "ImagePositionPatient"), 3)
        spacing = _floats(_lookup(ds, fi, "PixelMeasuresSequence", "PixelSpacing"), 2)
        if orientation is None or position is None:
            if is_secondary_capture(header.sop_class_uid):
                raise InvalidGeometryError(f"{name}: a secondary capture (screenshot), not an acquired image")
            raise InvalidGeometryError(f"{name}: no usable ImageOrientationPatient/ImagePositionPatient")
        if spacing is None:
            spacing = _floats(ds.get("ImagerPixelSpacing"), 2)
        if spacing is None or np.any(spacing <= 0):
            raise InvalidGeometryError(f"{name}: no usable PixelSpacing")
        if np.linalg.norm(np.cross(orientation[:3], orientation[3:])) < 0.5:
            raise InvalidGeometryError(f"{name}: degenerate ImageOrientationPatient {orientation.tolist()}")

        trigger = _float(_lookup(ds, fi, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"))
        if trigger is None:
            trigger = _float(ds.get("TriggerTime"))
            if n_frames > 1 and not enhanced and frame_time is not None:
                # Classic multi-frame cine: frames are equally spaced by FrameTime after the trigger.
                trigger = (trigger or 0.0) + i * frame_time
        content = _fg_item(ds, fi, "FrameContentSequence") if enhanced else None
        temporal = _int(content.get("TemporalPositionIndex")) if content is not None else None
        stack_id = _str(content.get("StackID")) or None if content is not None else None
        in_stack = _int(content.get("InStackPositionNumber")) if content is not None else None

        yield Frame(
            file=name,
            sop_instance_uid=sop_uid,
            frame_number=i,
            instance_number=instance,
            orientation=orientation,
            position=position,
            pixel_spacing=(float(spacing[0]), float(spacing[1])),
            slice_thickness=_float(_lookup(ds, fi, "PixelMeasuresSequence", "SliceThickness")),
            trigger_time=trigger,
            temporal_index=temporal,
            stack_id=stack_id,
            in_stack_position=in_stack,
            pixels=_rescaled(stored[i], ds, i, enhanced),
            header=header,
        )
