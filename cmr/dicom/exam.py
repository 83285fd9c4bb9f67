"""Exam assembly: pick the series and frames each `ExamSlot` asks for and stack them into one fixed-size
tensor [T, image_size, image_size] ("one video per exam"), with a mask for missing slots.

Base/apex: along a short-axis stack the base is the end nearer the atria. The LV long axis points from base
to apex towards the patient's left, anterior and inferior (measured from the study where possible, else the
anatomical prior), so slices are ordered by increasing distance along it. Only if a stack's normal were
nearly perpendicular to that axis (which classification does not let happen for SAX) do we fall back to
the end with the larger bright blood-pool area, which is the base.
"""

from __future__ import annotations

import hashlib
import json

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from cmr.dicom import geometry, imaging
from cmr.dicom.classify import LongAxis, estimate_long_axis, parallel_groups
from cmr.dicom.errors import NoCineError
from cmr.dicom.series import Series, SeriesInfo, StudyInfo

SlotSequence = Literal["cine", "lge"]
SlotView = Literal["sax", "2ch", "3ch", "4ch", "lax"]
SLOT_SEQUENCES: tuple[str, ...] = ("cine", "lge")
SLOT_VIEWS: tuple[str, ...] = ("sax", "2ch", "3ch", "4ch", "lax")
LAX_ORDER: tuple[str, ...] = ("4ch", "2ch", "3ch")  # order of views when a slot gathers several LAX images


class StudyLike(Protocol):
    """What assembly reads of a study: `cmr.dicom.model.Study`, which assembles its exam with this module
    (`Study.to_exam`) and so sits above it."""

    series: list[Series]

    @property
    def has_cine(self) -> bool: ...

    def of_kind(self, kind: str, view: str | None = None) -> list[Series]: ...

    def info(self) -> StudyInfo: ...


@dataclass(frozen=True)
class ExamSlot:
    """One part of the exam video: `frames` x `slices` images of one sequence and view.

    cine: `slices` slices (evenly base -> apex for SAX, middle for k = 1), each resampled to `frames` phases.
    lge: `frames` x `slices` images taken from slices (SAX: evenly base -> apex; "lax": one image per LAX view
    in 4CH, 2CH, 3CH order).
    """

    name: str
    sequence: SlotSequence
    view: SlotView
    frames: int
    slices: int = 1

    def __post_init__(self) -> None:
        if self.sequence not in SLOT_SEQUENCES:
            raise ValueError(f"slot {self.name!r}: sequence must be one of {SLOT_SEQUENCES}, not {self.sequence!r}")
        if self.view not in SLOT_VIEWS:
            raise ValueError(f"slot {self.name!r}: view must be one of {SLOT_VIEWS}, not {self.view!r}")
        if self.frames < 1 or self.slices < 1:
            raise ValueError(f"slot {self.name!r}: frames and slices must be >= 1")

    @property
    def length(self) -> int:
        return self.frames * self.slices


DEFAULT_SLOTS: tuple[ExamSlot, ...] = (
    ExamSlot("cine_sax", "cine", "sax", frames=16),
    ExamSlot("cine_4ch", "cine", "4ch", frames=16),
    ExamSlot("cine_2ch", "cine", "2ch", frames=8),
    ExamSlot("cine_3ch", "cine", "3ch", frames=8),
    ExamSlot("lge_sax", "lge", "sax", frames=8),
    ExamSlot("lge_lax", "lge", "lax", frames=3),
)


