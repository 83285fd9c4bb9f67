"""`cmr train` (CMR-CLIP contrastive training) and `cmr cache` (exam tensors of a data directory)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from orchestration.cli.lazy import shipped_configs

if TYPE_CHECKING:  # the model package loads torch: imported where a command runs, not for `--help`
    from cmr.model.config import Config


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("cache")(cache)


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def _config(name: str, overrides: list[str]) -> Config:
    from cmr.model.config import Config, TrainConfig, load_config

    try:
        cfg = load_config(name)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise
    train_over = {}
    for item in overrides:  # --set epochs=3 --set lr=1e-3 (train section)
        key, sep, value = item.partition("=")
        if not sep or not hasattr(cfg.train, key):
            _fail(f"--set {item!r}: expected KEY=VALUE with KEY one of the train settings {sorted(vars(cfg.train))}")
        current = getattr(TrainConfig(), key)  # the declared type (a JSON config may hold 20 for 20.0)
        try:  # every train setting is a number, a bool or a list of numbers: JSON syntax
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        if isinstance(current, float) and type(parsed) is int:
            parsed = float(parsed)
        if type(parsed) is not type(current):
            _fail(f"--set {item!r}: {key} takes a {type(current).__name__} value such as {json.dumps(current)}")
        train_over[key] = parsed
    return Config(cfg.model, replace(cfg.train, **train_over))


def train(
    config: str = typer.Option("small", "--config", help=f"Model config name ({shipped_configs('cmr.model')}) or JSON path."),
    data: Path = typer.Option(..., "--data", help="Data directory with reports.jsonl and the study folders."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints (best.pt, last.pt) and metrics.csv."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
    set_: list[str] = typer.Option([], "--set", help="Override a train setting, e.g. --set epochs=5 --set max_minutes=2."),
    workers: int = typer.Option(0, "--workers", help="Processes for building the exam cache (0 = one per core)."),
    objective: str = typer.Option("clip", "--objective",
                                  help="clip (exam-report contrastive) or supervised (the label-trained ceiling baseline)."),
) -> None:
    """Train CMR-CLIP: exams and their impressions into one embedding space."""
    from cmr.data.records import read_records
    from cmr.train.trainer import TrainingError, train as run

    cfg = _config(config, set_)
    try:
        read_records(data)
        if objective == "supervised":
            from cmr.train.supervised import train_supervised

            sup = train_supervised(cfg, data, out, workers=workers)
            typer.echo(f"{sup.epochs} epochs, {sup.elapsed_s / 60:.1f} min, best val loss {sup.best_val_loss:.4f} -> {sup.checkpoint}")
            return
        if objective != "clip":
            _fail(f"--objective must be clip or supervised, not {objective!r}")
        result = run(cfg, data, out, resume=resume, workers=workers)
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"{result.epochs} epochs ({result.stopped}), {result.elapsed_s / 60:.1f} min, "
               f"best val loss {result.best_val_loss:.4f} -> {result.best_checkpoint}")


def cache(
    data: Path = typer.Argument(..., help="Data directory with reports.jsonl."),
    config: str = typer.Option("small", "--config", help="Model config whose exam spec to cache."),
    workers: int = typer.Option(0, "--workers"),
) -> None:
    """Load every study of a data directory once and cache its exam tensor for training and evaluation."""
    from cmr.data.cache import build_cache

    cfg = _config(config, [])
    try:
        c = build_cache(data, cfg.model.exam, workers=workers)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"{int(c.ok.sum())} of {len(c.records)} studies cached in {c.root}; {len(c.errors)} rejected")
    for folder, reason in list(c.errors.items())[:20]:
        typer.echo(f"  rejected {folder}: {reason}")
