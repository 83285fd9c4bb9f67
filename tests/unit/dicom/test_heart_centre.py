"""Heart-centred field of view: the exam is cropped around the LV long axis found from the long-axis planes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cmr.dicom import ExamSlot, ExamSpec, load_study
from cmr.dicom import geometry
from cmr.dicom.classify import estimate_long_axis
from cmr.dicom.exam import heart_centre
from cmr.synth.generate import generate_dataset

SPEC = ExamSpec(image_size=64, fov_mm=200.0, centre="heart", slots=(
    ExamSlot("cine_sax", "cine", "sax", frames=1, slices=1),
    ExamSlot("cine_4ch", "cine", "4ch", frames=1),
    ExamSlot("cine_2ch", "cine", "2ch", frames=1),
))


def test_closest_point_to_planes_is_their_intersection_line_nearest_the_prior() -> None:
    p = geometry.closest_point_to_planes([[1, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 2, 0]], prior=[5, 5, 7])
    assert np.allclose(p, [1, 2, 7], atol=1e-2)


def test_patient_to_pixel_projects_and_intersects() -> None:
    orientation = [1, 0, 0, 0, 1, 0]  # rows along x, columns along y: plane z = 10
    pos = [0.0, 0.0, 10.0]
    r, c = geometry.patient_to_pixel([6.0, 4.0, 30.0], orientation, pos, (2.0, 3.0))
    assert (r, c) == pytest.approx((2.0, 2.0))  # row index from y / 2 mm, column from x / 3 mm
    # Along an oblique line the crossing point moves: (6, 4, 30) + t (1, 0, 1) meets z = 10 at x = -14.
    r, c = geometry.patient_to_pixel([6.0, 4.0, 30.0], orientation, pos, (2.0, 3.0), along=[1, 0, 1])
    assert (r, c) == pytest.approx((2.0, -14.0 / 3.0))


def test_spec_centre_round_trips_and_default_spec_id_is_unchanged() -> None:
    assert "centre" not in ExamSpec().to_dict()
    assert ExamSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ValueError, match="centre"):
        ExamSpec(centre="lungs")


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("heart")
    recs = generate_dataset(out, 2, 31, workers=1, scanner="ge_signa_1.5T", progress=False)
    return [out / r["folder"] for r in recs]


def test_heart_centred_exam_puts_the_lv_cavity_in_the_middle(studies: list[Path]) -> None:
    for folder in studies:
        exam = load_study(folder).to_exam(SPEC)
        assert exam.mask.all()
        for frame in exam.pixels:  # mid SAX, 4CH and 2CH at end-diastole: blood pool (bright) at the centre
            centre = frame[28:36, 28:36].mean()
            assert centre > 0.45, f"{folder.name}: centre intensity {centre:.2f} is not blood pool"
            assert centre > np.median(frame)


def test_heart_centre_lies_in_every_long_axis_plane(studies: list[Path]) -> None:
    study = load_study(studies[0])
    axis = estimate_long_axis(study.series)
    c = heart_centre(study, axis)
    assert c is not None
    for s in study.series:
        if s.kind == "cine" and s.view in ("2ch", "4ch"):
            assert abs(float((c - s.positions[0]) @ s.normal)) < 3.0  # mm from the plane


def test_without_two_long_axis_planes_the_image_centre_is_used(studies: list[Path]) -> None:
    study = load_study(studies[0])
    sax_only = dataclasses.replace(study, series=[s for s in study.series if s.view not in ("2ch", "3ch", "4ch", "lax")])
    assert heart_centre(sax_only, estimate_long_axis(sax_only.series)) is None
    exam = sax_only.to_exam(SPEC)
    image_centred = sax_only.to_exam(dataclasses.replace(SPEC, centre="image"))
    assert np.array_equal(exam.pixels, image_centred.pixels)


def test_spec_id_is_stable() -> None:
    # Exam caches on disk are keyed by it: a change would silently rebuild every cache.
    from cmr.model.config import load_config

    assert load_config("small").model.exam.spec_id == "0b2dd7bf0417"
    assert ExamSpec().spec_id == ExamSpec.from_dict(ExamSpec().to_dict()).spec_id
