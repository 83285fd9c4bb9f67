"""The pieces of a training loop that CMR-CLIP training (`trainer`), the supervised ceiling (`supervised`) and
CMR-TARGET training (`cmr.generator.train`) share, so that all three split, batch and schedule the same way."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmr.data.cache import ExamCache


def split(n_ok: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into the usable studies: a seeded permutation, at least one for validation
    when there is a fraction and more than two studies."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n_ok)
    n_val = max(1, int(round(len(idx) * val_fraction))) if val_fraction > 0 and len(idx) > 2 else 0
    return np.sort(idx[n_val:]), np.sort(idx[:n_val])


def lr_factor(progress: float, step: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warmup over `warmup` steps, then cosine decay over the run's progress."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batches(idx: np.ndarray, batch_size: int, rng: np.random.Generator | None, drop_last: bool) -> list[np.ndarray]:
    """`idx` cut into batches, shuffled first when a generator is given."""
    order = rng.permutation(idx) if rng is not None else idx
    n = len(order) // batch_size * batch_size if drop_last and len(order) >= batch_size else len(order)
    return [order[s : s + batch_size] for s in range(0, n, batch_size)]


def load_batch(cache: ExamCache, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (0..1 floats) and masks of the cached exams `idx`, on `device`."""
    srt = np.sort(idx)  # memmap reads in file order, then back to batch order
    inv = np.argsort(np.argsort(idx))
    px = torch.from_numpy(np.ascontiguousarray(cache.pixels[srt][inv])).to(device).float().div_(255.0)
    return px, torch.from_numpy(cache.mask[idx]).to(device)


class MetricsLog:
    """A CSV metrics log, one row per call (the header from the first row); `enabled=False` writes nothing
    (the non-zero ranks of a multi-GPU run)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def row(self, **kv: Any) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(kv))
            if new:
                w.writeheader()
            w.writerow(kv)


__all__ = ["MetricsLog", "batches", "load_batch", "lr_factor", "split"]
