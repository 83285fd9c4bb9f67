"""Train the segmenter on domain-randomised images drawn from the synthetic label bank.

Loss: cross-entropy + soft Dice over the three structures. AdamW, linear warm-up then cosine decay,
bfloat16 autocast where the CPU has it. Every `val_every` steps the checkpoint is measured on held-out bank
hearts (randomised, fixed seed), on rendered synthetic studies (the phantom's label maps) and on the CC0
Sunnybrook contours; `best.pt` is the checkpoint with the best mean of those Dice scores (never ACDC).
Resumable (`last.pt` holds the optimiser and the step); a wall-clock budget stops it cleanly.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cmr.quant.bank import LabelBank, build_bank
from cmr.quant.labels import N_CLASSES
from cmr.quant.metrics import mean_or_none
from cmr.quant.randomize import RandomizeConfig, Randomizer
from cmr.quant.segmenter import Segmenter, bf16_supported
from cmr.quant.unet import SegmenterConfig, UNet
from cmr.quant.validate import sunnybrook_agreement, synthetic_agreement
from cmr.realdata.sunnybrook import SunnybrookStack


@dataclass
class TrainConfig:
    steps: int = 6000
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    hearts: int = 600
    bank_seed: int = 0
    # The bank draws outflow tract, papillary muscles and RV proportions per heart. Off for the base run; the
    # shipped cmr-seg-small's fine-tune turned it on (docs/model/segmenter.md has both commands).
    vary_anatomy: bool = False
    seed: int = 0
    val_every: int = 500
    val_images: int = 256
    minutes: float | None = None
    model: SegmenterConfig = field(default_factory=SegmenterConfig)
    randomize: RandomizeConfig = field(default_factory=RandomizeConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes present in the batch."""
    p = torch.softmax(logits.float(), dim=1)[:, 1:]
    t = F.one_hot(target, N_CLASSES).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (p * t).sum(dim=(0, 2, 3))
    denom = p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (denom + 1.0)).mean()


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def bank_dice(net: UNet, images: torch.Tensor, target: torch.Tensor, bf16: bool) -> dict[str, float]:
    net.eval()
    preds = []
    for i in range(0, len(images), 64):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            preds.append(net(images[i:i + 64]).float().argmax(1))
    pred = torch.cat(preds)
    out = {}
    for name, c in (("rv_cavity", 1), ("lv_myocardium", 2), ("lv_cavity", 3)):
        p, t = pred == c, target == c
        out[name] = float(2 * (p & t).sum() / max(1, int(p.sum() + t.sum())))
    net.train()
    return out


