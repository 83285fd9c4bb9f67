"""What `cmr train` reads of each study of a data directory, in a form two data directories can be compared by:
the exam tensor the training loader hands the model (pixels and frame mask, hashed), the impression, the
measurement-token values, and the side of the training / validation split the study falls on.

Why: the same studies can reach training by two paths (a synthesiser's reports.jsonl, or `cmr dataset import`
of its DICOM folders and RIS export). Folder names, UIDs, labels and study order may differ between them; a
model only sees these inputs, so they are what must be equal (tests/integration/test_import_equivalence.py,
bench/import_equivalence.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cmr.data.cache import ExamCache
from cmr.train.loop import load_batch, split


@dataclass(frozen=True)
class StudyInputs:
    impression: str
    measurements: tuple[float | None, ...]  # token values in the model's order; None = not measured


def training_inputs(cache: ExamCache, measurement_names: Sequence[str]) -> dict[str, StudyInputs]:
    """Usable studies in cache order, keyed by the SHA-256 of their exam tensor as the loader produces it."""
    ok = np.flatnonzero(cache.ok)
    tokens = cache.measurements(tuple(measurement_names))
    out: dict[str, StudyInputs] = {}
    for i in ok:
        px, mask = load_batch(cache, np.array([i]), torch.device("cpu"))
        key = hashlib.sha256(px.numpy().tobytes() + mask.numpy().tobytes()).hexdigest()
        values = tuple(None if np.isnan(v) else round(float(v), 4) for v in tokens[i])
        out[key] = StudyInputs(cache.records[i].impression, values)
    return out


def split_sides(cache: ExamCache, val_fraction: float, seed: int) -> dict[str, str]:
    """Exam-tensor hash -> "train" or "val", as the trainer splits the usable studies with this seed."""
    keys = list(training_inputs(cache, ()))
    train_rows, val_rows = split(len(keys), val_fraction, seed)
    return {**{keys[r]: "train" for r in train_rows}, **{keys[r]: "val" for r in val_rows}}


__all__ = ["StudyInputs", "split_sides", "training_inputs"]
