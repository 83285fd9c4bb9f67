"""load_study: sources (folder, zip, bytes, Datasets), real Sunnybrook headers, sorting, enhanced MR."""

from __future__ import annotations

import copy
import io
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_builders import Heart, enhanced_mr, full_study, mr_image, orientation_for, pattern, stack_series, write_datasets
from pydicom.uid import generate_uid

from cmr.dicom import Study, load_study


def _signature(study: Study) -> list[tuple[object, ...]]:
    """What must be identical however the same study is delivered."""
    return [
        (s.series_instance_uid, s.kind, s.view, s.pixels.shape, float(s.pixels.sum()), s.positions.round(3).tolist(),
         np.nan_to_num(s.trigger_times).tolist(), s.pixel_spacing, s.slice_thickness)
        for s in study.series
    ]


# --- Sunnybrook ------------------------------------------------------------------------------------------


def test_sunnybrook_midslice_is_one_cine_sax_with_sorted_phases(midslice_dir: Path) -> None:
    study = load_study(midslice_dir)
    assert study.n_files == 20 and not study.skipped
    assert study.study_date is None  # "20120000" is not a date
    [s] = study.series
    assert (s.kind, s.view) == ("cine", "sax")
    assert s.pixels.shape == (1, 20, 256, 256) and s.pixels.dtype == np.float32
    times = s.phase_times
    assert np.all(np.diff(times) > 0) and times[0] == pytest.approx(10.0) and times[-1] == pytest.approx(886.0)
    assert s.pixel_spacing == pytest.approx((1.2891, 1.2891)) and s.slice_thickness == 8.0
    assert s.description == "" and s.manufacturer == "GE MEDICAL SYSTEMS" and s.model == "SIGNA HDx"
    assert s.field_strength == 1.5 and s.series_number == 5
    assert s.inversion_time is None  # GE writes InversionTime 0 for "no inversion"
    assert s.scanning_sequence == ("GR",) and s.image_type == ("ORIGINAL", "PRIMARY", "OTHER")
    assert s.cardiac_number_of_images == 20 and s.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4"


