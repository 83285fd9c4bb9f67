"""Tests of cmr.eval.report (markdown tables, target checks, figures) and the paper constants."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cmr.eval.paper import PAPER_FEW_SHOT_LV_DYSFUNCTION, PAPER_ZERO_SHOT_AUC, PAPER_ZERO_SHOT_MEAN
from cmr.eval.report import (
    DISPLAY_NAMES,
    display_name,
    plot_few_shot,
    plot_zero_shot,
    results_to_markdown,
    target_checks,
)
from cmr.labels import DISEASES, FINDINGS, PAPER_FINDINGS

PRIMARY = "cmr-clip-small / heldout-style"
OTHER = "cmr-clip-small / external-style"
SHOTS = (1, 2, 4, 8, 16, 32)


def _entry(zs: dict[str, float], fs32: float, match10: float, test_set: str) -> dict[str, Any]:
    few = {
        f: {str(k): {"prototype": {"mean": fs32 - 0.01 * (5 - i), "std": 0.02, "n_draws": 20},
                     "linear": {"mean": fs32 - 0.02 * (5 - i), "std": 0.03, "n_draws": 20}}
            for i, k in enumerate(SHOTS)}
        for f in FINDINGS
    }
    direction = {"R@1": 0.2, "R@5": 0.5, "R@10": 0.7, "median_rank": 5.0, "mean_rank": 20.0, "n": 1000,
                 "match@k": match10, "precision@k": 0.6, "chance_precision": 0.1, "chance_match": 0.5,
                 "k": 10}
    return {
        "model": "cmr-clip-small",
        "test_set": test_set,
        "n_studies": 1000,
        "zero_shot": {k: {"auroc": v, "ci": [v - 0.02, v + 0.02], "n_pos": 100} for k, v in zs.items()},
        "few_shot": few,
        "retrieval": {"image_to_text": dict(direction), "text_to_image": dict(direction)},
        "robustness": {"shuffle_frames": 0.97, "drop_25pct_frames": 0.99,
                       "drop_view": {"sax": 0.81, "4ch": 0.95}, "drop_view_mean": 0.88},
    }


@pytest.fixture()
def results() -> dict[str, Any]:
    passing = {f: 0.95 for f in PAPER_FINDINGS} | {"la_enlargement": 0.9, "pericardial_effusion": 0.85}
    passing |= {f"disease:{d}": 0.9 for d in DISEASES}
    weaker = {f: 0.8 for f in PAPER_FINDINGS} | {"la_enlargement": 0.7}
    return {
        "primary": PRIMARY,
        "entries": {
            PRIMARY: _entry(passing, fs32=0.95, match10=0.85, test_set="heldout-style"),
            OTHER: _entry(weaker, fs32=0.85, match10=0.6, test_set="external-style"),
        },
        "meta": {"checkpoint": "runs/x/best.pt", "machine": {"gpu": "none"}},
    }


def _check_lines(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("- **PASS**") or ln.startswith("- **FAIL**")]


def test_paper_constants_consistent() -> None:
    assert tuple(PAPER_ZERO_SHOT_AUC) == PAPER_FINDINGS
    for col in (0, 1):
        mean = sum(v[col] for v in PAPER_ZERO_SHOT_AUC.values()) / len(PAPER_ZERO_SHOT_AUC)
        assert mean == pytest.approx(PAPER_ZERO_SHOT_MEAN[col], abs=0.0005)
    assert PAPER_FEW_SHOT_LV_DYSFUNCTION[32] == 0.918 and sorted(PAPER_FEW_SHOT_LV_DYSFUNCTION) == list(SHOTS)


def test_display_names_cover_vocabulary() -> None:
    for f in FINDINGS:
        assert f in DISPLAY_NAMES
    for d in DISEASES:
        assert f"disease:{d}" in DISPLAY_NAMES
    assert display_name("lge") == "LGE present"
    assert display_name("disease:nicm") == "Non-ischemic dilated CM"
    assert display_name("disease:new_thing") == "New thing"


def test_all_targets_pass(results: dict[str, Any]) -> None:
    checks = target_checks(results)
    assert len(checks) == 4 and all(c.passed for c in checks)
    assert checks[0].value == pytest.approx(0.95)
    assert checks[2].value == pytest.approx(0.95)  # 32-shot prototype mean over the 7
    assert checks[3].value == pytest.approx(0.85)
    lines = _check_lines(results_to_markdown(results))
    assert len(lines) == 4 and all("**PASS**" in ln for ln in lines)
    assert "measured 0.950" in lines[0]


def test_targets_fail_from_numbers(results: dict[str, Any]) -> None:
    e = results["entries"][PRIMARY]
    e["zero_shot"]["aortic_dilation"]["auroc"] = 0.79  # mean still >= 0.90, but one below 0.80
    e["retrieval"]["text_to_image"]["match@k"] = 0.5
    for k in SHOTS:
        e["few_shot"]["lge"][str(k)]["prototype"]["mean"] = 0.6
    checks = target_checks(results)
    mean7 = (6 * 0.95 + 0.79) / 7
    assert [c.passed for c in checks] == [True, False, False, False]
    assert checks[0].value == pytest.approx(mean7)
    assert checks[1].value == pytest.approx(0.79) and "Aortic dilation" in checks[1].detail
    assert checks[2].value == pytest.approx((6 * 0.95 + 0.6) / 7)
    lines = _check_lines(results_to_markdown(results))
    assert lines[0].startswith("- **PASS**") and f"{mean7:.3f}" in lines[0]
    assert lines[1].startswith("- **FAIL**") and "0.790" in lines[1]
    assert lines[2].startswith("- **FAIL**")
    assert lines[3].startswith("- **FAIL**") and "0.500" in lines[3]


def test_missing_inputs_fail_not_crash(results: dict[str, Any]) -> None:
    e = results["entries"][PRIMARY]
    e["zero_shot"]["lge"]["auroc"] = None  # one class only in the test set
    del e["few_shot"]
    del e["retrieval"]
    checks = target_checks(results)
    assert not any(c.passed for c in checks)
    assert "LGE present" in checks[0].detail
    assert checks[2].value is None and checks[3].value is None
    md = results_to_markdown(results)
    assert "not measured" in md
    results["primary"] = "nope"
    with pytest.raises(ValueError):
        results_to_markdown(results)


def test_markdown_tables(results: dict[str, Any]) -> None:
    md = results_to_markdown(results)
    # (a) zero-shot: one column per entry plus paper columns; paper findings first, then the mean row.
    header = next(ln for ln in md.splitlines() if ln.startswith("| Finding |") and "Paper internal" in ln)
    assert f"`{PRIMARY}`" in header and f"`{OTHER}`" in header and "Paper external" in header
    lv = next(ln for ln in md.splitlines() if ln.startswith("| LV dysfunction |"))
    assert "0.950 [0.930–0.970] (100+)" in lv and "0.800" in lv and "0.735" in lv and "0.768" in lv
    mean_row = next(ln for ln in md.splitlines() if "Mean of the 7 paper findings" in ln)
    assert "0.950" in mean_row and "0.800" in mean_row and "0.771" in mean_row and "0.730" in mean_row
    assert "| HCM |" in md and "| Pericardial effusion |" in md
    # (b) few-shot: k rows with mean ± std and the paper LV dysfunction curve.
    row32 = next(ln for ln in md.splitlines() if ln.startswith("| 32 |"))
    assert "0.950 ± 0.020" in row32 and "0.918" in row32
    # (c) retrieval, (d) robustness, meta.
    assert "Text → image" in md and "Image → text" in md
    assert "| Drop 4ch | Drop sax |" in md and "0.810" in md
    assert "checkpoint: runs/x/best.pt" in md and '{"gpu": "none"}' in md


def test_markdown_survives_json_round_trip(results: dict[str, Any]) -> None:
    # few_shot() returns int k; JSON turns them into strings. Both must render the same.
    as_int = copy.deepcopy(results)
    for e in as_int["entries"].values():
        e["few_shot"] = {f: {int(k): v for k, v in c.items()} for f, c in e["few_shot"].items()}
    assert results_to_markdown(as_int) == results_to_markdown(json.loads(json.dumps(results)))


def test_minimal_entry_renders(results: dict[str, Any]) -> None:
    entry = {"model": "x", "test_set": "y", "n_studies": 3, "zero_shot": {}}
    minimal = {"primary": "m", "entries": {"m": entry}}
    md = results_to_markdown(minimal)
    assert "## Targets" in md and "## Few-shot" not in md and "## Retrieval" not in md


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png(results: dict[str, Any], tmp_path: Path) -> None:
    z = plot_zero_shot(results, tmp_path / "figs" / "zero_shot.png")
    f = plot_few_shot(results, tmp_path / "few_shot.png")
    assert _is_png(z) and _is_png(f)
    # Without few-shot results the figure is still written (with the paper reference only).
    for e in results["entries"].values():
        e.pop("few_shot")
    assert _is_png(plot_few_shot(results, tmp_path / "few_shot_empty.png"))
