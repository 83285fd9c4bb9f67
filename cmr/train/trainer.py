"""The CMR-CLIP training loop: cached exams, symmetric InfoNCE, AdamW with warmup + cosine decay over the
run's budget (epochs or minutes, whichever ends first), validation loss, early stopping, checkpoints and
resume, a CSV metrics log. Multi-GPU data parallel when started by torchrun (WORLD_SIZE > 1).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from cmr.data.cache import ExamCache
from cmr.model.checkpoint import create_model, model_state, save_checkpoint
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.loss import clip_loss
from cmr.train.augment import (ShortAxisLayout, augment_exams, augment_measurements, augment_short_axis, numbers_only,
                               single_number)
from cmr.train.loop import MetricsLog as _Logger
from cmr.train.loop import batches as _batches
from cmr.train.loop import load_batch as _load_batch
from cmr.train.loop import lr_factor as _lr_factor
from cmr.train.loop import split as _split
from cmr.train.number_text import NUMBER_FINDINGS, finding_text, number_text, text_rows, token_findings
from cmr.train.render import randomize_exams
from cmr.train.text_bank import TextBank

STATE_FILE = "last.pt"
BEST_FILE = "best.pt"
METRICS_FILE = "metrics.csv"


class TrainingError(RuntimeError):
    pass


@dataclass
class TrainResult:
    best_checkpoint: Path
    epochs: int
    best_val_loss: float
    stopped: str  # "epochs", "time", "early_stopping"
    elapsed_s: float
    n_train: int
    n_val: int


def _param_groups(model: CMRCLIP, cfg: Config) -> list[dict[str, Any]]:
    text, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("text.backbone."):
            text.append(p)
        elif p.ndim < 2 or "emb" in name or name in ("logit_scale",) or name.endswith(".cls") or name.endswith(".pos"):
            no_decay.append(p)
        else:
            decay.append(p)
    t = cfg.train
    return [
        {"params": decay, "lr": t.lr, "weight_decay": t.weight_decay, "base_lr": t.lr},
        {"params": no_decay, "lr": t.lr, "weight_decay": 0.0, "base_lr": t.lr},
        {"params": text, "lr": t.text_lr, "weight_decay": t.weight_decay, "base_lr": t.text_lr},
    ]


def train(cfg: Config, data_dir: Path, out: Path, *, resume: bool = False, workers: int = 0,
          progress: bool = True, device: str | None = None) -> TrainResult:
    """Train CMR-CLIP on the studies of `data_dir` (built into an exam cache first) and write checkpoints to `out`."""
    from cmr.data.cache import build_cache

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    main = rank == 0
    dev = torch.device(device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)

    out = Path(out)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise TrainingError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not state_path.exists():
        raise TrainingError(f"nothing to resume: {state_path} does not exist")
    out.mkdir(parents=True, exist_ok=True)

    t = cfg.train
    torch.manual_seed(t.seed + rank)
    # Under torchrun one process builds the caches and the others wait, then open them: every rank building them
    # at once would do the work world-size times over and race on the same files (docs/archive-import.md).
    if distributed and not main:
        dist.barrier()
    try:
        cache = build_cache(data_dir, cfg.model.exam, workers=workers, progress=progress and main)
        tissues = None
        if t.aug_tissue_render > 0:
            from cmr.data.tissue_cache import build_tissue_cache

            tissues = build_tissue_cache(data_dir, cfg.model.exam, workers=workers, progress=progress and main)
    finally:
        if distributed and main:
            dist.barrier()  # also when building failed: the others then fail on the same error themselves
    ok = np.flatnonzero(cache.ok)
    if len(ok) < 2:
        raise TrainingError(f"{data_dir}: only {len(ok)} usable studies (rejected: {len(cache.errors)})")
    tr, va = _split(len(ok), t.val_fraction, t.seed)
    train_idx, val_idx = ok[tr], ok[va]

    model = create_model(cfg, seed=t.seed)
    model.to(dev)
    texts = [r.impression for r in cache.records]
    n_studies = len(texts)
    findings = None
    if t.aug_numbers_text and model.measurement_names:
        # Rows n_studies + i of the bank: study i's number text, for exams read from their numbers alone; then,
        # with aug_number_finding_text, one block per finding a number states (number_text.text_rows).
        impressions = texts
        texts = texts + [number_text(x) for x in impressions]
        if t.aug_number_finding_text:
            texts = texts + [finding_text(x, f) for f in NUMBER_FINDINGS for x in impressions]
            findings = token_findings(model.measurement_names)
    bank = TextBank.build(model, texts, progress=progress and main)
    slot_ids = model.visual.pos_ids.new_tensor(
        [k for k, s in enumerate(cfg.model.exam.slots) for _ in range(s.length)])
    sax_layout = ShortAxisLayout.of(cfg.model.exam)
    names = model.measurement_names
    measured = torch.from_numpy(cache.measurements(names)) if names else None
    if tissues is not None and main:
        print(f"domain randomisation: {int(tissues.available[train_idx].sum())} of {len(train_idx)} training "
              f"studies have tissue exams; {t.aug_tissue_render:.0%} of those are drawn anew per step")
    if measured is not None and main:
        have = int(np.isfinite(measured.numpy()[train_idx]).any(axis=1).sum())
        print(f"measurement tokens {', '.join(names)}: measured in {have} of {len(train_idx)} training studies")

    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                  find_unused_parameters=False)
    opt = torch.optim.AdamW(_param_groups(model, cfg), betas=(0.9, 0.98), eps=1e-6)
    epoch, step, elapsed, best, bad = 0, 0, 0.0, float("inf"), 0
    if resume:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st.get("config", {}).get("model") != cfg.model.to_dict():
            raise TrainingError(f"{state_path} was trained with another model config; resume it with the same --config")
        missing, unexpected = model.load_state_dict(st["model"], strict=False)
        if unexpected or [k for k in missing if not k.startswith("text.backbone.")]:
            raise TrainingError(f"{state_path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        opt.load_state_dict(st["optimizer"])
        epoch, step, elapsed, best, bad = st["epoch"], st["step"], st["elapsed"], st["best"], st["bad"]
        if main:
            print(f"resuming {out} at epoch {epoch} (step {step}, best val loss {best:.4f})")

    steps_per_epoch = max(1, len(train_idx) // world // t.batch_size)
    total_steps = t.epochs * steps_per_epoch
    budget_s = t.max_minutes * 60.0
    amp = t.amp and dev.type == "cuda"
    gen = torch.Generator().manual_seed(t.seed * 1000 + rank)
    log = _Logger(out / METRICS_FILE, main)
    stopped = "epochs"
    t0 = time.perf_counter() - elapsed

    def progress_now() -> float:
        p = step / max(1, total_steps)
        if budget_s > 0:
            p = max(p, (time.perf_counter() - t0) / budget_s)
        return p

    while epoch < t.epochs:
        net.train()
        rng = np.random.default_rng(t.seed + epoch)
        batches = _batches(train_idx, t.batch_size * world, rng, drop_last=True)
        losses = []
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch", disable=not (progress and main), leave=False)
        for b in bar:
            b = b[rank::world]
            px, mk = _load_batch(cache, b, dev)
            if tissues is not None:
                tis = torch.from_numpy(np.ascontiguousarray(tissues.tissues[np.sort(b)][np.argsort(np.argsort(b))]))
                px = randomize_exams(px, tis, slot_ids, t.aug_tissue_render, gen)
            px, mk = augment_short_axis(px, mk, sax_layout, t.aug_sax_only, t.aug_reverse_sax, gen)
            px, mk = augment_exams(px, mk, slot_ids, t, gen)
            ms = None if measured is None else augment_measurements(measured[b].to(dev), names, t, gen)
            if ms is not None:
                mk = numbers_only(mk, ms, t.aug_numbers_only, gen)
                ms = single_number(mk, ms, t.aug_single_number, gen)
            rows = torch.from_numpy(b)
            if len(texts) > n_studies:
                rows = text_rows(rows, n_studies, (~mk.any(1)).cpu(), ms, findings)
            hid, att, grp = bank.batch(rows, dev)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * _lr_factor(progress_now(), step, t.warmup_steps)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                img, txt = net(px, mk, hid, att, ms)
                loss = clip_loss(img.float(), txt.float(), model.logit_scale.exp(), grp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            model.clamp_logit_scale()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", T=f"{1 / model.logit_scale.exp().item():.3f}")
            if budget_s > 0 and time.perf_counter() - t0 >= budget_s:
                stopped = "time"
                break
        epoch += 1
        val = evaluate_loss(model, cache, val_idx, bank, dev, measured) if len(val_idx) else float("nan")
        improved = len(val_idx) == 0 or val < best - 1e-4
        if improved:
            best, bad = (val if len(val_idx) else best), 0
            if main:
                save_checkpoint(out / BEST_FILE, model, t, meta={"epoch": epoch, "val_loss": val, "step": step})
        else:
            bad += 1
        elapsed = time.perf_counter() - t0
        log.row(epoch=epoch, step=step, train_loss=round(float(np.mean(losses)) if losses else float("nan"), 5),
                val_loss=round(val, 5), temperature=round(1 / model.logit_scale.exp().item(), 5),
                lr=opt.param_groups[0]["lr"], elapsed_s=round(elapsed, 1))
        if main:
            print(f"epoch {epoch}: train loss {np.mean(losses) if losses else float('nan'):.4f}  val loss {val:.4f}"
                  f"{'  *' if improved else ''}  ({elapsed / 60:.1f} min)")
            torch.save({"model": model_state(model), "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
                        "elapsed": elapsed, "best": best, "bad": bad, "config": cfg.to_dict()}, state_path)
        if stopped == "time":
            break
        if bad >= t.patience:
            stopped = "early_stopping"
            break
        if budget_s > 0 and elapsed >= budget_s:
            stopped = "time"
            break
    if distributed:
        dist.barrier()
    return TrainResult(out / BEST_FILE, epoch, best, stopped, time.perf_counter() - t0, len(train_idx), len(val_idx))


@torch.no_grad()
def evaluate_loss(model: CMRCLIP, cache: ExamCache, idx: np.ndarray, bank: TextBank, dev: torch.device,
                  measured: torch.Tensor | None = None, batch_size: int = 128) -> float:
    """Validation InfoNCE over the whole validation set at once (all pairs as negatives), no augmentation."""
    model.eval()
    img, txt, grp = [], [], []
    for b in _batches(idx, batch_size, None, drop_last=False):
        px, mk = _load_batch(cache, b, dev)
        img.append(model.encode_exam(px, mk, None if measured is None else measured[b].to(dev)))
        hid, att, g = bank.batch(torch.from_numpy(b), dev)
        txt.append(model.encode_text_from_frozen(hid, att))
        grp.append(g)
    model.train()
    return float(clip_loss(torch.cat(img), torch.cat(txt), model.logit_scale.exp(), torch.cat(grp)))
