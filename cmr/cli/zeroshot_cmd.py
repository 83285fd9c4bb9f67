"""`cmr zeroshot STUDY...`: score every finding and disease for a study from prompts alone, as a chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer


def register(app: typer.Typer) -> None:
    app.command("zeroshot")(zeroshot)


def finding_margins(model, image_emb: np.ndarray, phrasing: str = "heldout") -> dict[str, np.ndarray]:  # noqa: ANN001
    """Per finding/disease: cos(exam, positive prompts) - cos(exam, negative prompts), for each exam."""
    from cmr.eval.metrics import zero_shot_scores
    from cmr.eval.run import _prompt_keys
    from cmr.model.inference import embed_texts

    return {key: zero_shot_scores(image_emb, embed_texts(model, prompts(True)), embed_texts(model, prompts(False)))
            for key, prompts in _prompt_keys(phrasing)}


def _chart(names: list[str], margins: dict[str, np.ndarray], out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cmr.eval.report import display_name

    keys = list(margins)
    fig = Figure(figsize=(7, 0.35 * len(keys) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    height = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [margins[k][i] for k in keys]
        ax.barh(np.arange(len(keys)) + i * height, vals, height=height, label=n,
                color=["#c0392b" if v > 0 else "#7f8c8d" for v in vals] if len(names) == 1 else None)
    ax.set_yticks(np.arange(len(keys)) + 0.4 - height / 2, [display_name(k) for k in keys])
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("cos(exam, 'present' prompts) - cos(exam, 'absent' prompts)")
    ax.set_title("Zero-shot findings (right of 0: closer to 'present')")
    if len(names) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def zeroshot(
    paths: list[Path] = typer.Argument(..., help="Study folders, zips or files."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: shipped small model)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a bar chart PNG here."),
    as_json: bool = typer.Option(False, "--json", help="Print {study: {finding: margin}} as JSON."),
) -> None:
    """Zero-shot findings of studies: how much closer each exam is to 'present' than to 'absent' prompts."""
    from cmr.cli.embed_cmd import _model, exams_or_fail
    from cmr.eval.report import display_name
    from cmr.model.inference import embed_exams

    model = _model(checkpoint)
    margins = finding_margins(model, embed_exams(model, exams_or_fail(model, paths)))
    names = [p.name for p in paths]
    if as_json:
        typer.echo(json.dumps({n: {k: round(float(v[i]), 4) for k, v in margins.items()} for i, n in enumerate(names)}))
    else:
        for i, n in enumerate(names):
            typer.echo(n)
            for k, v in sorted(margins.items(), key=lambda kv: -kv[1][i]):
                typer.echo(f"  {display_name(k):32s} {v[i]:+.3f}")
    if out is not None:
        _chart(names, margins, out)
        typer.echo(f"chart -> {out}")