@dataclass(frozen=True)
class ExamSpec:
    """What an exam tensor contains; plain data so a model config can carry it (`from_dict` / `to_dict`)."""

    image_size: int = 64
    fov_mm: float = 280.0
    slots: tuple[ExamSlot, ...] = DEFAULT_SLOTS
    # Where the field of view is centred: "image" (each image's centre) or "heart" (the LV long axis, from
    # the long-axis planes, so a tight field of view spends its pixels on the heart, not the thorax).
    centre: str = "image"

    def __post_init__(self) -> None:
        if self.centre not in ("image", "heart"):
            raise ValueError(f"centre must be 'image' or 'heart', not {self.centre!r}")
        if self.image_size < 8:
            raise ValueError("image_size must be >= 8")
        if not self.fov_mm > 0:
            raise ValueError("fov_mm must be > 0")
        names = [s.name for s in self.slots]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"slot names must be unique and non-empty: {names}")

    @property
    def length(self) -> int:
        """T: total frames of an exam."""
        return sum(s.length for s in self.slots)

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)

    @property
    def spec_id(self) -> str:
        """Short content hash: exam caches are keyed by it, and exam tensors sent to the encoder carry it."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExamSpec:
        unknown = set(d) - {"image_size", "fov_mm", "slots", "centre"}
        if unknown:
            raise ValueError(f"unknown ExamSpec fields: {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: d[k] for k in ("image_size", "fov_mm", "centre") if k in d}
        if "slots" in d:
            kwargs["slots"] = tuple(s if isinstance(s, ExamSlot) else ExamSlot(**s) for s in d["slots"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"image_size": self.image_size, "fov_mm": self.fov_mm,
                             "slots": [asdict(s) for s in self.slots]}
        if self.centre != "image":  # omitted at its default, so existing spec ids (cache keys) stay the same
            d["centre"] = self.centre
        return d


@dataclass(eq=False)
class Exam:
    """A study as one fixed-size video plus what went into it."""

    pixels: NDArray[np.float32]  # [T, image_size, image_size], 0..1
    mask: NDArray[np.bool_]  # [T] False where the slot (or that frame of it) is missing
    slot_index: NDArray[np.int16]  # [T] index into spec.slots
    frame_index: NDArray[np.int16]  # [T] position within its slot
    present: dict[str, bool]
    missing: list[str]
    study: StudyInfo
    series: list[SeriesInfo]
    spec: ExamSpec
    sources: dict[str, list[str]] = field(default_factory=dict)  # slot -> keys of the series used

    def pixels_uint8(self) -> NDArray[np.uint8]:
        """0..255: how exams are cached and sent to the encoder (the precision the model trains on)."""
        return np.clip(np.rint(self.pixels * 255.0), 0, 255).astype(np.uint8)


# --- choosing series and slices ----------------------------------------------------------------------------

SliceRef = tuple[Series, int]


def _newest_first(series: Sequence[Series]) -> list[Series]:
    # Repeats of an acquisition get higher series numbers and are usually the better ones.
    return sorted(series, key=lambda s: -(s.series_number if s.series_number is not None else -1))


def best_of(found: Sequence[Series]) -> Series:
    """The series used among several of one kind and view (a repeated "_RPT" cine): the most phases, then the
    most slices (the complete one), then the latest (highest series number: a repeat is taken because the first
    try was worse)."""
    return max(_newest_first(found), key=lambda s: (s.n_phases, s.n_slices))


def best_series(study: StudyLike, kind: str, views: Sequence[str]) -> Series | None:
    """The best series of `kind` for the first of `views` that has one (`best_of`)."""
    for view in views:
        found = study.of_kind(kind, view)
        if found:
            return best_of(found)
    return None


def repeat_notes(series: Sequence[Series]) -> list[str]:
    """One note per long-axis view acquired more than once as cine or LGE: which series the exam uses."""
    notes = []
    for kind in SLOT_SEQUENCES:
        for view in (*LAX_ORDER, "lax"):
            found = [s for s in series if s.kind == kind and s.view == view]
            if len(found) > 1:
                numbers = ", ".join(f"#{s.series_number}" for s in found)
                notes.append(f"{kind} {view} acquired {len(found)} times ({numbers}): the exam uses "
                             f"#{best_of(found).series_number} (most phases and slices, then the latest)")
    return notes


def _base_is_high_end(refs: Sequence[SliceRef]) -> bool:
    """Blood-pool fallback: True when the last slice shows more bright central area (the base) than the first."""

    def bright_area(ref: SliceRef) -> float:
        s, i = ref
        img = s.pixels[i, 0]
        rr, cc = np.ogrid[: img.shape[0], : img.shape[1]]
        r_mm = np.hypot((rr - img.shape[0] / 2) * s.pixel_spacing[0], (cc - img.shape[1] / 2) * s.pixel_spacing[1])
        centre = img[r_mm < 40.0]
        return float(np.mean(centre > np.percentile(s.pixels[:, 0], 90))) if centre.size else 0.0

    return bright_area(refs[-1]) > bright_area(refs[0])


def sax_stack(study: StudyLike, kind: str, axis: LongAxis | None = None) -> list[SliceRef]:
    """Slices of the best short-axis stack of `kind`, ordered base -> apex.

    Parallel SAX series are merged (vendors often store one series per slice); the group with the most
    distinct positions wins. Where two series share a position, the newest is kept.
    """
    candidates = study.of_kind(kind, "sax")
    if not candidates:
        return []
    axis = axis or estimate_long_axis(study.series)

    def group_score(g: list[Series]) -> tuple[int, int]:
        return (sum(s.n_slices for s in g), sum(s.n_phases for s in g))

    group = max(parallel_groups(_newest_first(candidates)), key=group_score)
    # Measure along the stack normal, signed to point base -> apex like the long axis.
    direction = geometry.orient_like(group[0].normal, axis.direction)
    refs: list[SliceRef] = []
    offsets: list[float] = []
    for s in group:  # newest first, so the first claim on a position wins
        for i, d in enumerate(geometry.positions_along(direction, s.positions)):
            if all(abs(d - o) > 0.5 for o in offsets):
                refs.append((s, i))
                offsets.append(float(d))
    order = np.argsort(offsets, kind="stable")
    refs = [refs[i] for i in order]
    sign_is_unreliable = geometry.axis_angle_deg(direction, axis.direction) > 60.0
    if len(refs) > 1 and sign_is_unreliable and _base_is_high_end(refs):
        refs.reverse()
    return refs


# --- field of view ------------------------------------------------------------------------------------------


def _image_centre_3d(s: Series, i: int) -> NDArray[np.float64]:
    o = s.orientation
    return (s.positions[i] + o[:3] * s.pixel_spacing[1] * (s.cols - 1) / 2.0
            + o[3:] * s.pixel_spacing[0] * (s.rows - 1) / 2.0)


def heart_centre(study: StudyLike, axis: LongAxis) -> NDArray[np.float64] | None:
    """A point on the LV long axis at mid-ventricle: nearest to every long-axis plane (they all contain the
    axis when planned the standard way), at the level of the middle of the SAX stack. None without two
    non-parallel long-axis planes."""
    normals: list[NDArray[np.float64]] = []
    points: list[NDArray[np.float64]] = []
    lax = [s for s in study.series if s.kind in ("cine", "lge") and s.view in ("2ch", "3ch", "4ch", "lax")]
    for s in lax:
        if all(geometry.axis_angle_deg(s.normal, n) > 10.0 for n in normals):
            normals.append(s.normal)
            points.append(s.positions[(s.n_slices - 1) // 2])
    if len(normals) < 2:
        return None
    refs = sax_stack(study, "cine", axis) or sax_stack(study, "lge", axis)
    centres = [_image_centre_3d(s, i) for s, i in refs] or [_image_centre_3d(s, 0) for s in lax]
    return geometry.closest_point_to_planes(normals, points, np.mean(centres, axis=0))


def _pixel_centre(s: Series, i: int, centre: NDArray[np.float64] | None, axis: LongAxis) -> tuple[float, float] | None:
    """Where the heart centre falls in slice i of s (None: use the image centre)."""
    if centre is None:
        return None
    r, c = geometry.patient_to_pixel(centre, s.orientation, s.positions[i], s.pixel_spacing, along=axis.direction)
    if not (0.0 <= r <= s.rows - 1 and 0.0 <= c <= s.cols - 1):
        return None  # the axis misses this image: a mis-planned or unrelated series
    return r, c


# --- assembling --------------------------------------------------------------------------------------------


@dataclass
class _Block:
    """Images of one series feeding a slot: `slices` (one per image for LGE, or one cine slice)."""

    series: Series
    slices: list[int]  # slice indices; for cine exactly one, whose phases are resampled to the slot frames
    at: list[int]  # positions within the slot

    def images(self, slot: ExamSlot, categorical: bool = False) -> NDArray[np.float32]:
        """Raw images [len(at), rows, cols] for this block."""
        if slot.sequence == "cine":
            return imaging.resample_phases(self.series.pixels[self.slices[0]], slot.frames, categorical)
        # LGE: single phase per position (the first, should a series carry more).
        return self.series.pixels[self.slices, 0].astype(np.float32, copy=False)


def _cine_blocks(study: StudyLike, slot: ExamSlot, axis: LongAxis) -> list[_Block]:
    if slot.view == "sax":
        refs = sax_stack(study, "cine", axis)
    else:
        views = (*LAX_ORDER, "lax") if slot.view == "lax" else (slot.view,)
        s = best_series(study, "cine", views)
        refs = [] if s is None else [(s, i) for i in range(s.n_slices)]
    if not refs:
        return []
    blocks = []
    for k, idx in enumerate(imaging.even_indices(len(refs), slot.slices)):
        s, i = refs[idx]
        blocks.append(_Block(s, [i], list(range(k * slot.frames, (k + 1) * slot.frames))))
    return blocks


def _lge_blocks(study: StudyLike, slot: ExamSlot, axis: LongAxis) -> list[_Block]:
    if slot.view == "lax":
        # Fixed positions (4CH, 2CH, 3CH) so frame i always means the same view; unnamed LAX fill the gaps.
        chosen: list[Series | None] = [best_series(study, "lge", (v,)) for v in LAX_ORDER[: slot.length]]
        chosen += [None] * (slot.length - len(chosen))
        spare = _newest_first(study.of_kind("lge", "lax"))
        for j, c in enumerate(chosen):
            if c is None and spare:
                chosen[j] = spare.pop(0)
        return [_Block(s, [(s.n_slices - 1) // 2], [j]) for j, s in enumerate(chosen) if s is not None]
    if slot.view == "sax":
        refs = sax_stack(study, "lge", axis)
    else:
        s = best_series(study, "lge", (slot.view,))
        refs = [] if s is None else [(s, i) for i in range(s.n_slices)]
    blocks: dict[str, _Block] = {}
    for j, idx in enumerate(imaging.even_indices(len(refs), slot.length) if refs else []):
        s, i = refs[idx]
        b = blocks.setdefault(s.key, _Block(s, [], []))
        b.slices.append(i)
        b.at.append(j)
    return list(blocks.values())


def _plan(study: StudyLike, spec: ExamSpec) -> list[list[_Block]]:
    if not study.has_cine:
        kinds = sorted({s.kind for s in study.series})
        found = ", ".join(f"{sum(s.kind == k for s in study.series)} {k}" for k in kinds) or "no"
        raise NoCineError(f"no cine series in the study (found {found} series)")
    axis = estimate_long_axis(study.series)
    return [(_cine_blocks if slot.sequence == "cine" else _lge_blocks)(study, slot, axis) for slot in spec.slots]


def slot_sources(study: StudyLike, spec: ExamSpec | None = None) -> dict[str, list[str]]:
    """Which series (keys) would fill each slot; empty list for a missing slot. No pixel work.

    Raises NoCineError like `assemble_exam`."""
    spec = spec or ExamSpec()
    return {
        slot.name: list(dict.fromkeys(b.series.key for b in blocks))
        for slot, blocks in zip(spec.slots, _plan(study, spec))
    }


def assemble_exam(study: StudyLike, spec: ExamSpec | None = None, categorical: bool = False) -> Exam:
    """Build the exam tensor of `study` according to `spec` (default `ExamSpec()`).

    `categorical`: the series' pixels are class ids (a phantom's tissue label maps put in place of its images):
    the same frames, views and geometry, but nearest-neighbour resampling and no intensity window, so the
    result holds the ids of the tissues each exam pixel shows."""
    spec = spec or ExamSpec()
    plan = _plan(study, spec)
    axis = estimate_long_axis(study.series)
    centre = heart_centre(study, axis) if spec.centre == "heart" else None
    n, size = spec.length, spec.image_size
    pixels = np.zeros((n, size, size), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    slot_index = np.zeros(n, dtype=np.int16)
    frame_index = np.zeros(n, dtype=np.int16)
    present: dict[str, bool] = {}
    sources: dict[str, list[str]] = {}
    windows: dict[str, tuple[float, float]] = {}

    start = 0
    for k, (slot, blocks) in enumerate(zip(spec.slots, plan)):
        slot_index[start : start + slot.length] = k
        frame_index[start : start + slot.length] = np.arange(slot.length)
        for b in blocks:
            s = b.series
            if categorical:
                images = b.images(slot, categorical=True)
            else:
                if s.key not in windows:
                    windows[s.key] = imaging.robust_window(s.pixels)
                images = imaging.apply_window(b.images(slot), windows[s.key])
            # The slice each image came from: cine blocks are one slice over time, LGE blocks one image per slice.
            slice_of = [b.slices[0]] * len(b.at) if slot.sequence == "cine" else list(b.slices)
            by_centre: dict[tuple[float, float] | None, list[int]] = {}
            for k_img, sl in enumerate(slice_of):
                by_centre.setdefault(_pixel_centre(s, sl, centre, axis), []).append(k_img)
            for c, ks in by_centre.items():
                grid = imaging.resample_to_grid(images[ks], s.pixel_spacing, size, spec.fov_mm, centre=c,
                                                categorical=categorical)
                pixels[[start + b.at[k_img] for k_img in ks]] = grid
            mask[[start + j for j in b.at]] = True
        present[slot.name] = bool(blocks)
        sources[slot.name] = list(dict.fromkeys(b.series.key for b in blocks))
        start += slot.length

    return Exam(
        pixels=pixels,
        mask=mask,
        slot_index=slot_index,
        frame_index=frame_index,
        present=present,
        missing=[name for name, ok in present.items() if not ok],
        study=study.info(),
        series=[s.info() for s in study.series],
        spec=spec,
        sources=sources,
    )
