"""CLI tables keep their values whole: plain aligned text to a pipe (any COLUMNS), folded cells on a narrow
terminal, never an ellipsis."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cmr.synth.scanners import STYLES
from orchestration.cli.tables import print_table
from realdata_paths import SUNNYBROOK_MIDSLICE

REPO = Path(__file__).resolve().parents[2]


def _cmr(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "40"}
    return subprocess.run([sys.executable, "-m", "orchestration.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_list_scanners_to_a_narrow_pipe_keeps_every_value_whole() -> None:
    proc = _cmr("synth", "--list-scanners")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    rows = proc.stdout.splitlines()
    assert len(rows) == 1 + len(STYLES)  # a header line, then one line per style
    for style, row in zip(STYLES.values(), rows[1:]):
        assert row.split()[0] == style.name
        assert style.manufacturer in row
    assert "HELD OUT (evaluation only)" in proc.stdout and "enhanced multi-frame" in proc.stdout


def test_inspect_to_a_pipe_prints_no_pydicom_warnings_and_the_quirk_once() -> None:
    proc = _cmr("inspect", str(SUNNYBROOK_MIDSLICE))
    assert proc.returncode == 0, proc.stderr
    assert "pydicom" not in proc.stderr and "WARNING" not in proc.stderr
    quirks = [line for line in proc.stdout.splitlines() if line.startswith("header quirk")]
    assert len(quirks) == 1 and "Invalid value for VR UI" in quirks[0] and " times in " in quirks[0]
    assert "GE MEDICAL SYSTEMS SIGNA HDx 1.5T" in proc.stdout  # a long cell, whole


def test_a_narrow_terminal_folds_cells_instead_of_cutting_them() -> None:
    table = Table("scanner style")
    table.add_row("philips_ingenia_1.5T")
    buf = io.StringIO()
    print_table(table, Console(file=buf, force_terminal=True, width=12, color_system=None))
    out = buf.getvalue()
    assert "…" not in out and len(out.splitlines()) > 5  # folded over several lines
    letters = "".join(ch for ch in out if ch.isalnum() or ch in "._-")
    assert letters == "scannerstylephilips_ingenia_1.5T"
