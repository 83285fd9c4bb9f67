"""The drafting evaluation's number scores: stated LVEF / volumes against the measurement and the truth, before
and after grounding; measurements cached per segmenter version; the report section."""

from __future__ import annotations

import json
from pathlib import Path

from cmr.labels import FINDINGS
from cmr.quant.volumes import Measurements
from generator_svc import grounding_eval
from generator_svc.evaluation import LABELS, MODES, score_drafts, write_report
from generator_svc.grounding_eval import evaluate_grounding, number_agreement, truth_of, within

M1 = Measurements(lvef_pct=31.0, lvedv_ml=250.0, lvedvi_ml_m2=120.0, lvesv_ml=172.0, lv_mass_g=150.0, rvef_pct=50.0,
                  quality="ok")
M2 = Measurements(lvef_pct=60.0, lvedv_ml=140.0, lvesv_ml=56.0, quality="check", quality_reasons=["low confidence"])
TRUTH1 = {"lvef_pct": 33.0, "lvedv_ml": 240.0, "lvedvi_ml_m2": 118.0, "rvef_pct": 52.0}
TRUTH2 = {"lvef_pct": 52.0, "lvedv_ml": 150.0}
DRAFTS = {
    "retrieval": ["Severely reduced LV systolic function (LVEF 23%). Dilated LV (LVEDVi 130 mL/m2).",
                  "Normal biventricular size and function (LVEF 58%, RVEF 61%)."],
    "consensus": ["Severely reduced LV systolic function. No LGE.", "Normal cardiac MRI."],
    "target": ["Moderately reduced LV systolic function (LVEF 35%).", "Normal LV size and function (LVEF 64%)."],
}
_NONE = {f: False for f in FINDINGS}
LABELS_ = [{**_NONE, "lv_dysfunction": True, "lv_dilation": True, "disease": "nicm"}, {**_NONE, "disease": "normal"}]


def test_tolerances() -> None:
    assert within("lvef_pct", 35.0, 30.0) and not within("lvef_pct", 35.1, 30.0)
    assert within("lvedv_ml", 220.0, 200.0) and not within("lvedv_ml", 221.0, 200.0)


def test_truth_is_the_phantoms_ef_and_the_reference_volumes() -> None:
    rec = {"truth": {"lvef": 48.1, "rvef": 63.4, "lvedvi": 64.3},
           "reference_measurements": {"lvef_pct": 49.4, "lvedv_ml": 132.1, "lvedvi_ml_m2": 62.1, "rvedvi_ml_m2": None}}
    assert truth_of(rec) == {"lvef_pct": 48.1, "rvef_pct": 63.4, "lvedv_ml": 132.1, "lvedvi_ml_m2": 62.1}
    assert truth_of({}) == {}


def test_number_agreement_counts_stated_values_against_both_references() -> None:
    a = number_agreement(DRAFTS["retrieval"], [M1, M2], [TRUTH1, TRUTH2])
    assert a["lvef_pct"] == {"drafts": 2, "stated": 2, "measured_compared": 2, "measured_within": 1,
                             "truth_compared": 2, "truth_within": 0}  # 23 vs 31/33; 58 vs 60 (ok) / 52 (no)
    assert a["lvedvi_ml_m2"]["stated"] == 1 and a["lvedvi_ml_m2"]["measured_within"] == 1  # 130 vs 120: 8 %
    assert a["rvef_pct"] == {"drafts": 2, "stated": 1, "measured_compared": 0, "measured_within": 0,
                             "truth_compared": 0, "truth_within": 0}  # M2 has no RVEF, TRUTH2 neither


def test_grounding_makes_every_stated_number_the_measured_one() -> None:
    g = evaluate_grounding(DRAFTS, [M1, M2], [TRUTH1, TRUTH2], LABELS_, "seg@1")
    for mode in MODES:
        after = g["modes"][mode]["after"]["lvef_pct"]
        assert after["stated"] == 2 and after["measured_within"] == after["measured_compared"] == 2
        assert after["truth_within"] == 1  # 31 vs 33 yes, 60 vs 52 no: the segmenter's error, not the draft's
    assert g["modes"]["consensus"]["before"]["lvef_pct"]["stated"] == 0
    assert g["modes"]["consensus"]["actions"]["added"] > 0  # the measurement sentence
    assert g["modes"]["retrieval"]["actions"]["replaced"] >= 3
    assert g["segmenter_vs_truth"]["lvef_pct"] == {"measured": 2, "compared": 2, "within": 1}
    assert g["quality"] == {"ok": 1, "check": 1, "failed": 0}


def test_measurements_are_cached_per_segmenter_version(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(grounding_eval, "segmenter_version", lambda checkpoint: "seg@abc")
    cache = tmp_path / "cache" / "measurements" / "seg_abc.jsonl"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"folder": "studies/s1", "measurements": M1.to_dict()}) + "\n{broken line\n")
    measured, version = grounding_eval.measure_studies(tmp_path, ["studies/s1", "studies/s1"], progress=False)
    assert version == "seg@abc" and [m.lvef_pct for m in measured] == [31.0, 31.0]  # nothing measured again


def test_report_has_the_numbers_section(tmp_path: Path) -> None:
    scores = score_drafts(DRAFTS["target"], DRAFTS["target"], LABELS_)
    results = {"modes": {m: scores for m in MODES},
               "generator": {"version": "t@1", "decoding": "greedy", "clip_version": "c@1"},
               "index": {"dir": "train", "studies": 4}, "test": {"dir": "test", "studies": 2}, "neighbours": 3,
               "examples": [], "grounding": evaluate_grounding(DRAFTS, [M1, M2], [TRUTH1, TRUTH2], LABELS_, "seg@1")}
    text = write_report(results, tmp_path, "test machine").read_text()
    assert "## Stated numbers: before and after grounding" in text and "`seg@1`" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {LABELS['target']} | grounded |"))
    assert "2/2 | 2/2 (100%) | 1/2 (50%)" in row
    for line in text.splitlines():
        if line.startswith("| mode | draft |"):
            sep = text.splitlines()[text.splitlines().index(line) + 1]
            assert line.count("|") == sep.count("|")
