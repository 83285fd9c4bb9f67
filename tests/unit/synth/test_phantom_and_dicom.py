"""The synthetic studies: determinism, geometry, DICOM round trip, and image-label consistency measured from
the rendered pixels (not from the generator's own numbers)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cmr.synth.acquisition import cine_contrast, form_images, lge_contrast, plan_exam
from cmr.synth.generate import StudyRequest, generate_dataset, generate_study
from cmr.synth.phantom import HeartPhantom
from cmr.synth.scanners import HELD_OUT_STYLE, STYLES
from cmr.synth.truth import sample_truth
from cmr import labels as L


def _truth(disease: str, seed: int = 0, **changes: object):
    rng = np.random.default_rng(seed)
    while True:
        t = sample_truth(rng)
        if t.disease == disease:
            return replace(t, **changes) if changes else t


def _series_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.dcm")):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synth")
    records = generate_dataset(out, studies=3, seed=11, workers=2, progress=False)
    return out, records


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path, small_dataset) -> None:
    out, records = small_dataset
    again = generate_dataset(tmp_path, studies=3, seed=11, workers=1, progress=False)
    assert [r["study_instance_uid"] for r in again] == [r["study_instance_uid"] for r in records]
    assert (tmp_path / "reports.jsonl").read_text() == (out / "reports.jsonl").read_text()
    for r in records:
        assert _series_hash(out / r["folder"]) == _series_hash(tmp_path / r["folder"])


def test_different_seed_differs(tmp_path: Path, small_dataset) -> None:
    _, records = small_dataset
    other = generate_dataset(tmp_path, studies=1, seed=12, workers=1, progress=False)
    assert other[0]["study_instance_uid"] != records[0]["study_instance_uid"]


def test_reports_jsonl_has_the_stable_keys(small_dataset) -> None:
    out, _ = small_dataset
    lines = (out / "reports.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        rec = json.loads(line)
        for key in ("study_instance_uid", "folder", "impression", "scanner", "labels"):
            assert key in rec
        for finding in L.FINDINGS:
            assert isinstance(rec["labels"][finding], bool)
        assert rec["labels"]["disease"] in L.DISEASES
        assert 5 < rec["labels"]["lvef"] < 90
        assert (out / rec["folder"]).is_dir()
        assert rec["impression"].strip()


def test_resume_keeps_finished_studies(tmp_path: Path) -> None:
    req = StudyRequest(tmp_path, 5, 0, "ge_signa_1.5T", "train")
    first = generate_study(req)
    marker = tmp_path / first["folder"] / "series_002" / "IM00001.dcm"
    mtime = marker.stat().st_mtime_ns
    assert generate_study(req) == first
    assert marker.stat().st_mtime_ns == mtime  # not rewritten


def test_dicom_headers_and_geometry(small_dataset) -> None:
    out, records = small_dataset
    for rec in records:
        style = STYLES[rec["scanner"]]
        files = sorted((out / rec["folder"]).rglob("*.dcm"))
        assert files
        distractors = {d["series_number"] for d in rec["distractors"]}  # checked in tests/unit/dicom/test_distractors.py
        seen_series: dict[str, list[pydicom.Dataset]] = {}
        for f in files:
            ds = pydicom.dcmread(f)
            if int(ds.SeriesNumber) in distractors:
                continue
            assert ds.StudyInstanceUID == rec["study_instance_uid"]
            assert ds.Manufacturer == style.manufacturer
            assert float(ds.MagneticFieldStrength) == style.field_strength
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            seen_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
        assert len(seen_series) == 11  # 3 localizer planes, 3 cine LAX, cine SAX, LGE SAX, 3 LGE LAX
        for datasets in seen_series.values():
            ds = datasets[0]
            if ds.SOPClassUID.endswith(".4.1"):  # enhanced multi-frame: geometry in functional groups
                iop = np.array(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float)
                positions = [np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
                             for fg in ds.PerFrameFunctionalGroupsSequence]
                triggers = [float(fg.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime)
                            for fg in ds.PerFrameFunctionalGroupsSequence]
                assert ds.pixel_array.shape[0] == int(ds.NumberOfFrames)
            else:
                iop = np.array(ds.ImageOrientationPatient, float)
                positions = [np.array(d.ImagePositionPatient, float) for d in datasets]
                triggers = [float(getattr(d, "TriggerTime", 0.0)) for d in datasets]
            row, col = iop[:3], iop[3:]
            assert abs(np.linalg.norm(row) - 1) < 1e-4 and abs(np.linalg.norm(col) - 1) < 1e-4
            assert abs(row @ col) < 1e-4
            normal = np.cross(row, col)
            # All images of a series lie in parallel planes: offsets between positions are along the normal.
            offsets = np.array(positions) - positions[0]
            in_plane = offsets - np.outer(offsets @ normal, normal)
            assert np.abs(in_plane).max() < 12.0  # only breath-hold misregistration, a few mm
            if len(set(triggers)) > 1:
                assert max(triggers) < 60000.0 / rec["truth"]["heart_rate"]
                assert len(set(triggers)) in range(20, 31)


def test_sax_stack_has_at_least_eight_slices(small_dataset) -> None:
    out, records = small_dataset
    rec = records[0]
    # Find the cine SAX series: the one with the most distinct positions and many phases.
    by_series: dict[str, list[pydicom.Dataset]] = {}
    for f in (out / rec["folder"]).rglob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    best = max(by_series.values(), key=len)
    if best[0].SOPClassUID.endswith(".4.1"):
        n_slices = len({fg.FrameContentSequence[0].InStackPositionNumber for fg in best[0].PerFrameFunctionalGroupsSequence})
        thickness = float(best[0].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness)
    else:
        normal = np.cross(np.array(best[0].ImageOrientationPatient[:3], float),
                          np.array(best[0].ImageOrientationPatient[3:], float))
        n_slices = len({round(float(np.array(d.ImagePositionPatient, float) @ normal), 1) for d in best})
        thickness = float(best[0].SliceThickness)
    assert n_slices >= 8
    assert thickness > 0


def test_scanner_styles_cover_vendors_fields_and_one_held_out() -> None:
    assert len(STYLES) >= 4
    assert len({(s.manufacturer, s.field_strength) for s in STYLES.values()}) >= 4
    assert sum(s.held_out for s in STYLES.values()) == 1
    assert STYLES[HELD_OUT_STYLE].held_out
    assert any(s.multiframe for s in STYLES.values()) and any(not s.multiframe for s in STYLES.values())
    assert any(s.banding > 0 for s in STYLES.values())


# ------------------------------------------------------------------ image-label consistency from pixels
def _render_mid_sax(truth, style_name: str = "siemens_aera_1.5T", sequence: str = "cine"):
    rng = np.random.default_rng(3)
    style = replace(STYLES[style_name], noise=0.0, bias=0.0, banding=0.0, misregistration_mm=0.0)
    ph = HeartPhantom(truth, rng)
    plans = plan_exam(ph, style, rng)
    slot = "cine_sax" if sequence == "cine" else "lge_sax"
    plan = next(p for p in plans if p.slot == slot)
    n = len(plan.planes)
    plan.planes = [plan.planes[n // 2]]
    if sequence == "cine":
        es = ph.cycle.t_es
        plan.trigger_fracs = [0.0, es]
        contrast = cine_contrast(style, rng)
    else:
        contrast = lge_contrast(ph, rng, 0.0)
    images = form_images(ph, plan, style, rng, contrast)
    return images[0], plan, contrast, ph


def _central_component_area(img: np.ndarray, threshold: float) -> int:
    """Area of the bright connected region containing the image centre: the LV blood pool, because the
    short-axis planes are centred on the LV long axis (misregistration is switched off here)."""
    from scipy import ndimage

    lab, _ = ndimage.label(img > threshold)
    centre_label = lab[(img.shape[0] - 1) // 2, (img.shape[1] - 1) // 2]
    assert centre_label > 0, "the LV centre is not blood"
    return int((lab == centre_label).sum())


@pytest.mark.parametrize("lvef", [25.0, 45.0, 65.0])
def test_mid_sax_blood_pool_area_change_tracks_lvef(lvef: float) -> None:
    truth = _truth("normal", lvef=lvef, regional_wma="none")
    frames, plan, contrast, _ = _render_mid_sax(truth)
    threshold = 0.5 * (contrast["blood"] + contrast["myo"]) * 1200  # between blood and myocardium signal
    ed = _central_component_area(frames[0].astype(float), threshold)
    es = _central_component_area(frames[1].astype(float), threshold)
    fac = 1 - es / ed  # fractional area change of the mid-cavity
    # With long-axis shortening, the area change is a bit below the volume ejection fraction.
    assert 0.55 * lvef / 100 < fac < 1.05 * lvef / 100, (lvef, fac)


def test_area_change_is_monotonic_in_lvef() -> None:
    facs = []
    for lvef in (20.0, 40.0, 60.0, 72.0):
        frames, _, contrast, _ = _render_mid_sax(_truth("normal", lvef=lvef))
        thr = 0.5 * (contrast["blood"] + contrast["myo"]) * 1200
        facs.append(1 - _central_component_area(frames[1].astype(float), thr) / _central_component_area(frames[0].astype(float), thr))
    assert facs == sorted(facs)


def _myocardium_bright_fraction(truth) -> float:
    img, plan, contrast, ph = _render_mid_sax(truth, sequence="lge")
    img = img[0].astype(float) / 1200
    rows, cols = plan.matrix
    dr, dc = plan.pixel_spacing
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    pl = plan.planes[0]
    pts = plan.image_position(pl)[None] + (jj.reshape(-1, 1) * dc) * pl.row_dir + (ii.reshape(-1, 1) * dr) * pl.col_dir
    x, y, h = ph.to_heart(pts)
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    delta = float(ph.cycle.delta(0.72)) * ph.lv_delta_max
    r_endo, r_epi, _, _ = ph._lv_surfaces(phi, np.clip(h, 0, None), delta)
    # Myocardium well inside the wall (away from partial-volume edges).
    myo = (r > r_endo + 1.5) & (r < r_epi - 1.5)
    vals = img.reshape(-1)[myo]
    return float((vals > 0.5 * (contrast["scar"] + contrast["myo"])).mean())


def test_lge_bright_myocardium_only_when_labelled() -> None:
    without = _truth("normal", lge_pattern="none", lge_territory="none", lge_extent=0.0)
    with_scar = _truth("ischemic", lge_pattern="transmural", lge_territory="LAD", lge_extent=0.8, regional_wma="LAD")
    assert _myocardium_bright_fraction(without) < 0.01
    assert _myocardium_bright_fraction(with_scar) > 0.1


def test_rendered_volumes_match_truth() -> None:
    rng = np.random.default_rng(21)
    for _ in range(8):
        t = sample_truth(rng)
        ph = HeartPhantom(t, rng)
        edv, esv = ph.lv_volumes_ml()
        assert abs(edv - t.lvedvi * t.bsa) / (t.lvedvi * t.bsa) < 0.01
        assert abs(100 * (1 - esv / edv) - t.lvef) < 0.5
        redv, resv = ph.rv_volumes_ml()
        assert abs(redv - t.rvedvi * t.bsa) / (t.rvedvi * t.bsa) < 0.05
        assert abs(100 * (1 - resv / redv) - t.rvef) < 4.0


def test_long_axis_shortens_in_systole() -> None:
    ph = HeartPhantom(_truth("normal"), np.random.default_rng(0))
    assert ph.lv_length(ph.cycle.t_es) < 0.93 * ph.lv_length(0.0)


def test_disease_prevalence_keeps_rare_diseases_rare() -> None:
    rng = np.random.default_rng(0)
    diseases = [sample_truth(rng).disease for _ in range(4000)]
    share = {d: diseases.count(d) / len(diseases) for d in L.DISEASES}
    assert 0.01 < share["amyloidosis"] < 0.06  # rare stays rare
    assert share["normal"] > 0.4
    for d in L.DISEASES:
        assert share[d] > 0



def test_style_pools_keep_the_held_out_style_out_of_training() -> None:
    from cmr.synth.scanners import STYLE_POOLS, TRAINING_STYLES, style_pool

    assert HELD_OUT_STYLE not in style_pool("training")
    assert set(style_pool("training")) == set(TRAINING_STYLES) and len(TRAINING_STYLES) == len(STYLES) - 1
    assert style_pool("heldout") == (HELD_OUT_STYLE,)
    assert set(style_pool(None)) == set(STYLES) == set(STYLE_POOLS["all"])
    assert style_pool("ge_signa_1.5T") == ("ge_signa_1.5T",)
    with pytest.raises(ValueError, match="unknown scanner style"):
        style_pool("no_such_scanner")
