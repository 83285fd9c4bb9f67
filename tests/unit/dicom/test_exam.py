"""ExamSpec and exam tensor assembly; the pixel helpers it relies on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from dicom_builders import full_study

from cmr.dicom import DEFAULT_SLOTS, ExamSlot, ExamSpec, NoCineError, load_study
from cmr.dicom import imaging
from cmr.dicom.classify import LongAxis
from cmr.dicom.exam import sax_stack, slot_sources


def test_default_spec_mirrors_one_video_per_exam() -> None:
    spec = ExamSpec()
    assert (spec.image_size, spec.fov_mm) == (64, 280.0)
    assert [(s.name, s.sequence, s.view, s.frames, s.slices) for s in spec.slots] == [
        ("cine_sax", "cine", "sax", 16, 1), ("cine_4ch", "cine", "4ch", 16, 1), ("cine_2ch", "cine", "2ch", 8, 1),
        ("cine_3ch", "cine", "3ch", 8, 1), ("lge_sax", "lge", "sax", 8, 1), ("lge_lax", "lge", "lax", 3, 1),
    ]
    assert spec.length == 59 and spec.slots == DEFAULT_SLOTS
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image_size = 32  # type: ignore[misc]


def test_spec_round_trips_through_plain_data() -> None:
    d = {"image_size": 32, "fov_mm": 300,
         "slots": [{"name": "sax3", "sequence": "cine", "view": "sax", "frames": 4, "slices": 3},
                   {"name": "lge", "sequence": "lge", "view": "sax", "frames": 2}]}
    spec = ExamSpec.from_dict(d)
    assert spec.length == 14 and spec.slots[1] == ExamSlot("lge", "lge", "sax", 2, 1)
    assert ExamSpec.from_dict(spec.to_dict()) == spec
    assert ExamSpec.from_dict({}) == ExamSpec()


@pytest.mark.parametrize(
    "bad",
    [{"image_size": 4}, {"fov_mm": 0}, {"colour": True},
     {"slots": [{"name": "a", "sequence": "t2", "view": "sax", "frames": 1}]},
     {"slots": [{"name": "a", "sequence": "cine", "view": "axial", "frames": 1}]},
     {"slots": [{"name": "a", "sequence": "cine", "view": "sax", "frames": 0}]},
     {"slots": [{"name": "a", "sequence": "cine", "view": "sax", "frames": 1}] * 2}],
)
def test_invalid_spec(bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ExamSpec.from_dict(bad)


def test_sunnybrook_exam(midslice_dir: Path) -> None:
    study = load_study(midslice_dir)
    exam = study.to_exam()
    assert exam.pixels.shape == (59, 64, 64) and exam.pixels.dtype == np.float32
    assert exam.mask.dtype == bool and exam.slot_index.dtype == np.int16 and exam.frame_index.dtype == np.int16
    assert exam.mask[:16].all() and not exam.mask[16:].any()
    assert exam.present == {"cine_sax": True, "cine_4ch": False, "cine_2ch": False, "cine_3ch": False,
                            "lge_sax": False, "lge_lax": False}
    assert exam.missing == ["cine_4ch", "cine_2ch", "cine_3ch", "lge_sax", "lge_lax"]
    assert exam.slot_index.tolist() == [0] * 16 + [1] * 16 + [2] * 8 + [3] * 8 + [4] * 8 + [5] * 3
    assert exam.frame_index[:18].tolist() == list(range(16)) + [0, 1]
    assert 0.0 <= exam.pixels.min() and exam.pixels.max() <= 1.0 and exam.pixels[:16].mean() > 0.05
    assert not exam.pixels[16:].any()
    # 256 px x 1.29 mm = 330 mm > 280 mm FOV: the image fills the grid, so the corners hold tissue/noise.
    assert exam.study.study_date is None and exam.study.manufacturer == "GE MEDICAL SYSTEMS"
    assert exam.study.field_strength == 1.5 and exam.study.n_files == 20 and exam.study.skipped == ()
    [info] = exam.series
    assert (info.kind, info.view, info.slices, info.phases, info.rows, info.cols) == ("cine", "sax", 1, 20, 256, 256)
    assert info.description == "" and info.scanner == "GE MEDICAL SYSTEMS SIGNA HDx 1.5T"
    # Phase 0 of the exam is phase 0 of the series (20 -> 16 resampling starts at the trigger).
    first = imaging.resample_to_grid(imaging.apply_window(study.series[0].pixels[0, :1],
                                                          imaging.robust_window(study.series[0].pixels)),
                                     study.series[0].pixel_spacing, 64, 280.0)
    np.testing.assert_allclose(exam.pixels[0], first[0], atol=1e-6)


def test_full_study_fills_every_slot_from_the_right_series() -> None:
    study = load_study(full_study(sax_slices=10, phases=20, size=24))
    exam = study.to_exam(ExamSpec(image_size=32))
    assert exam.missing == [] and exam.mask.all()
    by_key = {s.key: s for s in study.series}
    views = {name: [(by_key[k].kind, by_key[k].view) for k in keys] for name, keys in exam.sources.items()}
    assert views == {
        "cine_sax": [("cine", "sax")], "cine_4ch": [("cine", "4ch")], "cine_2ch": [("cine", "2ch")],
        "cine_3ch": [("cine", "3ch")], "lge_sax": [("lge", "sax")],
        "lge_lax": [("lge", "4ch"), ("lge", "2ch"), ("lge", "3ch")],
    }
    assert slot_sources(study) == exam.sources


def test_lge_sax_runs_from_base_to_apex() -> None:
    # Builder slice k is 8k mm from the base towards the apex and has value 200 + 100k on its square.
    study = load_study(full_study(sax_slices=10, phases=8, size=24))
    refs = sax_stack(study, "lge")
    lge = study.of_kind("lge", "sax")[0]
    values = [float(s.pixels[i, 0, 12, 12]) for s, i in refs]
    assert values == [200.0 + 100 * k for k in range(10)]
    assert all(s is lge for s, _ in refs)
    exam = study.to_exam(ExamSpec(image_size=32, fov_mm=60.0))
    frames = exam.pixels[exam.slot_index == 4]
    centre = frames[:, 16, 16]
    assert np.all(np.diff(centre) >= 0) and centre[-1] > centre[0]  # brighter towards the apex, as built


def test_cine_sax_slices_pick_base_mid_apex() -> None:
    study = load_study(full_study(sax_slices=9, phases=10, size=24, lge=False))
    spec = ExamSpec(image_size=16, slots=(ExamSlot("sax3", "cine", "sax", frames=5, slices=3),))
    exam = study.to_exam(spec)
    assert exam.pixels.shape == (15, 16, 16) and exam.mask.all()
    assert exam.frame_index.tolist() == list(range(15))
    centre = exam.pixels[:, 8, 8].reshape(3, 5)
    assert centre[0, 0] < centre[1, 0] < centre[2, 0]  # base, mid, apex slices (values rise towards the apex)
    assert np.all(np.diff(centre, axis=1) >= 0)  # phases in trigger order (values rise by phase)


def test_missing_views_are_reported_not_errors() -> None:
    study = load_study(full_study(views=("4ch",), lge=False, size=16, phases=8))
    exam = study.to_exam()
    assert exam.missing == ["cine_2ch", "cine_3ch", "lge_sax", "lge_lax"]
    assert exam.mask.sum() == 32


def test_partial_lge_lax_keeps_fixed_positions() -> None:
    study = load_study(full_study(views=("2ch",), size=16, phases=8))
    exam = study.to_exam()
    lax = exam.mask[exam.slot_index == 5]
    assert lax.tolist() == [False, True, False] and exam.present["lge_lax"]


def test_no_cine_raises() -> None:
    study = load_study(full_study(views=("4ch",), sax_slices=4, size=16, phases=8))
    for s in study.series:
        if s.kind == "cine":
            s.kind = "other"
    with pytest.raises(NoCineError, match="no cine series in the study"):
        study.to_exam()


# --- pixel helpers ---------------------------------------------------------------------------------------


def test_resample_to_grid_is_physical_and_centred() -> None:
    img = np.zeros((100, 60), np.float32)
    img[40:60, 20:40] = 1.0  # 20 x 20 px at 0.5 mm = 10 mm square at the centre
    out = imaging.resample_to_grid(img, (0.5, 0.5), size=40, fov_mm=40.0)  # 1 mm output pixels
    assert out.shape == (1, 40, 40)
    assert out[0, 20, 20] == pytest.approx(1.0, abs=0.05)
    assert (out[0] > 0.5).sum() == pytest.approx(100, abs=12)  # ~10 x 10 mm
    # The image is 30 mm wide: columns beyond +-15 mm from the centre are padding.
    assert not out[0, :, :4].any() and not out[0, :, 36:].any()


def test_resample_phases_cyclic_linear() -> None:
    p = np.arange(4, dtype=np.float32)[:, None]
    np.testing.assert_allclose(imaging.resample_phases(p, 8)[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5])
    np.testing.assert_allclose(imaging.resample_phases(p, 2)[:, 0], [0, 2])
    np.testing.assert_allclose(imaging.resample_phases(p[:1], 3)[:, 0], [0, 0, 0])


def test_window_and_even_indices() -> None:
    x = np.linspace(0, 100, 1001, dtype=np.float32)
    lo, hi = imaging.robust_window(x)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(99.5)
    w = imaging.apply_window(x, (lo, hi))
    assert w.min() == 0.0 and w.max() == 1.0
    assert not imaging.apply_window(x, (5.0, 5.0)).any()
    assert imaging.even_indices(9, 1).tolist() == [4]
    assert imaging.even_indices(10, 1).tolist() == [4]
    assert imaging.even_indices(9, 3).tolist() == [1, 4, 7]
    assert imaging.even_indices(12, 8).tolist() == [0, 2, 3, 5, 6, 8, 9, 11]
    assert imaging.even_indices(8, 8).tolist() == list(range(8))
    assert imaging.even_indices(2, 4).tolist() == [0, 0, 1, 1]


def test_base_from_blood_pool_when_the_long_axis_cannot_tell() -> None:
    study = load_study(full_study(sax_slices=5, phases=8, size=32, lge=False, views=(), localizer=False))
    [s] = study.series
    rr, cc = np.ogrid[:32, :32]
    r = np.hypot(rr - 16, cc - 16)
    for k in range(5):  # the bright blood pool shrinks from the last slice (base) to the first (apex)
        s.pixels[k] = np.where(r < 2.0 + 2.5 * k, 1000.0, 50.0)[None]
    perpendicular = np.cross(s.normal, [1.0, 0.0, 0.0])
    axis = LongAxis(perpendicular / np.linalg.norm(perpendicular), "prior")
    refs = sax_stack(study, "cine", axis)
    assert [i for _, i in refs] == [4, 3, 2, 1, 0]
