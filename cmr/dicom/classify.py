"""Series kind (cine / lge / localizer / other) and view (sax, 2ch, 3ch, 4ch, lax, axial, ...) from geometry
and acquisition headers. SeriesDescription is often empty, so it is only ever a supporting hint.

View geometry: a stack of >= 3 parallel slices is short axis (SAX) and its normal is the LV long axis L.
Without such a stack, L comes from the intersection of long-axis planes, else from an anatomical prior.
Long-axis (LAX) planes contain L; which one they are follows from the rotation of their normal about L,
measured from the patient superior axis projected onto the SAX plane: 4CH (horizontal long axis) ~0 deg,
2CH (vertical long axis) ~90 deg, 3CH/LVOT ~55 deg from 4CH (accepted on either side, since the sign of the
rotation depends on conventions we cannot verify from headers alone).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cmr.dicom import geometry
from cmr.dicom.series import Series, SeriesKind, View, is_secondary_capture

log = logging.getLogger(__name__)

CINE_MIN_PHASES = 8  # distinct trigger times at one position that make a series a cine
AXIS_ALIGNED_TOL_DEG = 10.0  # a plane this close to axial/sagittal/coronal is "aligned with the patient axes"
LOCALIZER_MAX_IMAGES = 64  # scouts are small; a big axis-aligned stack is some other acquisition
SAX_STACK_MIN_SLICES = 3
SAX_STACK_MAX_PRIOR_DEG = 60.0  # a parallel stack further than this from the prior axis is not taken as SAX
SAX_TOL_PRIOR_DEG = 40.0  # single plane within this of the *prior* long axis -> SAX
SAX_TOL_MEASURED_DEG = 25.0  # ... of a long axis measured from this study
LAX_MIN_PRIOR_DEG = 50.0  # plane normal at least this far from the prior long axis -> LAX candidate
LAX_MIN_MEASURED_DEG = 65.0  # ... from a measured long axis
LAX_CLUSTER_DEG = 12.0  # LAX planes closer than this in rotation are the same view (e.g. cine and LGE 4CH)
LAX_TOLERANCE_DEG = 20.0  # residual accepted when naming a LAX view from geometry alone
LAX_SINGLE_MARGIN_DEG = 10.0  # a lone plane must be this much nearer its view than the next one
LAX_MAX_SHIFT_DEG = 25.0  # common rotation offset allowed when naming several LAX planes jointly
# Rotation of each LAX view's normal about the long axis, from the projected superior axis (mod 180).
LAX_TEMPLATES: dict[str, tuple[float, ...]] = {"4ch": (0.0,), "2ch": (90.0,), "3ch": (55.0, 125.0)}

_HINTS: dict[str, re.Pattern[str]] = {
    "localizer": re.compile(r"locali[sz]er|\bloc\b|scout|survey|pilot|3[ -]?pl(ane)?\b|tri[- ]?plane|plan(ning|scan)"),
    "lge": re.compile(
        r"\blge\b|\bde\b|psir|\bmde\b|delayed|late[ _-]?(gad|enh)|viability|ir[ _-]?(gre|tfl|fl2d|tfe)|t1[ _-]?ir"
    ),
    "cine": re.compile(r"cine|ssfp|fiesta|true ?fisp|trufi|b-?ffe|balanced"),
    # Multi-phase acquisitions that are not cine: TI scouts, mapping, flow, perfusion, tagging.
    "not_cine": re.compile(
        r"ti[ _-]?scout|look[ -]?locker|molli|t[12]\*? ?map|mapping|\bmap\b|flow|phase[ -]?contrast|\bpc\b|venc|"
        r"perf|\btag|real[ _-]?time|\brt\b|stir|black[ _-]?blood|\bbb\b|\btse\b|haste|t2w|\bt2\b|shmolli|"
        r"\bpsir[ _-]?(phase|p)\b|\bphase\b|velocity|q[ _-]?flow|screen ?(save|capture)|report"
    ),
    "2ch": re.compile(r"2 ?-?ch|2cv|\bvla\b|two[ -]?chamber|vertical long"),
    "3ch": re.compile(r"3 ?-?ch|3cv|lvot|three[ -]?chamber"),
    "4ch": re.compile(r"4 ?-?ch|4cv|\bhla\b|four[ -]?chamber|horizontal long"),
}


def _text(s: Series) -> str:
    return f"{s.description} {s.protocol_name}".lower().replace("_", " ")


def hint(s: Series, what: str) -> bool:
    """Whether the series description / protocol name suggests `what` (a key of the hint table)."""
    return bool(_HINTS[what].search(_text(s)))


def view_hint(s: Series) -> str | None:
    """The LAX view named by the description, if exactly one is named."""
    found = [v for v in ("2ch", "3ch", "4ch") if hint(s, v)]
    return found[0] if len(found) == 1 else None


# --- kind --------------------------------------------------------------------------------------------------


def is_multiphase(s: Series) -> bool:
    """Several cardiac phases per position: >= CINE_MIN_PHASES distinct trigger times, or fewer backed by
    CardiacNumberOfImages or a cine description."""
    if s.distinct_phases >= CINE_MIN_PHASES:
        return True
    return s.distinct_phases >= 2 and ((s.cardiac_number_of_images or 0) > 1 or hint(s, "cine"))


def has_inversion_recovery(s: Series) -> bool:
    return bool(s.inversion_time) or "IR" in s.scanning_sequence or hint(s, "lge")


def _orthogonal_siblings(s: Series) -> bool:
    """The series' SeriesInstanceUID held several mutually orthogonal plane orientations (a 3-plane scout)."""
    normals = list(s.sibling_normals)
    unique: list[tuple[float, float, float]] = []
    for n in normals:
        if all(geometry.axis_angle_deg(n, u) > 5.0 for u in unique):
            unique.append(n)
    return len(unique) >= 2 and geometry.mutually_orthogonal(unique, AXIS_ALIGNED_TOL_DEG)


