"""`cmr quant train|validate`: train the segmentation model of `cmr measure` and check it on the references
that may be used for model choice (synthetic label maps, Sunnybrook contours; never ACDC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    quant = typer.Typer(help="The quantification model (segmentation of LV, myocardium and RV).", no_args_is_help=True)
    app.add_typer(quant, name="quant")

    @quant.command("train")
    def train(
        out: Path = typer.Option(..., "--out", help="Run folder: bank.npz, metrics.csv, best.pt, last.pt."),
        steps: int = typer.Option(6000, help="Optimiser steps."),
        hearts: int = typer.Option(600, help="Synthetic hearts in the label bank (about 42 planes each)."),
        batch: int = typer.Option(16, help="Images per step."),
        minutes: Optional[float] = typer.Option(None, help="Wall-clock budget; stops cleanly when spent."),
        val_every: int = typer.Option(500, help="Validate and checkpoint every N steps."),
        synth_val: Optional[Path] = typer.Option(None, help="A `cmr synth` folder with label maps for validation "
                                                 "(default: RUN/synth_val, written on first use, held-out style)."),
        sunnybrook: Optional[Path] = typer.Option(None, help="Sunnybrook folder (CC0) for validation (default: "
                                                  "the shared real data when present, else tests/data)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from RUN/last.pt."),
        seed: int = typer.Option(0, help="Randomisation seed."),
        vary_anatomy: bool = typer.Option(False, "--vary-anatomy", help="Draw outflow tract, papillary muscles "
                                          "and RV proportions per bank heart (a new bank: use a new RUN)."),
        papillary_fraction: float = typer.Option(0.0, help="Share of images given dark papillary blobs in the "
                                                 "LV cavity."),
        context_swap_fraction: float = typer.Option(0.0, help="Share of images whose context outside the heart "
                                                    "comes from another bank map (breaks the phantom's tie of "
                                                    "thorax to level)."),
        pool_spread_fraction: float = typer.Option(0.0, help="Share of images whose blood pools get independent "
                                                   "means instead of one shared draw."),
        init: Optional[Path] = typer.Option(None, help="Start from this segmenter checkpoint's weights "
                                            "(fine-tuning); the optimiser and schedule start afresh."),
        threads: int = typer.Option(0, help="torch threads (0: torch's default)."),
    ) -> None:
        """Train on domain-randomised images drawn from synthetic label maps; best.pt is chosen on the
        synthetic and Sunnybrook validation (install it with `cp RUN/best.pt cmr/model/weights/cmr-seg-small.pt`)."""
        import torch

        from cmr.quant.randomize import RandomizeConfig
        from cmr.quant.train import TrainConfig, train_segmenter
        from cmr.realdata.sunnybrook import find_stacks
        from cmr.synth.generate import generate_dataset

        if threads:
            torch.set_num_threads(threads)
        cfg = TrainConfig(steps=steps, hearts=hearts, batch=batch, minutes=minutes, val_every=val_every, seed=seed,
                          vary_anatomy=vary_anatomy,
                          randomize=RandomizeConfig(papillary_fraction=papillary_fraction,
                                                    context_swap_fraction=context_swap_fraction,
                                                    pool_spread_fraction=pool_spread_fraction))
        synth_val = synth_val or out / "synth_val"
        if not (synth_val / "reports.jsonl").is_file():
            generate_dataset(synth_val, 6, 101, workers=0, scanner="ge_premier_3T")
        sb_root = sunnybrook or _default_sunnybrook()
        stacks = find_stacks(sb_root) if sb_root and sb_root.is_dir() else []
        typer.echo(f"validation: {synth_val} (synthetic), {len(stacks)} Sunnybrook stacks from {sb_root}")
        best = train_segmenter(out, cfg, synth_val=synth_val, sunnybrook=stacks, resume=resume, init=init)
        typer.echo(f"best checkpoint -> {best}")

    @quant.command("validate")
    def validate(
        checkpoint: Optional[Path] = typer.Option(None, help="Segmentation checkpoint (default: the shipped one)."),
        synth: Optional[Path] = typer.Option(None, help="A `cmr synth` folder with label maps."),
        sunnybrook: Optional[Path] = typer.Option(None, help="Sunnybrook folder (default: shared, else tests/data)."),
        limit: Optional[int] = typer.Option(None, help="At most N synthetic studies."),
    ) -> None:
        """Dice and LVEF agreement on the synthetic label maps and the Sunnybrook contours, as JSON."""
        from cmr.quant.segmenter import load_segmenter
        from cmr.quant.validate import sunnybrook_agreement, synthetic_agreement
        from cmr.realdata.sunnybrook import find_stacks

        seg = load_segmenter(checkpoint)
        out: dict = {"segmenter": seg.version}
        if synth is not None:
            res = synthetic_agreement(seg, synth, limit=limit, progress=True)
            out["synthetic"] = {k: v for k, v in res.items() if k != "studies"}
        sb_root = sunnybrook or _default_sunnybrook()
        if sb_root is not None and sb_root.is_dir():
            out["sunnybrook"] = sunnybrook_agreement(seg, find_stacks(sb_root), progress=True)
        typer.echo(json.dumps(out, indent=2, default=str))


def _default_sunnybrook() -> Path | None:
    from cmr.realdata import realdata_root

    shared = realdata_root() / "sunnybrook"
    if shared.is_dir():
        return shared
    in_repo = Path(__file__).resolve().parents[2] / "tests" / "data" / "sunnybrook"
    return in_repo if in_repo.is_dir() else None
