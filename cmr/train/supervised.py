"""The supervised ceiling: the same exam encoder trained directly on the finding and disease labels.

It answers "how much of the label information can this architecture extract from these exams with this
budget?", the upper reference for zero-shot and few-shot numbers, which never see a label. Same data, split,
augmentation, optimiser and time budget as CLIP training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from cmr.data.cache import ExamCache, build_cache
from cmr.data.records import label_matrix
from cmr.labels import DISEASES, FINDINGS
from cmr.model.config import Config
from cmr.model.image_encoder import ExamEncoder
from cmr.train.augment import augment_exams
from cmr.train.loop import MetricsLog, batches, load_batch, lr_factor, split
from cmr.train.trainer import TrainingError

FORMAT = "cmr-supervised-checkpoint/1"


class SupervisedExamClassifier(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = ExamEncoder(cfg.model.image, cfg.model.exam)
        self.findings = nn.Linear(self.visual.width, len(FINDINGS))
        self.disease = nn.Linear(self.visual.width, len(DISEASES))

    def forward(self, pixels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = self.visual(pixels, mask)
        return self.findings(h), self.disease(h)

    @torch.no_grad()
    def predict(self, pixels: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Probabilities per finding (sigmoid) and per disease (softmax), keyed like the zero-shot results."""
        self.eval()
        f_out, d_out = [], []
        for s in range(0, len(pixels), batch_size):
            px = torch.from_numpy(np.asarray(pixels[s : s + batch_size])).float().div_(255.0)
            mk = torch.from_numpy(np.asarray(mask[s : s + batch_size])).bool()
            f, d = self(px, mk)
            f_out.append(torch.sigmoid(f).numpy())
            d_out.append(torch.softmax(d, -1).numpy())
        fp, dp = np.concatenate(f_out), np.concatenate(d_out)
        out = {name: fp[:, j] for j, name in enumerate(FINDINGS)}
        out.update({f"disease:{name}": dp[:, j] for j, name in enumerate(DISEASES)})
        return out


def _targets(cache: ExamCache) -> tuple[np.ndarray, np.ndarray]:
    y = label_matrix(cache.records, FINDINGS).astype(np.float32)
    d = np.array([DISEASES.index(r.disease) if r.disease in DISEASES else -100 for r in cache.records])
    return y, d


def _loss(model: SupervisedExamClassifier, px: Tensor, mk: Tensor, y: Tensor, d: Tensor) -> Tensor:
    f, dl = model(px, mk)
    return F.binary_cross_entropy_with_logits(f, y) + F.cross_entropy(dl, d, ignore_index=-100)


@dataclass
class SupervisedResult:
    checkpoint: Path
    epochs: int
    best_val_loss: float
    elapsed_s: float


def train_supervised(cfg: Config, data_dir: Path, out: Path, workers: int = 0, progress: bool = True) -> SupervisedResult:
    out = Path(out)
    if (out / "supervised.pt").exists():
        raise TrainingError(f"{out} already holds a supervised run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    torch.manual_seed(t.seed)
    cache = build_cache(data_dir, cfg.model.exam, workers=workers, progress=progress)
    ok = np.flatnonzero(cache.ok)
    if len(ok) < 4:
        raise TrainingError(f"{data_dir}: only {len(ok)} usable studies")
    tr, va = split(len(ok), t.val_fraction, t.seed)
    train_idx, val_idx = ok[tr], ok[va]
    y_all, d_all = _targets(cache)
    model = SupervisedExamClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    slot_ids = torch.tensor([k for k, s in enumerate(cfg.model.exam.slots) for _ in range(s.length)])
    gen = torch.Generator().manual_seed(t.seed)
    log = MetricsLog(out / "metrics_supervised.csv", True)
    budget, t0, step, best, bad, epoch = t.max_minutes * 60.0, time.perf_counter(), 0, float("inf"), 0, 0
    total = t.epochs * max(1, len(train_idx) // t.batch_size)
    dev = torch.device("cpu")

    def batch_targets(b: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(y_all[b]), torch.from_numpy(d_all[b])

    while epoch < t.epochs:
        model.train()
        losses = []
        for b in tqdm(batches(train_idx, t.batch_size, np.random.default_rng(t.seed + epoch), True),
                      desc=f"supervised epoch {epoch + 1}", leave=False, disable=not progress):
            px, mk = load_batch(cache, b, dev)
            px, mk = augment_exams(px, mk, slot_ids, t, gen)
            progress_frac = max(step / max(1, total), (time.perf_counter() - t0) / budget if budget else 0.0)
            for g in opt.param_groups:
                g["lr"] = t.lr * lr_factor(progress_frac, step, t.warmup_steps)
            loss = _loss(model, px, mk, *batch_targets(b))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            losses.append(loss.item())
        epoch += 1
        model.eval()
        with torch.no_grad():
            vl = [float(_loss(model, *load_batch(cache, b, dev), *batch_targets(b)))
                  for b in batches(val_idx, 128, None, False)]
        val = float(np.mean(vl)) if vl else float("nan")
        elapsed = time.perf_counter() - t0
        log.row(epoch=epoch, step=step, train_loss=round(float(np.mean(losses)), 5), val_loss=round(val, 5),
                elapsed_s=round(elapsed, 1))
        if progress:
            print(f"supervised epoch {epoch}: train loss {np.mean(losses):.4f}  val loss {val:.4f}  ({elapsed / 60:.1f} min)")
        if val < best - 1e-4:
            best, bad = val, 0
            save_supervised(out / "supervised.pt", model, {"epoch": epoch, "val_loss": val})
        else:
            bad += 1
        if bad >= t.patience or (budget and elapsed >= budget):
            break
    return SupervisedResult(out / "supervised.pt", epoch, best, time.perf_counter() - t0)


def save_supervised(path: Path, model: SupervisedExamClassifier, meta: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, "config": model.cfg.to_dict(), "state": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def load_supervised(path: Path) -> SupervisedExamClassifier:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a supervised CMR checkpoint")
    model = SupervisedExamClassifier(Config.from_dict(payload["config"]))
    model.load_state_dict(payload["state"])
    return model.eval()