# ImageType values of images that are not a magnitude image of an acquisition we assemble: phase and velocity
# images (PSIR phase, phase-contrast flow), parametric maps (T1, T2, T2*), perfusion and flow products.
_NOT_MAGNITUDE_IMAGE_TYPES = frozenset({
    "P", "PHASE", "P_IR", "PHASE MAP", "VELOCITY", "VELOCITY MAP", "FLOW", "PCA", "M_PCA", "PHASE CONTRAST M",
    "MAP", "T1 MAP", "T2 MAP", "T2* MAP", "T1MAP", "T2MAP", "T2*MAP", "T1", "T2", "PERFUSION", "IMAGINARY",
})
# Vendor sequence names of acquisitions that are never cine or LGE: phase-contrast flow (Siemens "_v150in",
# VENC in cm/s), real-time imaging, spin-echo / turbo spin-echo and T1 mapping sequences.
_NOT_CINE_SEQUENCE_NAME = re.compile(r"_v\d+|fcinepc|\bpc|_rt\b|rt_|tse|tir|haste|molli")
T2_WEIGHTED_ECHO_MS = 20.0  # cine (SSFP) and LGE (IR-GRE) echo times are a few ms; T2-weighted images 40-100 ms
RECOVERY_RATIO = 0.5  # mean image signal this far below its peak in some phase: an inversion recovery, not a cine


def not_assembled_reason(s: Series) -> str | None:
    """Why `s` can never be a cine or LGE series of the exam, from its headers alone (None: it may be)."""
    if is_secondary_capture(s.sop_class_uid):
        return "secondary capture"
    if len(s.image_type) > 1 and s.image_type[1] == "SECONDARY":
        return "derived secondary image (made after the exam: reformat, screenshot)"
    found = _NOT_MAGNITUDE_IMAGE_TYPES & set(s.image_type)
    if found:
        return f"ImageType {'/'.join(sorted(found))}: not a magnitude image"
    if hint(s, "not_cine"):
        return "description names a mapping, flow, perfusion, real-time, TI-scout or black-blood series"
    if _NOT_CINE_SEQUENCE_NAME.search(s.sequence_name.lower()):
        return f"sequence {s.sequence_name!r} is not a cine or LGE sequence"
    if s.echo_time is not None and s.echo_time > T2_WEIGHTED_ECHO_MS:
        return f"echo time {s.echo_time:g} ms: T2-weighted"
    if "SE" in s.scanning_sequence and "GR" not in s.scanning_sequence and "EP" not in s.scanning_sequence:
        return "spin-echo acquisition (black blood)"
    return None


