"""The real-data benchmark's parts on small synthetic inputs with known answers: neighbour group agreement and
its chance level, the probe, label derivation, patient listing and selection, the conversion cache (with a
stand-in converter), the synthetic-results match, the section hook and the markdown (cmr.eval.real,
cmr.realdata.acdc). No real data and no model needed."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cmr.config import Settings
from cmr.eval import real
from cmr.eval.real import (RealEvalContext, group_chance, knn_group_agreement, probe_auroc,
                           real_results_to_markdown, synthetic_reference)
from cmr.realdata.acdc import (LV_DYSFUNCTION_LVEF, TASKS, AcdcLayoutError, AcdcPatient, Converter,
                               RealDataMissingError, acdc_dir, derive_labels, list_patients, select_balanced)


# --- neighbour agreement ---------------------------------------------------------------------------------------
def _clusters(n_groups: int, per: int, spread: float = 0.01, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`per` points around each of `n_groups` orthogonal directions."""
    rng = np.random.default_rng(seed)
    centres = np.eye(n_groups, 8)
    x = np.concatenate([c + spread * rng.standard_normal((per, 8)) for c in centres])
    return x, [g for g in "ABCDEFGH"[:n_groups] for _ in range(per)]


def test_group_chance_is_the_mean_same_group_fraction_of_the_others() -> None:
    # A: (2-1)/4 for each of 2 exams, B: (3-1)/4 for each of 3 -> (0.5 + 1.5) / 5
    assert group_chance(["A", "A", "B", "B", "B"]) == pytest.approx(0.4)
    assert group_chance(["A", "B", "C"]) == 0.0
    assert group_chance(["A"]) is None
    # five groups of ten (ACDC): 9/49
    assert group_chance([g for g in "ABCDE" for _ in range(10)]) == pytest.approx(9 / 49)


def test_knn_agreement_of_tight_clusters() -> None:
    x, g = _clusters(3, 3)
    out = knn_group_agreement(x, g, ks=(1, 2, 5))
    assert out["k=1"] == {"k": 1, "agreement": 1.0}
    assert out["k=2"]["agreement"] == 1.0
    assert out["k=5"]["agreement"] == pytest.approx(2 / 5)  # only 2 others share the group
    assert out["chance"] == pytest.approx(2 / 8) and out["n"] == 9


def test_knn_leaves_the_exam_itself_out_and_caps_k() -> None:
    # every exam's nearest other exam is of the other group: pairs (0,1) and (2,3) are close, groups alternate
    x = np.array([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0], [-0.99, -0.14]])
    out = knn_group_agreement(x, ["A", "B", "A", "B"], ks=(1, 10))
    assert out["k=1"]["agreement"] == 0.0
    assert out["k=10"]["k"] == 3  # n - 1
    assert out["k=10"]["agreement"] == pytest.approx(1 / 3)  # of 3 others, 1 shares the group
    assert out["chance"] == pytest.approx(1 / 3)


def test_knn_is_scale_invariant_and_deterministic_on_ties() -> None:
    x, g = _clusters(2, 4, seed=1)
    assert knn_group_agreement(x, g) == knn_group_agreement(x * 7.5, g)
    same = np.ones((4, 3))  # all tied: the lower index wins, every run
    assert knn_group_agreement(same, ["A", "A", "B", "B"]) == knn_group_agreement(same, ["A", "A", "B", "B"])
    with pytest.raises(ValueError):
        knn_group_agreement(x, g[:-1])


# --- probe -------------------------------------------------------------------------------------------------------
def test_probe_separates_a_linearly_separable_task() -> None:
    rng = np.random.default_rng(0)
    y = np.array([True] * 10 + [False] * 40)
    x = rng.standard_normal((50, 16))
    x[y, 0] += 8.0
    out = probe_auroc(x, y, n_boot=200)
    assert out["auroc"] == pytest.approx(1.0)
    assert probe_auroc(x, ~y, n_boot=50)["auroc"] == pytest.approx(1.0)  # either direction is learnt
    assert out["folds"] == 5 and out["n_pos"] == 10 and out["n"] == 50 and out["C"] == real.PROBE_C
    assert out["ci"][0] <= out["auroc"] <= out["ci"][1]