def train_segmenter(out: Path, cfg: TrainConfig, *, bank_path: Path | None = None, synth_val: Path | None = None,
                    sunnybrook: list[SunnybrookStack] | None = None, resume: bool = False,
                    init: Path | None = None, progress: bool = True) -> Path:
    """Train into `out` (metrics.csv, best.pt, last.pt, config.json); returns the best checkpoint path.

    `init` starts from the weights of a segmenter checkpoint (fine-tuning: a new bank or randomisation on top
    of a trained model) instead of random ones; the optimiser and schedule start afresh."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    bank_path = bank_path or out / "bank.npz"
    if bank_path.is_file():
        bank = LabelBank.load(bank_path)
    else:
        bank = build_bank(cfg.hearts, seed=cfg.bank_seed, progress=progress, vary_anatomy=cfg.vary_anatomy)
        bank.save(bank_path)
    train_bank, val_bank = bank.split(0.08, seed=cfg.bank_seed)
    del bank
    rand = Randomizer(train_bank.maps, train_bank.pixel_mm, cfg.randomize, seed=cfg.seed)
    val_images, val_target = Randomizer(val_bank.maps, val_bank.pixel_mm, cfg.randomize, seed=12345)(cfg.val_images)
    bf16 = bf16_supported()

    net = UNet(cfg.model)
    if init is not None:
        from cmr.quant.segmenter import load_segmenter

        start = load_segmenter(init)
        if start.cfg != cfg.model:
            raise ValueError(f"{init} has another architecture ({start.cfg}) than the config ({cfg.model})")
        net.load_state_dict(start.net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, -1.0
    last = out / "last.pt"
    if resume and last.is_file():
        st = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(st["state_dict"])
        opt.load_state_dict(st["optimizer"])
        step, best = int(st["step"]), float(st["best"])
        rand.gen.manual_seed(cfg.seed + step)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    metrics_file = out / "metrics.csv"
    new_file = not (resume and metrics_file.is_file())
    fh = metrics_file.open("w" if new_file else "a", newline="")
    writer = csv.writer(fh)
    if new_file:
        writer.writerow(["step", "seconds", "loss", "lr", "bank_dice", "synth_dice", "sunnybrook_lv_dice",
                         "sunnybrook_myo_dice", "sunnybrook_lvef_mae", "synth_lvef_mae", "score"])
    t0 = time.perf_counter()
    meta = {"trained_on": f"synthetic label bank ({cfg.hearts} phantom hearts, seed {cfg.bank_seed}"
                          + (", anatomy varied" if cfg.vary_anatomy else "") + "), domain-randomised"
                          + (f", fine-tuned from {init.name}" if init is not None else "")
                          + "; no real image was used for training",
            "selected_on": "held-out bank hearts, rendered synthetic studies, Sunnybrook contours (CC0)",
            "machine": f"{platform.machine()} {platform.processor()}".strip(), "train_config": cfg.to_dict()}
    bar = tqdm(total=cfg.steps, initial=step, desc="train segmenter", unit="step", disable=not progress)
    running: list[float] = []
    net.train()
    try:
        while step < cfg.steps:
            if cfg.minutes is not None and time.perf_counter() - t0 > cfg.minutes * 60:
                break
            x, y = rand(cfg.batch)
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), y) + dice_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            running.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                row, score = _validate(net, cfg, val_images, val_target, bf16, synth_val, sunnybrook)
                writer.writerow([step, round(time.perf_counter() - t0, 1), round(float(np.mean(running[-cfg.val_every:])), 4),
                                 f"{_lr(step, cfg):.2e}", *row, round(score, 4)])
                fh.flush()
                seg = Segmenter(net, cfg.model, meta=meta)
                if score > best:
                    best = score
                    seg.save(out / "best.pt", {"step": step, "score": score})
                torch.save({"state_dict": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                            "best": best}, last)
                net.train()
                bar.write(f"step {step}: bank {row[0]:.3f} synth {row[1]} sunnybrook lv {row[2]} myo {row[3]} "
                          f"lvef mae {row[4]} / synth {row[5]}  score {score:.3f}")
    finally:
        bar.close()
        fh.close()
    if not (out / "best.pt").is_file():
        Segmenter(net, cfg.model, meta=meta).save(out / "best.pt", {"step": step})
    return out / "best.pt"


def _fmt(x: float | None) -> float | str:
    return "" if x is None else round(x, 4)


def _validate(net: UNet, cfg: TrainConfig, images: torch.Tensor, target: torch.Tensor, bf16: bool,
              synth_val: Path | None, sunnybrook: list[SunnybrookStack] | None) -> tuple[list[Any], float]:
    bank = float(np.mean(list(bank_dice(net, images, target, bf16).values())))
    seg = Segmenter(net, cfg.model, bf16=bf16)
    parts = [bank]
    synth_d = synth_mae = sb_lv = sb_myo = sb_mae = None
    if synth_val is not None:
        s = synthetic_agreement(seg, synth_val)
        synth_d = mean_or_none([*s["dice_ed"].values(), *s["dice_es"].values()])
        synth_mae = s["lvef_pct"]["mae"]
        if synth_d is not None:
            parts.append(synth_d)
    if sunnybrook:
        sb = sunnybrook_agreement(seg, sunnybrook)
        sb_lv, sb_myo, sb_mae = sb["lv_cavity_dice"], sb["lv_myocardium_dice"], sb["lvef"]["mae"]
        # Real images weigh as much as all the synthetic checks together.
        real = mean_or_none([sb_lv, sb_myo])
        if real is not None:
            parts = [float(np.mean(parts)), real]
    return [bank, _fmt(synth_d), _fmt(sb_lv), _fmt(sb_myo), _fmt(sb_mae), _fmt(synth_mae)], float(np.mean(parts))