def _ungated(s: Series) -> bool:
    """Many images per position without any ECG trigger time: real-time imaging, not a gated cine."""
    return bool(np.all(np.isnan(s.trigger_times))) and not s.cardiac_number_of_images


def _signal_recovers(s: Series) -> bool:
    """The mean image signal dips far below its peak over the phases: an inversion recovering (TI scout,
    Look-Locker), which a cine never does (its mean signal changes little over the cycle)."""
    means = s.pixels.mean(axis=(0, 2, 3))
    return bool(means.size > 1 and means.max() > 0 and means.min() < RECOVERY_RATIO * means.max())


def classify_kind(s: Series) -> SeriesKind:
    """cine / lge / localizer / other for one series (geometry and acquisition first, description as hint)."""
    if {"LOCALIZER", "SCOUT"} & set(s.image_type):
        return "localizer"
    aligned = geometry.axis_aligned_plane(s.normal, AXIS_ALIGNED_TOL_DEG)
    if is_multiphase(s):
        if hint(s, "localizer") and (aligned or _orthogonal_siblings(s)):
            return "localizer"  # real-time multi-phase scouts
        # An inversion pulse before a multi-phase readout is a TI scout / T1 mapping, not a cine.
        ir_acquired = bool(s.inversion_time) or "IR" in s.scanning_sequence
        if ir_acquired or not_assembled_reason(s) or _ungated(s) or _signal_recovers(s):
            return "other"
        return "cine"
    small = s.n_slices * s.n_phases * max(1, s.n_parts) <= LOCALIZER_MAX_IMAGES
    if (has_inversion_recovery(s) and not hint(s, "localizer") and not (aligned and _orthogonal_siblings(s))
            and not not_assembled_reason(s)):
        # LGE is one image per position; several at one cardiac phase are T1-mapping source images (MOLLI).
        return "lge" if s.n_phases == 1 else "other"
    if small and (_orthogonal_siblings(s) or aligned or hint(s, "localizer")):
        return "localizer"
    return "other"


# --- long axis ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongAxis:
    """LV long axis (unit vector, base -> apex) and where it came from: "sax_stack", "lax_planes" or "prior"."""

    direction: NDArray[np.float64]
    source: str

    @property
    def measured(self) -> bool:
        return self.source != "prior"


def parallel_groups(series: Sequence[Series], tol_deg: float = 5.0) -> list[list[Series]]:
    """Series grouped by parallel plane normals (sign ignored), in input order."""
    groups: list[list[Series]] = []
    for s in series:
        for g in groups:
            if geometry.axis_angle_deg(s.normal, g[0].normal) <= tol_deg:
                g.append(s)
                break
        else:
            groups.append([s])
    return groups


def distinct_positions(group: Sequence[Series], tol_mm: float = 0.5) -> int:
    """Number of distinct slice positions along the common normal over all series of a parallel group."""
    normal = group[0].normal
    offsets = np.sort(np.concatenate([geometry.positions_along(normal, s.positions) for s in group]))
    return int(1 + np.count_nonzero(np.diff(offsets) > tol_mm)) if offsets.size else 0