def test_sunnybrook_phase_order_follows_trigger_time_not_file_order(midslice_dir: Path) -> None:
    files = sorted(midslice_dir.glob("*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    expected = load_study(datasets).series[0]
    shuffled = datasets[:]
    random.Random(3).shuffle(shuffled)
    for i, ds in enumerate(shuffled):
        ds.InstanceNumber = i + 1  # misleading instance numbers
    got = load_study(shuffled).series[0]
    np.testing.assert_array_equal(got.pixels, expected.pixels)
    np.testing.assert_array_equal(got.trigger_times, expected.trigger_times)


def test_sunnybrook_matches_pydicom_pixels(midslice_dir: Path) -> None:
    s = load_study(midslice_dir).series[0]
    ds = pydicom.dcmread(midslice_dir / "101.dcm")  # trigger time 10: the first phase
    np.testing.assert_array_equal(s.pixels[0, 0], ds.pixel_array.astype(np.float32))


def test_sunnybrook_localizers_split_into_three_planes(localizer_dir: Path) -> None:
    study = load_study(localizer_dir)
    assert [(s.kind, s.view, s.n_slices, s.n_phases) for s in study.series] == [
        ("localizer", "axial", 5, 1), ("localizer", "sagittal", 5, 1), ("localizer", "coronal", 5, 1),
    ]
    assert len({s.series_instance_uid for s in study.series}) == 1
    assert len({s.key for s in study.series}) == 3
    sagittal = study.series[1]
    # SliceLocation disagrees with ImagePositionPatient; slices follow the normal with the real 18 mm spacing.
    assert sagittal.spacing_between_slices == pytest.approx(18.0)
    assert np.all(np.diff(sagittal.slice_offsets) > 0)


def test_sunnybrook_midslice_plus_localizers_of_same_study(midslice_dir: Path, localizer_dir: Path, tmp_path: Path) -> None:
    study_uid = pydicom.dcmread(midslice_dir / "101.dcm", stop_before_pixels=True).StudyInstanceUID
    shutil.copytree(midslice_dir, tmp_path / "cine")
    (tmp_path / "scouts").mkdir()
    for f in localizer_dir.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = study_uid  # the two samples are different patients; pretend they are one
        ds.save_as(tmp_path / "scouts" / f.name)
    study = load_study(tmp_path)
    assert sorted(s.kind for s in study.series) == ["cine", "localizer", "localizer", "localizer"]
    exam = study.to_exam()
    cine = study.of_kind("cine")[0]
    assert exam.sources["cine_sax"] == [cine.key]
    used = {k for keys in exam.sources.values() for k in keys}
    assert used == {cine.key}  # localizers never reach the exam
    assert exam.mask.sum() == 16


# --- sources ---------------------------------------------------------------------------------------------


def test_zip_path_and_zip_bytes_equal_folder(midslice_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(midslice_dir.glob("*.dcm")):
            zf.write(f, f"nested/dir/{f.name}")
        zf.writestr("nested/__MACOSX/._101.dcm", b"\x00\x05\x16\x07junk")
    folder = load_study(midslice_dir)
    from_zip = load_study(archive)
    from_bytes = load_study(archive.read_bytes())
    assert _signature(from_zip) == _signature(folder) == _signature(from_bytes)
    assert [s.name for s in from_zip.skipped] == ["nested/__MACOSX/._101.dcm"]
    assert from_zip.n_files == 21


def test_single_file_and_file_bytes(midslice_dir: Path) -> None:
    one = load_study(midslice_dir / "101.dcm")
    assert one.series[0].pixels.shape == (1, 1, 256, 256)
    assert _signature(load_study((midslice_dir / "101.dcm").read_bytes())) == _signature(one)


def test_in_memory_datasets_are_not_modified() -> None:
    datasets = full_study(views=("4ch",), sax_slices=3, phases=8, lge=False, localizer=False)
    for ds in datasets:
        del ds.file_meta  # as some callers build them
    before = [copy.deepcopy(ds) for ds in datasets]
    study = load_study(datasets)
    assert [s.view for s in study.series] == ["4ch", "sax"]
    assert all(a == b and not hasattr(b, "file_meta") for a, b in zip(before, datasets))


def test_folder_and_datasets_agree(tmp_path: Path) -> None:
    datasets = full_study(sax_slices=3, phases=8, size=8)
    write_datasets(datasets, tmp_path / "study")
    assert _signature(load_study(tmp_path / "study")) == _signature(load_study(datasets))


# --- stacking --------------------------------------------------------------------------------------------


def test_slices_sorted_along_normal_despite_shuffled_files_and_misleading_slice_location() -> None:
    heart = Heart.make()
    centres = [heart.centre + heart.u * 10.0 * k for k in range(5)]
    datasets = stack_series(study_uid=generate_uid(), normal=heart.u, centres=centres, phases=10, series_number=3,
                            slice_location="reversed")
    random.Random(0).shuffle(datasets)
    [s] = load_study(datasets).series
    offsets = s.slice_offsets
    assert np.all(np.diff(offsets) > 0)
    assert s.spacing_between_slices == pytest.approx(10.0, abs=1e-3)
    # Slice k of the builder has value 200 + 100k on its square; sorting along the normal (which points like
    # heart.u here or opposite) gives k ascending or descending, never shuffled.
    centre_values = s.pixels[:, 0, 12, 12]
    steps = np.diff(centre_values)
    assert np.all(steps == 100) or np.all(steps == -100)
    np.testing.assert_array_equal(np.diff(s.pixels[0, :, 12, 12]), 3)  # phases in trigger order


def test_uneven_phase_counts_are_resampled_with_a_warning() -> None:
    heart = Heart.make()
    datasets = stack_series(study_uid=generate_uid(), normal=heart.u,
                            centres=[heart.centre + heart.u * 8.0 * k for k in range(3)], phases=10, series_number=2)
    datasets.pop(3)  # slice 0 loses one phase
    study = load_study(datasets)
    [s] = study.series
    assert s.pixels.shape[:2] == (3, 10)
    assert study.warnings and "resampled to 10 phases" in study.warnings[0]


def test_rescale_slope_and_intercept_are_applied() -> None:
    ds = mr_image(pattern(8, 8, 100), study_uid=generate_uid(), series_uid=generate_uid(),
                  iop=orientation_for(np.array([0.5, -0.5, -0.7])), ipp=[0, 0, 0], slope=2.5, intercept=-40.0)
    s = load_study([ds]).series[0]
    assert s.pixels[0, 0, 4, 4] == pytest.approx(100 * 2.5 - 40) and s.pixels[0, 0, 0, 0] == pytest.approx(10 * 2.5 - 40)


# --- enhanced MR -----------------------------------------------------------------------------------------


def _same_content_two_ways(per_frame_geometry: bool) -> tuple[Study, Study]:
    """One cine stack (3 slices x 8 phases) as 24 single-frame files and as one enhanced file."""
    rng = np.random.default_rng(1)
    heart = Heart.make()
    study_uid, series_uid = generate_uid(), generate_uid()
    iop = orientation_for(heart.u)
    normal = np.cross(iop[:3], iop[3:])
    frames, positions, times, singles = [], [], [], []
    order = rng.permutation(24)  # enhanced frames stored in scrambled order: the loader must sort them
    for idx in order:
        k, f = divmod(int(idx), 8)
        img = rng.integers(0, 4000, (12, 16)).astype(np.uint16)
        ipp = heart.centre + normal * 8.0 * k
        t = 40.0 * f
        frames.append(img)
        positions.append(ipp)
        times.append(t)
        singles.append(mr_image(img, study_uid=study_uid, series_uid=series_uid, iop=iop, ipp=ipp, spacing=(1.5, 1.25),
                                thickness=6.0, trigger_time=t, instance=int(idx) + 1, slope=0.5, intercept=3.0,
                                cardiac_images=8))
    enhanced = enhanced_mr(np.stack(frames), study_uid=study_uid, series_uid=series_uid, iop=iop, positions=positions,
                           trigger_times=times, spacing=(1.5, 1.25), thickness=6.0, slope=0.5, intercept=3.0,
                           per_frame_geometry=per_frame_geometry, temporal_indices=[int(i) % 8 + 1 for i in order],
                           in_stack=[int(i) // 8 + 1 for i in order])
    return load_study(singles), load_study([enhanced])


@pytest.mark.parametrize("per_frame_geometry", [False, True])
def test_enhanced_multiframe_equals_single_frame(per_frame_geometry: bool) -> None:
    single, enhanced = _same_content_two_ways(per_frame_geometry)
    [a], [b] = single.series, enhanced.series
    assert b.is_enhanced and not a.is_enhanced
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_allclose(a.positions, b.positions)
    np.testing.assert_allclose(a.orientation, b.orientation)
    np.testing.assert_array_equal(a.trigger_times, b.trigger_times)
    assert a.pixel_spacing == b.pixel_spacing == (1.5, 1.25)
    assert a.slice_thickness == b.slice_thickness == 6.0
    assert a.distinct_phases == b.distinct_phases == 8
    assert (a.kind, a.view) == (b.kind, b.view) == ("cine", "sax")
    assert b.pixels.min() >= 3.0  # rescale from PixelValueTransformationSequence applied


def test_enhanced_inversion_recovery_from_mr_modifier_is_lge() -> None:
    datasets = full_study(enhanced=True, views=(), sax_slices=4, localizer=False)
    study = load_study(datasets)
    lge = study.of_kind("lge")
    assert len(lge) == 1 and lge[0].inversion_time == 300.0 and lge[0].scanning_sequence == ("IR",)


def test_enhanced_file_round_trips_through_disk(tmp_path: Path) -> None:
    _, enhanced = _same_content_two_ways(False)
    datasets = full_study(enhanced=True, sax_slices=3, phases=8, size=8)
    write_datasets(datasets, tmp_path)
    from_disk = load_study(tmp_path)
    assert _signature(from_disk) == _signature(load_study(datasets))
    assert enhanced.series[0].pixels.shape == (3, 8, 12, 16)


def test_zip_of_enhanced_study_in_memory() -> None:
    buf = io.BytesIO()
    datasets = full_study(enhanced=True, sax_slices=3, phases=8)
    with zipfile.ZipFile(buf, "w") as zf:
        for i, ds in enumerate(datasets):
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            zf.writestr(f"s/{i}.dcm", out.getvalue())
    assert _signature(load_study(buf.getvalue())) == _signature(load_study(datasets))


def test_duplicate_files_are_read_once(midslice_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(midslice_dir, tmp_path / "a")
    shutil.copytree(midslice_dir, tmp_path / "copy_of_a")
    study = load_study(tmp_path)
    assert study.series[0].n_phases == 20 and study.n_files == 40
    assert len(study.warnings) == 20 and "duplicate" in study.warnings[0]


def test_small_per_phase_position_drift_stays_one_slice() -> None:
    heart = Heart.make()
    datasets = stack_series(study_uid=generate_uid(), normal=heart.u,
                            centres=[heart.centre + heart.u * 8.0 * k for k in range(3)], phases=10, series_number=2)
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    for i, ds in enumerate(datasets):
        ds.ImagePositionPatient = [float(x) for x in np.asarray(ds.ImagePositionPatient, float) + normal * 0.3 * (i % 3)]
    [s] = load_study(datasets).series
    assert s.pixels.shape[:2] == (3, 10)
