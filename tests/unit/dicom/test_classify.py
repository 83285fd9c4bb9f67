"""Series kind and view from geometry and acquisition headers (descriptions only as hints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_builders import Heart, full_study, localizer_series, mr_image, orientation_for, pattern, stack_series
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from cmr.dicom import load_study
from cmr.dicom.classify import LAX_TEMPLATES, assign_lax_views

EXPECTED_FULL = [
    ("localizer", "axial"), ("localizer", "coronal"), ("localizer", "sagittal"),
    ("cine", "4ch"), ("cine", "2ch"), ("cine", "3ch"), ("cine", "sax"),
    ("lge", "sax"), ("lge", "4ch"), ("lge", "2ch"), ("lge", "3ch"),
]


def _kinds_views(datasets: list[Dataset]) -> list[tuple[str, str]]:
    return [(s.kind, s.view) for s in load_study(datasets).series]


def test_sunnybrook(midslice_dir: Path, localizer_dir: Path) -> None:
    assert [(s.kind, s.view) for s in load_study(midslice_dir).series] == [("cine", "sax")]
    assert [(s.kind, s.view) for s in load_study(localizer_dir).series] == [
        ("localizer", "axial"), ("localizer", "sagittal"), ("localizer", "coronal")
    ]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("enhanced", [False, True])
def test_full_study_without_descriptions(seed: int, enhanced: bool) -> None:
    heart = Heart.make(np.random.default_rng(seed), jitter=0.12)
    assert _kinds_views(full_study(heart=heart, enhanced=enhanced, size=8, phases=8, sax_slices=3)) == EXPECTED_FULL


def test_full_study_with_descriptions() -> None:
    assert _kinds_views(full_study(descriptions=True, size=16, phases=10)) == EXPECTED_FULL


@pytest.mark.parametrize("seed", range(4))
def test_lax_views_without_a_sax_stack_use_the_planes_intersection(seed: int) -> None:
    heart = Heart.make(np.random.default_rng(100 + seed), jitter=0.12)
    got = _kinds_views(full_study(heart=heart, sax_slices=0, lge=False, localizer=False, size=16, phases=10))
    assert got == [("cine", "4ch"), ("cine", "2ch"), ("cine", "3ch")]


def test_single_lax_plane_with_prior_axis() -> None:
    got = _kinds_views(full_study(views=("4ch",), sax_slices=0, lge=False, localizer=False, size=16, phases=10))
    assert got == [("cine", "4ch")]


def test_misleading_description_does_not_override_geometry() -> None:
    heart = Heart.make()
    study_uid = generate_uid()
    datasets = stack_series(study_uid=study_uid, normal=heart.lax_normal("4ch"), centres=[heart.centre], phases=10,
                            series_number=2, description="cine sax", size=16)
    datasets += stack_series(study_uid=study_uid, normal=heart.u, centres=[heart.centre], phases=10,
                             series_number=3, description="cine 4ch", size=16)
    assert _kinds_views(datasets) == [("cine", "4ch"), ("cine", "sax")]


def test_description_resolves_an_ambiguous_lax_plane() -> None:
    heart = Heart.make()
    # A LAX plane halfway between the 2CH and 3CH positions: geometry alone cannot name it.
    d = np.cos(np.radians(17)) * heart.a + np.sin(np.radians(17)) * heart.s
    normal = np.cross(d, -heart.u)
    study_uid = generate_uid()
    sax = stack_series(study_uid=study_uid, normal=heart.u, centres=[heart.centre + heart.u * 8 * k for k in range(3)],
                       phases=10, series_number=5, size=16)
    plain = stack_series(study_uid=study_uid, normal=normal, centres=[heart.centre], phases=10, series_number=2, size=16)
    named = stack_series(study_uid=study_uid, normal=normal, centres=[heart.centre], phases=10, series_number=2,
                         size=16, description="CINE_2CH")
    assert _kinds_views(plain + sax) == [("cine", "lax"), ("cine", "sax")]
    assert _kinds_views(named + sax) == [("cine", "2ch"), ("cine", "sax")]


def test_assign_lax_views_jointly() -> None:
    assert assign_lax_views([0.0, 90.0, 125.0], [None] * 3) == ["4ch", "2ch", "3ch"]
    # Same view twice (cine and LGE of one plane) plus a common offset of 22 degrees.
    assert assign_lax_views([158.0, 158.5, 68.0, 103.0], [None] * 4) == ["4ch", "4ch", "2ch", "3ch"]
    assert assign_lax_views([107.0], [None]) == ["lax"]
    assert assign_lax_views([107.0], ["3ch"]) == ["3ch"]
    assert assign_lax_views([50.0], [None]) == ["3ch"]  # 3CH accepted on either side of 2CH
    assert set(LAX_TEMPLATES) == {"4ch", "2ch", "3ch"}


def test_lge_by_inversion_time_scanning_sequence_or_hint() -> None:
    heart = Heart.make()
    study_uid = generate_uid()
    iop = orientation_for(heart.u)

    def one(number: int, **kw: object) -> Dataset:
        return mr_image(pattern(16, 16, 400), study_uid=study_uid, series_uid=generate_uid(), iop=iop,
                        ipp=heart.centre, series_number=number, **kw)  # type: ignore[arg-type]

    datasets = [
        one(1, inversion_time=280.0),
        one(2, scanning_sequence="GR\\IR"),
        one(3, description="Delayed enhancement"),
        one(4, inversion_time=0.0),  # GE's "no inversion"
        one(5),
    ]
    assert [s.kind for s in load_study(datasets).series] == ["lge", "lge", "lge", "other", "other"]


def test_ti_scout_is_not_cine() -> None:
    heart = Heart.make()
    datasets = stack_series(study_uid=generate_uid(), normal=heart.lax_normal("4ch"), centres=[heart.centre],
                            phases=12, series_number=2, size=16)
    for ds in datasets:
        ds.InversionTime = 100.0 + 20 * int(ds.InstanceNumber)
    assert [s.kind for s in load_study(datasets).series] == ["other"]


def test_localizer_by_image_type_even_if_oblique() -> None:
    heart = Heart.make()
    datasets = stack_series(study_uid=generate_uid(), normal=heart.u, centres=[heart.centre], phases=1,
                            series_number=1, size=16, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    assert _kinds_views(datasets) == [("localizer", "unknown")]


def test_axis_aligned_single_phase_images_are_localizers_and_multiphase_is_cine() -> None:
    study_uid = generate_uid()
    loc = localizer_series(study_uid=study_uid, centre=np.zeros(3))
    for ds in loc:
        ds.SeriesInstanceUID = generate_uid()  # three separate series: no sibling evidence, axis alignment only
    axial_cine = stack_series(study_uid=study_uid, normal=np.array([0, 0, 1.0]), centres=[np.zeros(3)], phases=10,
                              series_number=4, size=16)
    got = sorted(_kinds_views(loc + axial_cine))
    assert got == [("cine", "axial"), ("localizer", "axial"), ("localizer", "coronal"), ("localizer", "sagittal")]


def test_big_axis_aligned_stack_is_other_not_localizer() -> None:
    centres = [np.array([0, 0, 5.0 * k]) for k in range(70)]
    datasets = stack_series(study_uid=generate_uid(), normal=np.array([0, 0, 1.0]), centres=centres, phases=1,
                            series_number=3, size=8)
    assert _kinds_views(datasets) == [("other", "axial")]


def test_sax_slices_stored_as_separate_series_form_a_stack() -> None:
    heart = Heart.make(np.random.default_rng(4), jitter=0.12)
    study_uid = generate_uid()
    datasets = []
    for k in range(5):  # one series per breath-hold slice, as many vendors do
        datasets += stack_series(study_uid=study_uid, normal=heart.u, centres=[heart.centre + heart.u * 8 * k],
                                 phases=10, series_number=10 + k, size=16)
    datasets += stack_series(study_uid=study_uid, normal=heart.lax_normal("2ch"), centres=[heart.centre], phases=10,
                             series_number=3, size=16)
    study = load_study(datasets)
    assert [(s.kind, s.view) for s in study.series] == [("cine", "2ch")] + [("cine", "sax")] * 5
    exam = study.to_exam()
    assert exam.present["cine_sax"] and exam.present["cine_2ch"]