def sax_stacks(series: Sequence[Series], kind: str | None = None) -> list[list[Series]]:
    """Groups of parallel cine (or LGE) series with >= 3 slice positions in all, oblique and roughly along the
    prior long axis: short-axis stacks. Vendors often store each SAX slice as its own series, hence groups."""
    candidates = [
        s for s in series
        if (s.kind == kind if kind else s.kind in ("cine", "lge"))
        and not geometry.axis_aligned_plane(s.normal, AXIS_ALIGNED_TOL_DEG)
        and geometry.axis_angle_deg(s.normal, geometry.PRIOR_LV_LONG_AXIS) <= SAX_STACK_MAX_PRIOR_DEG
    ]
    out = []
    for g in parallel_groups(candidates):
        # A group mixing cine and LGE is two stacks; count positions per kind.
        for k in ("cine", "lge"):
            members = [s for s in g if s.kind == k]
            if members and distinct_positions(members) >= SAX_STACK_MIN_SLICES:
                out.append(members)
    return out


def estimate_long_axis(series: Sequence[Series]) -> LongAxis:
    """The LV long axis from the best SAX stack, else from intersecting LAX planes, else the prior."""
    prior = geometry.PRIOR_LV_LONG_AXIS
    stacks = sax_stacks(series)
    if stacks:
        best = max(stacks, key=lambda g: (g[0].kind == "cine", distinct_positions(g), sum(s.n_phases for s in g)))
        return LongAxis(geometry.orient_like(best[0].normal, prior), "sax_stack")
    lax = [
        s.normal
        for s in series
        if s.kind in ("cine", "lge")
        and not geometry.axis_aligned_plane(s.normal, AXIS_ALIGNED_TOL_DEG)
        and geometry.axis_angle_deg(s.normal, prior) >= LAX_MIN_PRIOR_DEG
    ]
    if len(lax) >= 2:
        # The long axis lies in every LAX plane: the direction most perpendicular to all their normals.
        _, sv, vt = np.linalg.svd(np.stack(lax))
        candidate = vt[-1]
        spread = sv[-2] / max(sv[0], 1e-9)  # ~0 when all planes are (nearly) parallel: no intersection line
        if spread > 0.2 and geometry.axis_angle_deg(candidate, prior) <= 45.0:
            return LongAxis(geometry.orient_like(candidate, prior), "lax_planes")
    return LongAxis(prior.copy(), "prior")


# --- views -------------------------------------------------------------------------------------------------


def lax_rotation_deg(normal: NDArray[np.float64], axis: LongAxis) -> float:
    """Rotation of a LAX plane's normal about the long axis, from the projected superior axis (0 = 4CH)."""
    return geometry.rotation_about_axis_deg(axis.direction, normal, geometry.SUPERIOR)


def _template_residual(theta: float, view: str) -> float:
    return min((geometry.circular_diff_deg(theta, t) for t in LAX_TEMPLATES[view]), key=abs)


def _cluster_angles(thetas: Sequence[float]) -> list[list[int]]:
    clusters: list[list[int]] = []
    centres: list[float] = []
    for i, t in enumerate(thetas):
        for k, c in enumerate(centres):
            if abs(geometry.circular_diff_deg(t, c)) <= LAX_CLUSTER_DEG:
                clusters[k].append(i)
                break
        else:
            clusters.append([i])
            centres.append(t)
    return clusters


def _circular_mean_deg(thetas: Sequence[float]) -> float:
    # Angles are mod 180: double them to use the ordinary circular mean.
    a = np.radians(np.asarray(thetas) * 2.0)
    return float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) / 2.0 % 180.0)


def _name_single(theta: float, hint_view: str | None) -> str:
    """Name one LAX plane (no other planes to compare with): nearest view if clearly nearest, else the hint."""
    ranked = sorted(LAX_TEMPLATES, key=lambda v: abs(_template_residual(theta, v)))
    best, second = (abs(_template_residual(theta, v)) for v in ranked[:2])
    if best <= LAX_TOLERANCE_DEG and second - best >= LAX_SINGLE_MARGIN_DEG:
        return ranked[0]
    return hint_view or "lax"


