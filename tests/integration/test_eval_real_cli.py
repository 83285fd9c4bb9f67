"""`cmr eval-real` end to end on a few real ACDC patients: conversion by the folder's own to_dicom.py (cached),
the project's study loader, the shipped checkpoint and the untrained model, the JSON results and the markdown
report with its figures. It checks the pipeline, not the numbers (those are docs/model/real-data.md's).

--limit 10 takes 2 patients of each of the 5 groups, so every task has at least 2 positives and 2 negatives
(the zero-shot AUROC needs one of each, the 2-fold probe two) and every group has a neighbour of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmr.config import get_settings
from cmr.eval.real import FIG_EMBEDDINGS, FIG_ZERO_SHOT, FORMAT, KNN_KS
from cmr.realdata.acdc import TASKS
from orchestration.cli.main import app
from realdata_paths import SHARED_REALDATA, needs_shared_realdata

LIMIT = 10
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the settings' environment
    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CMR_REALDATA_DIR", str(SHARED_REALDATA))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_missing_real_data_is_one_error_line_and_exit_2(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("CMR_REALDATA_DIR", str(tmp_path / "nowhere"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["eval-real", "--out", str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ACDC folder not found")
    assert str(tmp_path / "nowhere" / "acdc") in lines[0] and "CMR_REALDATA_DIR" in lines[0]
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
@needs_shared_realdata("acdc/labels.jsonl", "acdc/to_dicom.py")
def test_eval_real_writes_results_and_report(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out, docs = tmp_path / "real.json", tmp_path / "docs"
    t0 = time.perf_counter()
    # --no-sections: the embedding part only (the quantification section has its own tests and time)
    result = runner.invoke(app, ["eval-real", "--limit", str(LIMIT), "--out", str(out), "--docs", str(docs),
                                 "--no-sections"])
    seconds = time.perf_counter() - t0
    assert result.exit_code == 0, result.output + (str(result.exception) if result.exception else "")
    assert "zero-shot mean" in result.stdout and f"results -> {out}" in result.stdout

    res = json.loads(out.read_text())
    assert res["format"] == FORMAT
    d = res["data"]
    assert (d["n_selected"], d["limit"], d["groups"]) == (LIMIT, LIMIT, {g: 2 for g in ("DCM", "HCM", "MINF", "NOR", "RV")})
    assert d["n_embedded"] + len(res["failures"]) == LIMIT and d["n_embedded"] >= LIMIT - 1
    assert "evaluation only" in d["licence"]
    assert len(res["patients"]) == LIMIT and len(res["embedded"]) == d["n_embedded"]
    for role in ("checkpoint", "untrained"):
        m = res["models"][role]
        assert m["n"] == d["n_embedded"]
        for t in TASKS:
            zs, probe = m["zero_shot"][t], m["probe"][t]
            assert 0.0 <= zs["auroc"] <= 1.0 and zs["ci"][0] <= zs["auroc"] <= zs["ci"][1], (role, t, zs)
            assert 0 < zs["n_pos"] < zs["n"]
            assert 0.0 <= probe["auroc"] <= 1.0 and probe["folds"] >= 2, (role, t, probe)
            assert len(m["scores"][t]) == d["n_embedded"]
        assert 0.0 <= m["zero_shot_mean"] <= 1.0 and 0.0 <= m["probe_mean"] <= 1.0
        # 8-shot needs 9 positives: with 2 patients per group no task has them, and it says so (None)
        assert set(m["few_shot"]) == set(TASKS) and m["few_shot_mean"] is None
        for k in KNN_KS:
            assert 0.0 <= m["knn"][f"k={k}"]["agreement"] <= 1.0
        assert 0.0 < m["knn"]["chance"] < 1.0
        assert len(m["embedding_map"]["points"]) == d["n_embedded"]
    ck = res["models"]["checkpoint"]
    assert res["models"]["untrained"]["zero_shot"] != ck["zero_shot"]  # two different models
    if ck["calibration"] is not None:  # the shipped checkpoint has its calibration file beside it
        assert ck["calibration"]["matches_checkpoint"] is True
    assert res["synthetic"]["status"] in ("matched", "not evaluated for this checkpoint")
    assert res["sections"]["quantification"]["status"] == "not run"  # the hook's placeholder
    assert res["meta"]["timings_s"]["total"] > 0 and res["meta"]["machine"]

    md = (docs / "real-data.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert sum(line.startswith("| ---") for line in table) == 1 and len(table) == 2 + len(TASKS) + 5
    # The shipped model reads measurements: its pixels-only, numbers-only and expert-numbers ablations are columns
    # too; the expert masks' numbers are not the segmenter's, so that column's embeddings differ.
    assert {"checkpoint_pixels_only", "checkpoint_numbers_only", "checkpoint_expert_numbers"} <= set(res["models"])
    assert res["models"]["checkpoint_expert_numbers"]["scores"] != ck["scores"]
    assert all(line.count("|") == len(res["models"]) + 3 for line in table)  # label + each model + synthetic
    assert "## Quantification" in md and "evaluation only" in md
    for fig in (FIG_ZERO_SHOT, FIG_EMBEDDINGS):
        assert f"]({fig})" in md and (docs / fig).read_bytes()[:4] == b"\x89PNG"

    # the conversion is cached: a second run converts nothing (and needs no untrained model here); this one
    # also runs the quantification section (the shipped segmenter on the same patients, Sunnybrook, synthetic)
    t1 = time.perf_counter()
    again = runner.invoke(app, ["eval-real", "--limit", str(LIMIT), "--out", str(out), "--docs", str(docs),
                                "--no-untrained", "--no-progress"])
    assert again.exit_code == 0, again.output + (str(again.exception) if again.exception else "")
    res2 = json.loads(out.read_text())
    assert res2["data"]["conversion"]["converted_now"] == 0 and "untrained" not in res2["models"]
    assert res2["models"]["checkpoint"]["zero_shot"] == ck["zero_shot"]  # deterministic
    q = res2["sections"]["quantification"]
    assert q["status"] == "ok", q
    acdc = q["acdc"]
    assert acdc["n"] + len(acdc["failed"]) == LIMIT and acdc["n"] >= LIMIT - 1
    for phase in ("dice_ed", "dice_es"):
        assert set(acdc[phase]) == {"lv_cavity", "lv_myocardium", "rv_cavity"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in acdc[phase].values())
    assert acdc["lvef_pct"]["n"] + acdc["lvef_pct"]["n_missing"] == acdc["n"]
    for p in acdc["patients"]:
        assert p["reference"]["lvef_pct"] is not None and p["seconds_measure"] > 0
        assert p["quality"] in ("ok", "check", "failed")
    assert set(acdc["measurement_auroc"]) == set(TASKS)
    assert q["synthetic"]["n"] > 0 and q["sunnybrook"]["stacks"]
    md = (docs / "real-data.md").read_text()
    assert "| Dice LV cavity, ED |" in md and "| LVEF MAE (points) |" in md
    for fig in q["figures"]:
        assert f"]({fig})" in md and (docs / fig).read_bytes()[:4] == b"\x89PNG"
    print(f"eval-real --limit {LIMIT}: {seconds:.1f} s (first run), {time.perf_counter() - t1:.1f} s with "
          "quantification (cached conversion)")
