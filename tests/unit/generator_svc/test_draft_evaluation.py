"""The drafting evaluation: retrieval as the search service does it (image embedding against the indexed
reports), the scores of each mode, the target checks and the written report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator_svc.evaluation import MODES, retrieval_drafts, score_drafts, target_checks, write_report

IMPRESSIONS = ["Dilated LV with severely impaired systolic function. No LGE.",
               "Normal cardiac MRI. Normal biventricular size and function.",
               "Asymmetric septal hypertrophy. Findings consistent with HCM.",
               "Normal biventricular size and function. No LGE."]
LABELS = [{"lv_dysfunction": True, "rv_dysfunction": False, "lv_dilation": True, "rv_dilation": False,
           "lv_hypertrophy": False, "lge": False, "aortic_dilation": False, "la_enlargement": False,
           "pericardial_effusion": False, "disease": "nicm"},
          {f: False for f in ("lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation", "lv_hypertrophy",
                              "lge", "aortic_dilation", "la_enlargement", "pericardial_effusion")} | {"disease": "normal"}]


def test_retrieval_takes_the_nearest_report_and_a_consensus() -> None:
    reports = np.eye(4, 8, dtype=np.float32)
    query = np.array([[0.1, 0.9, 0, 0.5, 0, 0, 0, 0], [0.9, 0, 0.2, 0, 0, 0, 0, 0]], np.float32)
    nearest, consensus = retrieval_drafts(query, reports, IMPRESSIONS, ["a", "b", "c", "d"], k=3)
    assert nearest == [IMPRESSIONS[1], IMPRESSIONS[0]]
    assert consensus[0] and consensus[1]  # never empty: at worst a sentence saying the neighbours disagree


def test_scores_checks_and_report(tmp_path: Path) -> None:
    refs = IMPRESSIONS[:2]
    good = score_drafts(refs, refs, LABELS)
    bad = score_drafts(["Normal cardiac MRI.", "Dilated LV with impaired function."], refs, LABELS)
    assert good["text"]["bleu_4"] > bad["text"]["bleu_4"] and good["clinical"]["macro_f1"] == 1.0
    assert bad["clinical"]["hallucination_rate"] == 1.0  # the second draft states LV dysfunction the study lacks
    results = {"modes": {"retrieval": bad, "consensus": bad, "target": good},
               "generator": {"version": "t@1", "decoding": "greedy", "clip_version": "c@1"},
               "index": {"dir": "train", "studies": 4}, "test": {"dir": "test", "studies": 2}, "neighbours": 3,
               "examples": [{"reference": refs[0], **{m: refs[0] for m in MODES}}]}
    checks = {name: ok for name, _, ok in target_checks(results)}
    assert all(checks.values())
    path = write_report(results, tmp_path, "test machine")
    text = path.read_text()
    assert "| CMR-TARGET beats retrieval on BLEU-4 |" in text and "**not met**" not in text
    assert (tmp_path / "drafting.png").stat().st_size > 1000 and (tmp_path / "drafting.json").exists()
    header, separator = [line for line in text.splitlines() if line.startswith("| mode |") or line.startswith("| --- | --- | --- | --- | --- |")][:2]
    assert header.count("|") == separator.count("|")