def test_probe_on_noise_is_near_chance_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((60, 8)), np.arange(60) % 3 == 0
    a, b = probe_auroc(x, y, n_boot=100), probe_auroc(x, y, n_boot=100)
    assert a == b
    assert 0.2 < a["auroc"] < 0.8


def test_probe_reduces_folds_to_the_minority_and_refuses_a_single_positive() -> None:
    x = np.random.default_rng(3).standard_normal((10, 4))
    y = np.zeros(10, bool)
    y[[0, 5]] = True
    assert probe_auroc(x, y, n_boot=20)["folds"] == 2
    y1 = np.zeros(10, bool)
    y1[0] = True
    out = probe_auroc(x, y1)
    assert out["auroc"] is None and out["folds"] == 0 and "2 exams of each class" in out["reason"]
    assert probe_auroc(x, np.zeros(10, bool))["auroc"] is None


# --- labels, listing, selection ------------------------------------------------------------------------------
@pytest.mark.parametrize(("group", "lvef", "expected"), [
    ("DCM", 20.0, {"lv_dysfunction", "lv_dilation"}),
    ("HCM", 70.0, {"lv_hypertrophy"}),
    ("MINF", 35.0, {"lv_dysfunction"}),
    ("NOR", 60.0, {"normal"}),
    ("RV", 55.0, {"rv_dilation"}),
    ("RV", 44.9, {"rv_dilation", "lv_dysfunction"}),
    ("NOR", LV_DYSFUNCTION_LVEF, {"normal"}),  # 45 % itself is not < 45 %
    ("MINF", None, set()),
])
def test_derive_labels(group: str, lvef: float | None, expected: set[str]) -> None:
    labels = derive_labels(group, lvef)
    assert set(labels) == set(TASKS)
    assert {t for t, v in labels.items() if v} == expected


def _acdc_folder(root: Path, groups: dict[str, int], converter: str | None = None) -> Path:
    folder = root / "acdc"
    folder.mkdir(parents=True)
    rows, i = [], 1
    for g, n in groups.items():
        for _ in range(n):
            name = f"patient{i:03d}"
            img = np.full((2, 4, 5), i, np.uint16)
            np.savez(folder / f"{name}.npz", ed_image=img, es_image=img + 1, ed_mask=np.ones((2, 4, 5), np.uint8),
                     es_mask=np.zeros((2, 4, 5), np.uint8), es_frame=np.array(9))
            rows.append({"patient": name, "group": g, "lvef": 30.0 if g in ("DCM", "MINF") else 60.0})
            i += 1
    (folder / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    if converter is not None:
        (folder / "to_dicom.py").write_text(converter)
    tmpl = root / "sunnybrook/SCD0000301_SC-HF-I-4_midslice/dicom/101.dcm"
    tmpl.parent.mkdir(parents=True)
    tmpl.write_bytes(b"template")
    return folder


def test_list_patients_reads_labels_and_loads_arrays_lazily(tmp_path: Path) -> None:
    folder = _acdc_folder(tmp_path, {"DCM": 2, "NOR": 1})
    ps = list_patients(folder)
    assert [p.name for p in ps] == ["patient001", "patient002", "patient003"]  # sorted, whatever the file order
    p = ps[0]
    assert (p.group, p.lvef, p.task_labels["lv_dilation"]) == ("DCM", 30.0, True)
    assert "_arrays" not in p.__dict__  # nothing read yet
    assert p.ed_image.shape == (2, 4, 5) and int(p.es_image[0, 0, 0]) == 2 and p.es_frame == 9
    assert p.ed_mask.dtype == np.uint8 and int(p.es_mask.sum()) == 0


def test_missing_realdata_is_one_line_naming_the_path_and_variable(tmp_path: Path) -> None:
    with pytest.raises(RealDataMissingError) as err:
        acdc_dir(Settings(realdata_dir=tmp_path / "nowhere"))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "nowhere" / "acdc") in msg and "CMR_REALDATA_DIR" in msg
    assert isinstance(err.value, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AcdcLayoutError, match="labels.jsonl"):
        list_patients(tmp_path / "empty")


