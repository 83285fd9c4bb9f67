"""Plane geometry in patient LPS coordinates: normals, sorting along a normal, angles and orientations.

DICOM patient coordinates (LPS): +x towards the patient's left, +y posterior, +z superior (head).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Typical direction of the LV long axis from base to apex: the apex points left, anterior and inferior.
# Used only when a study has no short-axis stack to measure it from.
PRIOR_LV_LONG_AXIS: FloatArray = np.array([0.55, -0.45, -0.70]) / np.linalg.norm([0.55, -0.45, -0.70])

PATIENT_AXES: dict[str, FloatArray] = {
    # Plane name -> its normal.
    "sagittal": np.array([1.0, 0.0, 0.0]),
    "coronal": np.array([0.0, 1.0, 0.0]),
    "axial": np.array([0.0, 0.0, 1.0]),
}
SUPERIOR: FloatArray = np.array([0.0, 0.0, 1.0])


def unit(v: ArrayLike) -> FloatArray:
    """`v` scaled to length 1 (raises ValueError for a zero vector)."""
    a = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(a))
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"cannot normalise vector {a!r}")
    return a / n


def plane_normal(orientation: ArrayLike) -> FloatArray:
    """Unit normal (row x column) of an ImageOrientationPatient (6 direction cosines)."""
    o = np.asarray(orientation, dtype=np.float64).reshape(6)
    return unit(np.cross(o[:3], o[3:]))


def axis_angle_deg(a: ArrayLike, b: ArrayLike) -> float:
    """Angle in [0, 90] degrees between the lines along `a` and `b` (sign of either vector ignored)."""
    c = abs(float(np.dot(unit(a), unit(b))))
    return float(np.degrees(np.arccos(min(1.0, c))))


def positions_along(normal: ArrayLike, positions: ArrayLike) -> FloatArray:
    """Signed distance of each ImagePositionPatient (N x 3) along `normal`."""
    return np.asarray(positions, dtype=np.float64).reshape(-1, 3) @ unit(normal)


def sort_along_normal(normal: ArrayLike, positions: ArrayLike) -> NDArray[np.intp]:
    """Indices that order image positions by increasing distance along `normal` (stable)."""
    return np.argsort(positions_along(normal, positions), kind="stable")


def spacing_between_slices(normal: ArrayLike, positions: ArrayLike) -> float | None:
    """Median gap between consecutive distinct slice positions along `normal`; None for fewer than 2."""
    d = np.sort(positions_along(normal, positions))
    if d.size < 2:
        return None
    return float(np.median(np.diff(d)))


def axis_aligned_plane(normal: ArrayLike, tol_deg: float = 10.0) -> str | None:
    """"axial" / "sagittal" / "coronal" when the plane is within `tol_deg` of that patient plane, else None."""
    for name, axis in PATIENT_AXES.items():
        if axis_angle_deg(normal, axis) <= tol_deg:
            return name
    return None


def same_orientation(a: ArrayLike, b: ArrayLike, tol_deg: float = 5.0) -> bool:
    """Whether two ImageOrientationPatient values describe the same plane orientation (row and column)."""
    oa = np.asarray(a, dtype=np.float64).reshape(2, 3)
    ob = np.asarray(b, dtype=np.float64).reshape(2, 3)
    cos_tol = np.cos(np.radians(tol_deg))
    return bool(all(float(np.dot(unit(x), unit(y))) >= cos_tol for x, y in zip(oa, ob)))


def cluster_orientations(orientations: Sequence[ArrayLike], tol_deg: float = 5.0) -> list[int]:
    """Group label per orientation: equal labels share (within `tol_deg`) the same row and column directions."""
    reps: list[ArrayLike] = []
    labels: list[int] = []
    for o in orientations:
        for k, r in enumerate(reps):
            if same_orientation(o, r, tol_deg):
                labels.append(k)
                break
        else:
            reps.append(o)
            labels.append(len(reps) - 1)
    return labels


def mutually_orthogonal(normals: Sequence[ArrayLike], tol_deg: float = 10.0) -> bool:
    """True for two or more normals that are pairwise perpendicular within `tol_deg`."""
    if len(normals) < 2:
        return False
    return all(
        axis_angle_deg(normals[i], normals[j]) >= 90.0 - tol_deg
        for i in range(len(normals))
        for j in range(i + 1, len(normals))
    )


def orient_like(v: ArrayLike, reference: ArrayLike) -> FloatArray:
    """`v` as a unit vector, flipped if needed to point the same way as `reference`."""
    u = unit(v)
    return -u if float(np.dot(u, unit(reference))) < 0 else u


def rotation_about_axis_deg(axis: ArrayLike, v: ArrayLike, reference: ArrayLike) -> float:
    """Right-handed angle in [0, 180) of `v` about `axis`, measured from `reference`, both projected onto the
    plane perpendicular to `axis`. Modulo 180 because plane normals have no sign."""
    ax = unit(axis)
    ref = unit(np.asarray(reference, dtype=np.float64) - np.dot(reference, ax) * ax)
    p = np.asarray(v, dtype=np.float64) - np.dot(v, ax) * ax
    ang = np.degrees(np.arctan2(np.dot(np.cross(ref, p), ax), np.dot(ref, p)))
    return float(ang % 180.0)


def circular_diff_deg(a: float, b: float, period: float = 180.0) -> float:
    """Signed smallest difference a - b on a circle of `period` degrees, in [-period/2, period/2)."""
    return float((a - b + period / 2.0) % period - period / 2.0)


def closest_point_to_planes(normals: Sequence[ArrayLike], points: Sequence[ArrayLike], prior: ArrayLike,
                            prior_weight: float = 1e-3) -> FloatArray:
    """The point nearest (least squares) to every plane (normal n_i through point p_i), pulled weakly towards
    `prior` along directions the planes leave free (the common line of long-axis planes)."""
    a = prior_weight * np.eye(3)
    b = prior_weight * np.asarray(prior, dtype=np.float64)
    for n, p in zip(normals, points):
        u = unit(n)
        a += np.outer(u, u)
        b += u * float(u @ np.asarray(p, dtype=np.float64))
    return np.linalg.solve(a, b)


def patient_to_pixel(point: ArrayLike, orientation: ArrayLike, position: ArrayLike,
                     pixel_spacing: tuple[float, float], along: ArrayLike | None = None) -> tuple[float, float]:
    """(row, col) of a patient-space point in an image: its projection onto the image plane, or, with
    `along` given and not parallel to the plane, where the line through `point` along `along` crosses it."""
    o = np.asarray(orientation, dtype=np.float64).reshape(6)
    row_dir, col_dir = o[:3], o[3:]
    origin = np.asarray(position, dtype=np.float64)
    q = np.asarray(point, dtype=np.float64)
    if along is not None:
        n = plane_normal(o)
        d = unit(along)
        denom = float(d @ n)
        if abs(denom) > 0.5:  # the line crosses the plane steeply: intersect instead of projecting
            q = q + d * float((origin - q) @ n) / denom
    rel = q - origin
    return float(rel @ col_dir) / pixel_spacing[0], float(rel @ row_dir) / pixel_spacing[1]