def assign_lax_views(thetas: Sequence[float], hints: Sequence[str | None]) -> list[str]:
    """Name LAX planes jointly from their rotations about the long axis (degrees, mod 180).

    Planes at the same rotation are one view. Views are assigned one-to-one to the clusters, allowing a
    small common offset (the reference direction is only approximate); description hints break ties and
    rescue planes whose geometry alone is ambiguous. Unresolved planes are "lax".
    """
    clusters = _cluster_angles(thetas)
    centres = [_circular_mean_deg([thetas[i] for i in c]) for c in clusters]
    cluster_hints: list[str | None] = []
    for c in clusters:
        hs = [hints[i] for i in c if hints[i]]
        cluster_hints.append(max(set(hs), key=hs.count) if hs else None)

    if len(clusters) == 1:
        return [_name_single(centres[0], cluster_hints[0])] * len(thetas)

    views = list(LAX_TEMPLATES)
    best: tuple[float, float, tuple[str | None, ...]] | None = None
    # Clusters beyond three cannot all be distinct views; the extras may stay unnamed (None).
    slots: list[str | None] = views + [None] * max(0, len(clusters) - len(views))
    for shift in range(-int(LAX_MAX_SHIFT_DEG), int(LAX_MAX_SHIFT_DEG) + 1):
        for labels in itertools.permutations(slots, len(clusters)):
            cost = (shift / LAX_MAX_SHIFT_DEG) ** 2 * 100.0  # prefer no offset
            for centre, label, h in zip(centres, labels, cluster_hints):
                if label is None:
                    cost += 45.0**2
                    continue
                cost += _template_residual(centre - shift, label) ** 2
                if h is not None and h != label:
                    cost += 30.0**2
            if best is None or cost < best[0]:
                best = (cost, float(shift), labels)
    assert best is not None
    _, shift, labels = best

    named: list[str] = ["lax"] * len(thetas)
    for c, centre, label, h in zip(clusters, centres, labels, cluster_hints):
        ok = label is not None and abs(_template_residual(centre - shift, label)) <= LAX_TOLERANCE_DEG
        name = label if ok else (h if h is not None else "lax")
        for i in c:
            named[i] = name  # type: ignore[assignment]
    return named


def _plane_view(s: Series, axis: LongAxis, in_stack: bool) -> View | None:
    """axial/sagittal/coronal or sax from geometry; None for a LAX candidate; "unknown" otherwise."""
    aligned = geometry.axis_aligned_plane(s.normal, AXIS_ALIGNED_TOL_DEG)
    if aligned is not None:
        return aligned  # type: ignore[return-value]
    angle = geometry.axis_angle_deg(s.normal, axis.direction)
    sax_tol = SAX_TOL_MEASURED_DEG if axis.measured else SAX_TOL_PRIOR_DEG
    lax_min = LAX_MIN_MEASURED_DEG if axis.measured else LAX_MIN_PRIOR_DEG
    if in_stack or angle <= sax_tol:
        return "sax"
    if angle >= lax_min:
        return None
    return "unknown"


def classify_study(series: Sequence[Series]) -> None:
    """Set `kind` and `view` on every series of a study (in place); views need the whole study's geometry."""
    for s in series:
        s.kind = classify_kind(s)
    axis = estimate_long_axis(series)
    stacked = {id(s) for g in sax_stacks(series) for s in g}
    lax: list[Series] = []
    for s in series:
        if s.kind == "localizer":
            s.view = geometry.axis_aligned_plane(s.normal, AXIS_ALIGNED_TOL_DEG) or "unknown"  # type: ignore[assignment]
            continue
        view = _plane_view(s, axis, id(s) in stacked)
        if view is None:
            lax.append(s)
        else:
            s.view = view
    if lax:
        thetas = [lax_rotation_deg(s.normal, axis) for s in lax]
        for s, name in zip(lax, assign_lax_views(thetas, [view_hint(s) for s in lax])):
            s.view = name  # type: ignore[assignment]
    for s in series:
        log.debug(
            "series %s (#%s %r): kind=%s view=%s slices=%d phases=%d distinct=%d axis=%s",
            s.key, s.series_number, s.description, s.kind, s.view, s.n_slices, s.n_phases, s.distinct_phases,
            axis.source,
        )