def test_realdata_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmr

    assert Settings().realdata_dir == Path(cmr.__file__).resolve().parents[1].parent / "shared" / "realdata"
    monkeypatch.setenv("CMR_REALDATA_DIR", str(tmp_path))
    assert Settings().realdata_dir == tmp_path


def test_expert_measurements_are_the_label_rows_numbers_under_the_segmenters_names() -> None:
    from cmr.quant.volumes import MEASUREMENT_FIELDS

    p = AcdcPatient("p1", "RV", {"lvef": 60.0, "rvef": 25.0, "lvedv_ml_assumed": 150.0, "rvedv_ml_assumed": 320.0,
                                 "myo_ml_assumed": 100.0}, Path("x"))
    m = p.expert_measurements
    assert set(m) <= set(MEASUREMENT_FIELDS)
    assert m["lvesv_ml"] == pytest.approx(60.0) and m["lvsv_ml"] == pytest.approx(90.0)
    assert m["rvesv_ml"] == pytest.approx(240.0) and m["lv_mass_g"] == pytest.approx(105.0)
    missing = AcdcPatient("p2", "NOR", {"lvef": 55.0}, Path("x")).expert_measurements
    assert missing["lvedv_ml"] is None and missing["lvesv_ml"] is None and missing["lv_mass_g"] is None


def test_select_balanced_takes_groups_round_robin() -> None:
    ps = [AcdcPatient(f"p{g}{i}", g, {}, Path("x")) for g in ("RV", "DCM", "NOR") for i in range(3)]
    picked = select_balanced(ps, 5)
    assert sorted(p.group for p in picked) == ["DCM", "DCM", "NOR", "NOR", "RV"]  # DCM, NOR, RV, DCM, NOR
    assert [p.name for p in picked] == sorted(p.name for p in picked)
    assert select_balanced(ps, None) == ps and select_balanced(ps, 99) == ps


# --- conversion cache -----------------------------------------------------------------------------------------
FAKE_CONVERTER = textwrap.dedent('''
    import argparse, pathlib, sys
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--src", type=pathlib.Path)
    ap.add_argument("--template", type=pathlib.Path)
    a = ap.parse_args()
    files = sorted(a.src.glob("patient*.npz"))
    assert len(files) == 1, files  # one patient per call
    if files[0].stem == "patient002":
        sys.exit("cannot convert this one")
    d = a.out / files[0].stem
    d.mkdir(parents=True)
    for i in range(3):
        (d / f"{i:04d}.dcm").write_bytes(a.template.read_bytes())
    print("wrote 1 studies")
''')


def test_conversion_is_cached_by_content_resumable_and_failures_are_reported(tmp_path: Path) -> None:
    folder = _acdc_folder(tmp_path / "real", {"DCM": 1, "HCM": 1, "NOR": 1}, FAKE_CONVERTER)
    settings = Settings(data_dir=tmp_path / "data", realdata_dir=tmp_path / "real")
    ps = list_patients(folder)
    conv = Converter.for_folder(folder, settings)
    assert conv.cache_root == tmp_path / "data" / "realdata" / "acdc"
    assert conv.template == tmp_path / "real" / "sunnybrook/SCD0000301_SC-HF-I-4_midslice/dicom/101.dcm"
    first = [conv.convert(p) for p in ps]
    assert [(c.cached, c.n_files, c.error is None) for c in first] == [(False, 3, True), (False, 0, False),
                                                                      (False, 3, True)]
    assert "cannot convert this one" in first[1].error and first[1].path is None
    assert sorted(f.name for f in first[0].path.iterdir()) == ["0000.dcm", "0001.dcm", "0002.dcm"]  # DICOM only
    again = [conv.convert(p) for p in ps]
    assert [c.cached for c in again] == [True, False, True]
    # an interrupted conversion (folder there, marker not) is redone; a changed npz is reconverted
    conv.marker(ps[2]).unlink()
    (conv.study_dir(ps[2]) / "0002.dcm").unlink()
    np.savez(ps[0].npz, ed_image=np.zeros((1, 2, 2), np.uint16))
    fresh = list_patients(folder)
    redo = [conv.convert(p) for p in fresh]
    assert [(c.cached, c.n_files) for c in redo] == [(False, 3), (False, 0), (False, 3)]
    assert not list(conv.cache_root.glob(".patient*"))  # no scratch folders left behind


