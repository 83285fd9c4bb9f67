"""Evaluation on an imported archive's silver labels (the finding labeller's reading of each impression, not a
reader's labels): which data directories hold them, and every table of an evaluation report saying so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from cmr.data.records import REPORTS_FILE

SILVER_NOTE: Final = ("_Labels: **silver** - the finding labeller's reading of each report impression "
                      "(cmr dataset import), not a reader's labels._")


def has_silver_labels(data_dir: Path) -> bool:
    """Whether the records of `data_dir` carry silver labels (label_source "silver", as the import writes)."""
    path = Path(data_dir) / REPORTS_FILE
    if not path.exists():
        return False
    with path.open() as fh:
        for line in fh:
            if line.strip():
                return json.loads(line).get("label_source") == "silver"
    return False


def mark_silver(markdown: str) -> str:
    """The evaluation report with the title and every section (hence every table) saying the labels are silver."""
    out = []
    for line in markdown.splitlines():
        if line.startswith("# "):
            line = f"{line} (silver labels)"
        out.append(line)
        if line.startswith("## ") or line.startswith("# "):
            out += ["", SILVER_NOTE]
    return "\n".join(out) + "\n"


__all__ = ["SILVER_NOTE", "has_silver_labels", "mark_silver"]
