"""Training throughput (studies/s) and peak memory of a model config on this machine's device.

Random exam tensors and cached-text-shaped inputs, so it measures the model, not data loading:

    .venv/bin/python bench/train_throughput.py --config small --batch 64 --steps 5
    .venv/bin/python bench/train_throughput.py --config base --batch 8 --steps 10   # on a GPU (AMP bf16)

Appends a row to docs/benchmarks/train_throughput.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import torch

from cmr.model import create_model, load_config
from cmr.model.loss import clip_loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--text-tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/train_throughput.md"))
    args = ap.parse_args()
    cfg = load_config(args.config)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = create_model(cfg).to(dev).train()
    spec = cfg.model.exam
    px = torch.rand(args.batch, spec.length, spec.image_size, spec.image_size, device=dev)
    mk = torch.ones(args.batch, spec.length, dtype=torch.bool, device=dev)
    hid = torch.randn(args.batch, args.text_tokens, model.text.width, device=dev)
    att = torch.ones(args.batch, args.text_tokens, dtype=torch.long, device=dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    amp = cfg.train.amp and dev.type == "cuda"
    times = []
    for step in range(args.steps + 1):  # the first step warms up (allocator, kernels)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            img, txt = model(px, mk, hid, att)
            loss = clip_loss(img.float(), txt.float(), model.logit_scale.exp())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - t0)
    sps = args.batch / (sum(times) / len(times))
    mem = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if dev.type == "cuda" else "n/a (CPU)"
    device = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    row = (f"| {date.today()} | {cfg.model.name} | {device} | {args.batch} | {spec.length}x{spec.image_size}^2 | "
           f"{'bf16' if amp else 'fp32'} | {n_params:.1f} M | {sps:.3g} | {mem} |")
    print(row)
    if not args.out.exists():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# Training throughput (forward + backward + AdamW step, random inputs)\n\n"
                            "Produced by `bench/train_throughput.py`.\n\n"
                            "| date | model | device | batch | frames x size | precision | trainable params | studies/s | peak memory |\n"
                            "|---|---|---|---|---|---|---|---|---|\n")
    with args.out.open("a") as fh:
        fh.write(row + "\n")


if __name__ == "__main__":
    main()
