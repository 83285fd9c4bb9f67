"""`cmr eval --silver`: silver-labelled data (an imported archive) is evaluated only with the flag, and every
section of the report then says the labels are silver."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cmr.archive.silver import SILVER_NOTE, has_silver_labels, mark_silver
from orchestration.cli.main import app


def _data(folder: Path, silver: bool) -> Path:
    folder.mkdir()
    rec = {"folder": "studies/x", "impression": "Normal study.", "labels": {}}
    if silver:
        rec["label_source"] = "silver"
    (folder / "reports.jsonl").write_text(json.dumps(rec) + "\n")
    return folder


def test_silver_data_is_recognised_and_marked_in_every_section(tmp_path: Path) -> None:
    assert has_silver_labels(_data(tmp_path / "s", True)) and not has_silver_labels(_data(tmp_path / "r", False))
    md = mark_silver("# CMR-CLIP evaluation\n\n## Zero-shot AUROC\n\n| a |\n\n## Retrieval\n\n| b |\n")
    assert md.startswith("# CMR-CLIP evaluation (silver labels)") and md.count(SILVER_NOTE) == 3


def test_eval_refuses_silver_data_without_the_flag_and_the_flag_on_reader_labels(tmp_path: Path) -> None:
    silver, reader = _data(tmp_path / "s", True), _data(tmp_path / "r", False)
    out = str(tmp_path / "res.json")
    without = CliRunner().invoke(app, ["eval", "--data", str(silver), "--out", out])
    assert without.exit_code == 2 and "pass --silver" in without.output
    wrong = CliRunner().invoke(app, ["eval", "--data", str(reader), "--out", out, "--silver"])
    assert wrong.exit_code == 2 and "hold reader labels" in wrong.output
