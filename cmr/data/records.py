"""Study records: one line of reports.jsonl per study (folder, impression, labels, scanner).

The same format describes a hospital's own data: `folder` (relative to the data directory) and `impression`
are required; `labels` (finding -> bool, plus `disease`) only for evaluation; `measurements` (the numbers of
`cmr measure --json`, or of the report) feed the measurement tokens of models that have them. Synthetic records
carry `reference_measurements` (a perfect segmentation of the phantom), read as the measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmr.labels import FINDINGS

REPORTS_FILE = "reports.jsonl"


@dataclass(frozen=True)
class StudyRecord:
    folder: str
    impression: str
    labels: dict[str, Any] = field(default_factory=dict)
    scanner: str = ""
    held_out_style: bool = False
    study_instance_uid: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)  # Measurements.values() style; {} = none
    label_maps: str = ""  # synthetic studies: their tissue label maps (relative to the data directory)

    @property
    def disease(self) -> str | None:
        d = self.labels.get("disease")
        return str(d) if d is not None else None


def read_records(data_dir: Path) -> list[StudyRecord]:
    """Records of `data_dir/reports.jsonl`, in file order. Raises ValueError naming the bad line."""
    path = Path(data_dir) / REPORTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a data directory needs a reports.jsonl (see `cmr synth`)")
    out: list[StudyRecord] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rec = StudyRecord(
                folder=str(d["folder"]), impression=str(d["impression"]), labels=dict(d.get("labels") or {}),
                scanner=str(d.get("scanner", "")), held_out_style=bool(d.get("held_out_style", False)),
                study_instance_uid=str(d.get("study_instance_uid", "")),
                measurements=dict(d.get("measurements") or d.get("reference_measurements") or {}),
                label_maps=str(d.get("label_maps") or ""),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a study record ({exc})") from exc
        if not rec.impression.strip():
            raise ValueError(f"{path}:{n}: empty impression for {rec.folder}")
        out.append(rec)
    if not out:
        raise ValueError(f"{path} has no study records")
    return out


def label_matrix(records: list[StudyRecord], names: tuple[str, ...] = FINDINGS) -> np.ndarray:
    """[N, len(names)] bool finding labels; raises if a record has no label for one of `names`."""
    try:
        return np.array([[bool(r.labels[n]) for n in names] for r in records], dtype=bool)
    except KeyError as exc:
        raise ValueError(f"a study record has no label {exc}; evaluation needs labelled data") from exc


def labels_for_key(key: str, records: list[StudyRecord]) -> np.ndarray:
    """Bool label per record for a zero-shot key: a finding name, or "disease:<name>"."""
    if key.startswith("disease:"):
        d = key.split(":", 1)[1]
        return np.array([r.disease == d for r in records], dtype=bool)
    return label_matrix(records, (key,))[:, 0]


def labels_of(record: dict[str, Any]) -> list[str]:
    """The index's label strings of a study record (a reports.jsonl line): each finding present, then
    "disease:<name>" (the keys labels_for_key reads back)."""
    lab = record.get("labels") or {}
    out = [f for f in FINDINGS if lab.get(f)]
    if lab.get("disease"):
        out.append(f"disease:{lab['disease']}")
    return out
