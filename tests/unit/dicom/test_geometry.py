"""Plane geometry helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmr.dicom import geometry

AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_plane_normal_is_row_cross_column() -> None:
    np.testing.assert_allclose(geometry.plane_normal(AXIAL_IOP), [0, 0, 1])
    np.testing.assert_allclose(geometry.plane_normal([0, 1, 0, 0, 0, -1]), [-1, 0, 0])


def test_plane_normal_rejects_degenerate_orientation() -> None:
    with pytest.raises(ValueError):
        geometry.plane_normal([1, 0, 0, 1, 0, 0])


def test_axis_angle_ignores_sign() -> None:
    assert geometry.axis_angle_deg([0, 0, 1], [0, 0, -1]) == pytest.approx(0.0)
    assert geometry.axis_angle_deg([1, 0, 0], [0, 1, 0]) == pytest.approx(90.0)
    assert geometry.axis_angle_deg([1, 1, 0], [1, 0, 0]) == pytest.approx(45.0)


def test_sort_along_normal_ignores_in_plane_shifts() -> None:
    normal = geometry.unit([0.3, -0.5, 0.8])
    offsets = [16.0, -8.0, 0.0, 8.0]
    in_plane = geometry.unit(np.cross(normal, [1, 0, 0]))
    positions = [d * normal + 50.0 * (i % 2) * in_plane for i, d in enumerate(offsets)]
    order = geometry.sort_along_normal(normal, positions)
    assert order.tolist() == [1, 2, 3, 0]
    assert geometry.spacing_between_slices(normal, positions) == pytest.approx(8.0)
    assert geometry.spacing_between_slices(normal, positions[:1]) is None


@pytest.mark.parametrize(
    ("normal", "expected"),
    [([0, 0, 1], "axial"), ([1, 0, 0], "sagittal"), ([0, -1, 0], "coronal"), ([0.1, 0.05, 0.99], "axial"),
     ([0.55, -0.45, -0.70], None)],
)
def test_axis_aligned_plane(normal: list[float], expected: str | None) -> None:
    assert geometry.axis_aligned_plane(normal) == expected


def test_cluster_orientations_and_orthogonality() -> None:
    iops = [AXIAL_IOP, [1, 0, 0, 0, 0, -1], AXIAL_IOP, [0, 1, 0, 0, 0, -1], [0.999, 0.04, 0, -0.04, 0.999, 0]]
    labels = geometry.cluster_orientations(iops)
    assert labels == [0, 1, 0, 2, 0]
    assert geometry.mutually_orthogonal([[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert not geometry.mutually_orthogonal([[0, 0, 1], [0, 1, 1]])
    assert not geometry.mutually_orthogonal([[0, 0, 1]])


def test_rotation_about_axis() -> None:
    axis = [0, 0, 1]
    assert geometry.rotation_about_axis_deg(axis, [1, 0, 0], [1, 0, 0]) == pytest.approx(0.0)
    assert geometry.rotation_about_axis_deg(axis, [0, 1, 0], [1, 0, 0]) == pytest.approx(90.0)
    # Right-handed about +z, modulo 180 (a normal's sign is meaningless).
    assert geometry.rotation_about_axis_deg(axis, [1, -1, 0], [1, 0, 0]) == pytest.approx(135.0)
    assert geometry.rotation_about_axis_deg(axis, [-1, 1, 5], [1, 0, 0]) == pytest.approx(135.0)


@settings(max_examples=50, deadline=None)
@given(st.floats(-720, 720), st.floats(-720, 720))
def test_circular_diff_is_small_and_consistent(a: float, b: float) -> None:
    d = geometry.circular_diff_deg(a, b)
    assert -90.0 <= d < 90.0
    assert (a - b - d) / 180.0 == pytest.approx(round((a - b - d) / 180.0), abs=1e-6)


def test_orient_like_flips_towards_reference() -> None:
    np.testing.assert_allclose(geometry.orient_like([0, 0, -2], [0, 0.1, 1]), [0, 0, 1])
