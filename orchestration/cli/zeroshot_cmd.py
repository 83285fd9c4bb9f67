"""`cmr zeroshot STUDY...`: score every finding and disease for a study from prompts alone, as a chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:  # numpy is imported where the command runs: `cmr --help` must not pay for it
    import numpy as np


def register(app: typer.Typer) -> None:
    app.command("zeroshot")(zeroshot)


def _chart(names: list[str], margins: dict[str, np.ndarray], out: Path, calibrated: bool) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cmr.eval.report import display_name

    keys = list(margins)
    centre = 0.5 if calibrated else 0.0
    fig = Figure(figsize=(7, 0.35 * len(keys) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    height = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [margins[k][i] for k in keys]
        ax.barh(np.arange(len(keys)) + i * height, vals, height=height, label=n,
                color=["#c0392b" if v > centre else "#7f8c8d" for v in vals] if len(names) == 1 else None)
    ax.set_yticks(np.arange(len(keys)) + 0.4 - height / 2, [display_name(k) for k in keys])
    ax.invert_yaxis()
    ax.axvline(centre, color="k", lw=0.8)
    if calibrated:
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability (zero-shot score, Platt-calibrated on labelled exams)")
        ax.set_title("Zero-shot findings (right of 0.5: more likely present than not)")
    else:
        ax.set_xlabel("cos(exam, 'present' prompts) - cos(exam, 'absent' prompts)")
        ax.set_title("Zero-shot findings (right of 0: closer to 'present'; uncalibrated)")
    if len(names) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def zeroshot(
    paths: list[Path] = typer.Argument(..., help="Study folders, zips or files."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: shipped small model)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a bar chart PNG here."),
    as_json: bool = typer.Option(False, "--json", help="Print {study: {finding: probability or margin}} as JSON."),
) -> None:
    """Zero-shot findings of studies: calibrated probabilities (or, for a checkpoint without a calibration
    file, how much closer each exam is to 'present' than to 'absent' prompts)."""
    from orchestration.cli.embed_cmd import exams_or_fail, load_model_or_fail
    from cmr.findings import classifier_for_model
    from cmr.eval.report import display_name
    from cmr.model.inference import embed_exams

    model = load_model_or_fail(checkpoint)
    clf = classifier_for_model(model, checkpoint)
    emb = embed_exams(model, *exams_or_fail(model, paths))
    calibrated = clf.calibration is not None
    values = clf.probabilities(emb) if calibrated else clf.raw_scores(emb)
    scores = {k: values[:, j] for j, k in enumerate(clf.keys)}
    names = [p.name for p in paths]
    if as_json:
        typer.echo(json.dumps({n: {k: round(float(v[i]), 4) for k, v in scores.items()} for i, n in enumerate(names)}))
    else:
        typer.echo(f"(probabilities; {clf.calibration_note()})" if calibrated else
                   "(raw margins: no calibration file beside the checkpoint; `cmr calibrate` makes one)")
        for i, n in enumerate(names):
            typer.echo(n)
            for k, v in sorted(scores.items(), key=lambda kv: -kv[1][i]):
                typer.echo(f"  {display_name(k):32s} {v[i]:+.3f}")
    if out is not None:
        _chart(names, scores, out, calibrated)
        typer.echo(f"chart -> {out}")