def test_conversion_needs_the_folders_converter(tmp_path: Path) -> None:
    folder = _acdc_folder(tmp_path, {"NOR": 1})
    with pytest.raises(AcdcLayoutError, match="to_dicom.py"):
        Converter.for_folder(folder, Settings(data_dir=tmp_path / "d", realdata_dir=tmp_path))


# --- synthetic reference ----------------------------------------------------------------------------------------
def _results_file(tmp_path: Path, meta: dict[str, Any]) -> Path:
    zs = {k: {"auroc": 0.5 + 0.1 * i, "ci": [0.4, 0.9], "n_pos": 10}
          for i, k in enumerate(["lv_dysfunction", "lv_dilation", "lv_hypertrophy", "rv_dilation", "disease:normal"])}
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"primary": "m / heldout-style", "meta": meta, "entries": {
        "m / heldout-style": {"model": "m", "test_set": "heldout-style", "n_studies": 500, "zero_shot": zs}}}))
    return p


def test_synthetic_reference_matches_only_its_own_checkpoint(tmp_path: Path) -> None:
    train = {"epoch": 3, "step": 30, "val_loss": 1.5}
    path = _results_file(tmp_path, {"training": train})
    ok = synthetic_reference("m", train, "m@abc", path)
    assert ok["status"] == "matched" and ok["n_studies"] == 500
    assert ok["zero_shot"]["normal"]["auroc"] == pytest.approx(0.9)
    assert ok["zero_shot_mean"] == pytest.approx(0.7)
    assert synthetic_reference("m", {**train, "step": 31}, "m@abc", path)["status"] == real.NOT_EVALUATED
    assert synthetic_reference("m", {}, "m@abc", _results_file(tmp_path, {}))["status"] == real.NOT_EVALUATED
    assert synthetic_reference("other", train, "other@abc", path)["status"] == real.NOT_EVALUATED
    assert synthetic_reference("m", train, "m@abc", tmp_path / "absent.json")["status"] == real.NOT_EVALUATED
    versioned = _results_file(tmp_path, {"model_version": "m@abc", "training": {}})
    assert synthetic_reference("m", train, "m@abc", versioned)["status"] == "matched"
    assert synthetic_reference("m", train, "m@def", versioned)["status"] == real.NOT_EVALUATED


