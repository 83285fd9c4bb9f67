"""`cmr eval`: zero-shot, few-shot, retrieval and robustness of a checkpoint on labelled test data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)


def eval_(
    data: list[Path] = typer.Option(..., "--data", help="Labelled test data directory (repeat for several)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: shipped small model)."),
    out: Path = typer.Option(..., "--out", help="results.json to write."),
    docs: Optional[Path] = typer.Option(None, "--docs", help="Also write evaluation.md and figures to this folder."),
    untrained: bool = typer.Option(True, "--untrained-baseline/--no-untrained-baseline",
                                   help="Also evaluate the same architecture, untrained (seed 0)."),
    draws: int = typer.Option(20, "--draws", min=1, help="Few-shot draws per shot count."),
    supervised: Optional[Path] = typer.Option(None, "--supervised",
                                              help="A supervised checkpoint (cmr train --objective supervised): the ceiling."),
    numbers: str = typer.Option("reference", "--numbers",
                                help="A measuring model's numbers: reference (the records', a perfect segmentation) or "
                                     "measured (the shipped segmenter's, as served; kept beside each study)."),
    silver: bool = typer.Option(False, "--silver", help="The data's labels are silver (an imported archive, "
                                "`cmr dataset import`): every table says so."),
) -> None:
    """Evaluate CMR-CLIP; prints the target checks and writes results (and a markdown report with --docs)."""
    from cmr.eval.report import plot_few_shot, plot_zero_shot, results_to_markdown, target_checks
    from cmr.eval.run import run_evaluation
    from cmr.model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, create_model, load_model, read_checkpoint

    if numbers not in ("reference", "measured"):
        typer.echo(f"error: --numbers must be reference or measured, not {numbers!r}", err=True)
        raise typer.Exit(2)
    from cmr.archive.silver import has_silver_labels, mark_silver

    silver_dirs = [d for d in data if has_silver_labels(d)]
    if silver_dirs and not silver:
        typer.echo(f"error: {', '.join(map(str, silver_dirs))}: silver labels (an imported archive); pass --silver "
                   "so that every table says so", err=True)
        raise typer.Exit(2)
    if silver and len(silver_dirs) != len(data):
        others = [str(d) for d in data if d not in silver_dirs]
        typer.echo(f"error: --silver, but {', '.join(others)} hold reader labels, not silver ones", err=True)
        raise typer.Exit(2)
    ckpt = checkpoint or DEFAULT_CHECKPOINT
    try:
        model = load_model(ckpt)
        meta = read_checkpoint(ckpt).get("meta", {})
    except (CheckpointError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    models = {model.cfg.name: model}
    if untrained:
        models[f"{model.cfg.name} untrained"] = create_model(model.cfg, seed=0).eval()
    sup = {}
    if supervised is not None:
        from cmr.train.supervised import load_supervised

        try:
            sup = {f"{model.cfg.name} supervised (ceiling)": load_supervised(supervised)}
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a usage error here
            typer.echo(f"error: {supervised}: {exc}", err=True)
            raise typer.Exit(2)
    try:
        results = run_evaluation(models, data, draws=draws, supervised=sup, numbers=numbers,  # type: ignore[arg-type]
                                 meta={"checkpoint": str(ckpt), "training": meta,
                                       **({"labels": "silver (cmr.reports.labeller)"} if silver else {})})
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        markdown = results_to_markdown(results)
        (docs / "evaluation.md").write_text(mark_silver(markdown) if silver else markdown)
        plot_zero_shot(results, docs / "zero_shot.png")
        plot_few_shot(results, docs / "few_shot.png")
    for c in target_checks(results):
        typer.echo(f"{'PASS' if c.passed else 'FAIL'}  {'[silver labels] ' if silver else ''}{c.name}: {c.detail}")
    typer.echo(f"results -> {out}")
