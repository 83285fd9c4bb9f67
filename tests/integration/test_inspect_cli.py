"""`cmr inspect` and `cmr render` end to end: tables, JSON, and one-line errors with non-zero status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from orchestration.cli.main import app
from realdata_paths import SUNNYBROOK_LOCALIZERS as LOCALIZERS, SUNNYBROOK_MIDSLICE as MIDSLICE

runner = CliRunner()


def _assert_one_line_error(result: object, contains: str) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and err.startswith("error: ") and contains in err, err
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def test_inspect_table() -> None:
    result = runner.invoke(app, ["inspect", str(MIDSLICE)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("cine", "sax", "256x256", "1.2891x1.2891", "GE MEDICAL SYSTEMS SIGNA HDx 1.5T", "cine_sax", "filled",
                 "missing", "lge_lax"):
        assert text in out


def test_inspect_json() -> None:
    result = runner.invoke(app, ["inspect", str(MIDSLICE), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    [series] = report["series"]
    assert (series["kind"], series["view"], series["phases"], series["slices"]) == ("cine", "sax", 20, 1)
    assert report["slots"]["cine_sax"]["present"] is True and report["slots"]["cine_sax"]["frames"] == 16
    assert report["missing"] == ["cine_4ch", "cine_2ch", "cine_3ch", "lge_sax", "lge_lax"]
    assert report["study"]["study_date"] is None and report["error"] is None


def test_inspect_reports_skipped_junk(tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(MIDSLICE, study)
    (study / "README.txt").write_text("hello")
    result = runner.invoke(app, ["inspect", str(study)])
    assert result.exit_code == 0
    assert "skipped README.txt: not a DICOM file" in result.stdout


def test_localizers_only_show_the_table_then_fail_with_no_cine() -> None:
    result = runner.invoke(app, ["inspect", str(LOCALIZERS), "--json"])
    _assert_one_line_error(result, "no cine series in the study")
    report = json.loads(result.stdout)
    assert [s["kind"] for s in report["series"]] == ["localizer"] * 3
    assert report["error"]["code"] == "no_cine"


@pytest.mark.parametrize("command", ["inspect", "render"])
def test_unusable_inputs_give_one_line_errors(tmp_path: Path, command: str) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.dcm").write_text("not dicom at all")
    extra = ["--out", str(tmp_path / "o.gif")] if command == "render" else []
    _assert_one_line_error(runner.invoke(app, [command, str(junk), *extra]), "x.dcm: not a DICOM file")
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(runner.invoke(app, [command, str(empty), *extra]), "no files found")
    _assert_one_line_error(runner.invoke(app, [command, str(tmp_path / "nope"), *extra]), "no such file")


def test_mixed_studies_error(tmp_path: Path) -> None:
    shutil.copytree(MIDSLICE, tmp_path / "a")
    shutil.copytree(LOCALIZERS, tmp_path / "b")
    _assert_one_line_error(runner.invoke(app, ["inspect", str(tmp_path)]), "different studies")


def test_render_gif_and_png(tmp_path: Path) -> None:
    for name in ("s.gif", "s.png"):
        result = runner.invoke(app, ["render", str(MIDSLICE), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        with Image.open(tmp_path / name) as im:
            assert im.size == (160, 160)
    _assert_one_line_error(runner.invoke(app, ["render", str(MIDSLICE), "--out", str(tmp_path / "s.jpg")]),
                           "must end with .gif or .png")
    _assert_one_line_error(runner.invoke(app, ["render", str(LOCALIZERS), "--out", str(tmp_path / "l.gif")]),
                           "nothing to render")


def test_installed_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    data = (MIDSLICE / "101.dcm").read_bytes()
    (tmp_path / "101.dcm").write_bytes(data[: len(data) // 2])
    cmr = Path(sys.executable).parent / "cmr"
    if not cmr.exists():
        pytest.skip("cmr entry point not installed next to this interpreter")
    proc = subprocess.run([str(cmr), "inspect", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: 101.dcm: truncated DICOM file") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("scanner", ["philips_ingenia_1.5T", "ge_signa_1.5T"])
def test_synthetic_study_fills_every_slot(tmp_path: Path, scanner: str) -> None:
    styles = pytest.importorskip("cmr.synth.scanners").STYLES
    if scanner not in styles:
        pytest.skip(f"synthetic scanner style {scanner} not defined")
    result = runner.invoke(app, ["synth", "--out", str(tmp_path), "--studies", "1", "--seed", "5", "--workers", "1",
                                 "--scanner", scanner])
    assert result.exit_code == 0, result.output
    [study] = [p for p in (tmp_path / "studies").iterdir() if p.is_dir()]
    result = runner.invoke(app, ["inspect", str(study), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["missing"] == []
    # The distractor series (maps, flow, perfusion, ...) are "other"; a repeated ("_RPT") cine is a second series
    # of one view.
    views = sorted((s["kind"], s["view"]) for s in report["series"] if s["kind"] in ("cine", "lge"))
    assert sorted(set(views)) == [("cine", "2ch"), ("cine", "3ch"), ("cine", "4ch"), ("cine", "sax"),
                                  ("lge", "2ch"), ("lge", "3ch"), ("lge", "4ch"), ("lge", "sax")]
    assert len(views) == 9 and sum(s["kind"] == "other" for s in report["series"]) >= 10
    assert any(s["kind"] == "localizer" for s in report["series"])
