"""`cmr train-generator`: train CMR-TARGET (the report-drafting decoder) on the frozen CMR-CLIP exam tokens.

Registered by `orchestration.cli.main` with `generator_cmd.register(app)`.
"""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

import typer

from orchestration.cli.lazy import shipped_configs

if TYPE_CHECKING:  # the generator package loads torch: imported where the command runs, not for `--help`
    from cmr.generator.config import TargetConfig


def register(app: typer.Typer) -> None:
    app.command("train-generator")(train_generator)


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def _config(name: str, overrides: list[str]) -> TargetConfig:
    from cmr.generator.config import apply_overrides, load_target_config

    try:
        return apply_overrides(load_target_config(name), overrides)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise


def train_generator(
    config: str = typer.Option("target_small", "--config",
                               help=f"CMR-TARGET config name ({shipped_configs('cmr.generator')}) or JSON path."),
    data: Path = typer.Option(..., "--data", help="Data directory with reports.jsonl and the study folders."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints (best.pt, last.pt) and metrics.csv."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting with JSON: --set train.epochs=5 "
                                   "--set max_minutes=2 --set model.layers=2 --set clip='\"runs/clip/best.pt\"'."),
    workers: int = typer.Option(0, "--workers", help="Processes for building the exam cache (0 = one per core)."),
    tune_data: Path | None = typer.Option(None, "--tune-data", help="Held-out studies (e.g. the in-style test "
                                          "set) to tune the finding-plan thresholds on after training; default: "
                                          "the validation split."),
) -> None:
    """Train CMR-TARGET: a decoder that drafts the impression sentence by sentence from the CMR-CLIP exam features."""
    from cmr.data.records import read_records
    from cmr.generator.checkpoint import GeneratorCheckpointError
    from cmr.generator.train import train_generator as run
    from cmr.train.trainer import TrainingError

    cfg = _config(config, set_)
    try:
        read_records(data)
        result = run(cfg, data, out, resume=resume, workers=workers)
        if tune_data is not None and cfg.model.plan:
            from cmr.generator.tuning import tune_checkpoint

            read_records(tune_data)
            tuned = tune_checkpoint(result.best_checkpoint, tune_data, workers=workers)
            typer.echo("plan thresholds tuned on " + str(tune_data) + ": " + ", ".join(
                f"{k} {v:.2f}" for k, v in tuned.thresholds.items()))
    except (TrainingError, GeneratorCheckpointError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    f1 = "" if result.best_val_macro_f1 is None else f", val clinical F1 {result.best_val_macro_f1:.3f}"
    typer.echo(f"{result.epochs} epochs ({result.stopped}), {result.elapsed_s / 60:.1f} min, best val loss "
               f"{result.best_val_loss:.4f}{f1} (CLIP {result.clip_version}) -> {result.best_checkpoint}")