# --- sections and markdown ----------------------------------------------------------------------------------
def test_default_sections_skip_an_absent_provider_but_not_a_broken_one(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(real, "SECTION_PROVIDERS", {"quantification": "cmr.eval.no_such_module:section"})
    assert real.default_sections() == {}
    (tmp_path / "fake_quant_provider.py").write_text("def section(ctx):\n    return {'summary': {'n': 1}}\n")
    (tmp_path / "broken_quant_provider.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(real, "SECTION_PROVIDERS", {"quantification": "fake_quant_provider:section"})
    assert list(real.default_sections()) == ["quantification"]
    # a provider module without the callable (work in progress) is noted, not run and not fatal
    monkeypatch.setattr(real, "SECTION_PROVIDERS", {"quantification": "fake_quant_provider:not_there"})
    found, notes = real.discover_sections()
    assert found == {} and "defines no `not_there(ctx)`" in notes["quantification"]
    monkeypatch.setattr(real, "SECTION_PROVIDERS", {"quantification": "broken_quant_provider:section"})
    with pytest.raises(ModuleNotFoundError):
        real.default_sections()
    sys.modules.pop("fake_quant_provider", None)


def test_a_failing_section_is_recorded_not_raised(tmp_path: Path) -> None:
    ctx = RealEvalContext([], [], {}, {}, tmp_path, tmp_path / "c.pt", None, Settings(), None, False)

    def boom(_: RealEvalContext) -> dict[str, Any]:
        raise RuntimeError("no masks")

    out = real._run_section("quantification", boom, ctx)
    assert out["status"] == "error" and out["error"] == "RuntimeError: no masks"
    ok = real._run_section("quantification", lambda c: {"dice": np.float32(0.5), "markdown": "x"}, ctx)
    assert ok["status"] == "ok" and ok["dice"] == 0.5  # numpy scalars made JSON-able


def _fake_results(synthetic_status: str = "matched") -> dict[str, Any]:
    cell = {"auroc": 0.6, "ci": [0.4, 0.8], "n_pos": 2, "n": 4}
    model = {"label": "m", "n": 4, "zero_shot": {t: {"key": t, **cell} for t in TASKS}, "zero_shot_mean": 0.6,
             "zero_shot_scoring": "raw", "probe": {t: {**cell, "folds": 2} for t in TASKS}, "probe_mean": 0.6,
             "knn": {"k=1": {"k": 1, "agreement": 0.5}, "k=5": {"k": 3, "agreement": 0.25}, "chance": 0.333, "n": 4},
             "embedding_map": {"method": "PCA", "explained_variance": [0.5, 0.3],
                               "points": [[0, 0], [1, 0], [0, 1], [1, 1]]}}
    pats = [{"name": f"p{i}", "group": g, "lvef": 50.0, "labels": derive_labels(g, 50.0), "embedded": True}
            for i, g in enumerate(["DCM", "DCM", "NOR", "NOR"])]
    return {"format": real.FORMAT, "data": {"n_embedded": 4, "n_selected": 4, "n_listed": 50, "limit": 4,
                                            "groups": {"DCM": 2, "NOR": 2}, "folder": "/x"},
            "patients": pats, "embedded": [p["name"] for p in pats], "failures": {"p9": "load: no cine"},
            "models": {"checkpoint": model, "untrained": {**model, "label": "m untrained"}},
            "synthetic": {"status": synthetic_status, "zero_shot": {t: cell for t in TASKS}, "zero_shot_mean": 0.6,
                          "n_studies": 500, "why": "made with another checkpoint"},
            "sections": {"quantification": {"status": "not run", "note": "plugged in later"}},
            "meta": {"checkpoint": "c.pt", "timings_s": {"total": 1.0}}}


def test_markdown_has_one_table_every_row_and_the_section_hook(tmp_path: Path) -> None:
    md = real_results_to_markdown(_fake_results())
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert sum(line.startswith("| ---") for line in table) == 1  # ONE table
    assert len(table) == 2 + len(TASKS) + 5  # header, rule, 5 tasks, mean, probe, few-shot, kNN k=1, k=5
    assert "0.600 [0.40, 0.80]" in md and "chance 0.333" in md and "k = 3" in md
    assert "## Quantification" in md and "plugged in later" in md
    assert "evaluation only" in md and "p9: load: no cine" in md
    other = real_results_to_markdown(_fake_results("not evaluated for this checkpoint"))
    assert other.count(real.NOT_EVALUATED) >= len(TASKS) + 3
    res = _fake_results()
    res["sections"]["quantification"] = {"status": "ok", "markdown": "Dice 0.9", "summary": {"LVEF MAE": "4 %"},
                                         "figures": ["quant.png"]}
    md = real_results_to_markdown(res)
    assert "Dice 0.9" in md and "- LVEF MAE: 4 %" in md and "(quant.png)" in md
    paths = real.write_real_docs(res, tmp_path)
    assert [p.name for p in paths] == ["real-data.md", real.FIG_ZERO_SHOT, real.FIG_EMBEDDINGS]
    assert all(p.stat().st_size > 0 for p in paths)
    assert paths[1].read_bytes()[:4] == b"\x89PNG"


def test_mean_pairwise_cosine() -> None:
    assert real.mean_pairwise_cosine(np.ones((4, 3))) == pytest.approx(1.0)
    assert real.mean_pairwise_cosine(np.eye(3)) == pytest.approx(0.0)
    assert real.mean_pairwise_cosine(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-1.0)
    assert real.mean_pairwise_cosine(np.ones((1, 3))) is None


def test_markdown_shows_the_ablations_of_a_measuring_model_as_their_own_columns(tmp_path: Path) -> None:
    res = _fake_results()
    ablation = {**res["models"]["checkpoint"], "label": "m without its measurement tokens", "probe_mean": 0.512}
    res["models"]["checkpoint_pixels_only"] = ablation
    md = real_results_to_markdown(res)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert "m without its measurement tokens on ACDC" in table[0]
    assert all(line.count("|") == 6 for line in table)  # label + 4 columns, every row
    assert "0.512" in next(line for line in table if line.startswith("| Probe mean"))
    assert "checkpoint / pixels only / untrained" in md
    real.write_real_docs(res, tmp_path)  # the figures still draw with three models
    # Each further ablation adds its own column, after the ones before it.
    for pipes, (role, label, probe, roles) in enumerate((
            ("checkpoint_numbers_only", "m from its measurement tokens alone", 0.877,
             "checkpoint / pixels only / numbers only / untrained"),
            ("checkpoint_expert_numbers", "m given the expert masks' numbers", 0.966,
             "checkpoint / pixels only / numbers only / expert numbers / untrained")), start=7):
        res["models"][role] = {**ablation, "label": label, "probe_mean": probe}
        md = real_results_to_markdown(res)
        table = [line for line in md.splitlines() if line.startswith("|")]
        assert f"{label} on ACDC" in table[0] and all(line.count("|") == pipes for line in table)
        assert f"{probe:.3f}" in next(line for line in table if line.startswith("| Probe mean"))
        assert roles in md


def test_measurements_are_kept_beside_the_study_per_segmenter_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import cmr.quant.measure as qm
    import cmr.quant.segmenter as qs
    from cmr.quant.volumes import Measurements

    calls: list[str] = []
    version = {"v": "seg@1"}
    monkeypatch.setattr(qs, "load_segmenter", lambda *a, **k: types.SimpleNamespace(version=version["v"]))

    def fake_measure(study: object, seg: object) -> object:
        calls.append(str(study))
        return types.SimpleNamespace(measurements=Measurements(lvef_pct=40.0 + len(calls), model=version["v"]))

    monkeypatch.setattr(qm, "measure_study", fake_measure)
    folder = tmp_path / "patient001"
    folder.mkdir()
    (tmp_path / "patient001.conversion.json").write_text("{}")
    settings = types.SimpleNamespace()
    first = real.measure_patients({"patient001": "study"}, settings, False, folders={"patient001": folder})
    again = real.measure_patients({"patient001": "study"}, settings, False, folders={"patient001": folder})
    assert len(calls) == 1 and again["patient001"][0].lvef_pct == first["patient001"][0].lvef_pct == 41.0
    version["v"] = "seg@2"  # another segmenter measures anew
    other = real.measure_patients({"patient001": "study"}, settings, False, folders={"patient001": folder})
    assert len(calls) == 2 and other["patient001"][0].lvef_pct == 42.0
    (tmp_path / "patient001.conversion.json").write_text('{"changed": 1}')  # a new conversion too
    real.measure_patients({"patient001": "study"}, settings, False, folders={"patient001": folder})
    assert len(calls) == 3
