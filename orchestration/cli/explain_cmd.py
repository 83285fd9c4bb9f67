"""`cmr explain QUERY RESULT`: why two studies are close in the embedding space, per view and per number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)


def chart(shares: list, cosine: float, out: Path, title: str) -> None:  # noqa: ANN001 - list[MatchShare]
    """Horizontal bars of each part's share of the similarity (views blue, measurements orange)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cmr.model.explain import part_label

    fig = Figure(figsize=(7, 0.32 * len(shares) + 1.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {"view": "#2e86c1", "measurement": "#e67e22", "exam": "#7f8c8d"}
    ax.barh(range(len(shares)), [100 * s.share for s in shares], color=[colours[s.kind] for s in shares])
    ax.set_yticks(range(len(shares)), [part_label(s.part) for s in shares])
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"share of the similarity (cosine {cosine:.3f}), %")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def explain(
    query: Path = typer.Argument(..., help="The query study (folder, zip or DICOM file)."),
    result: Path = typer.Argument(..., help="The study it matched."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Model checkpoint (default: shipped model)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the shares as a bar chart (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {cosine, parts: [{part, kind, contribution, share}]}."),
) -> None:
    """Split the similarity of two studies into what each view, sequence and measured number contributes."""
    from dataclasses import asdict

    from cmr.model.explain import exam_parts, explain_pair, explains, part_label
    from orchestration.cli.embed_cmd import exams_or_fail, fail, load_model_or_fail

    model = load_model_or_fail(checkpoint)
    if not explains(model):
        fail("this model pools its exam embedding with a CLS token, which mixes every view, so a match cannot be "
              "split per view; use a model trained with image.pooling = 'attention' (--checkpoint)")
    exams, measurements = exams_or_fail(model, [query, result])
    q, r = exam_parts(model, exams, measurements)
    shares = explain_pair(q, r)
    cosine = float(q.embedding @ r.embedding)
    if as_json:
        typer.echo(json.dumps({"cosine": round(cosine, 6), "parts": [asdict(s) for s in shares]}))
    else:
        typer.echo(f"cosine {cosine:.4f} between {query} and {result}")
        width = max(len(part_label(s.part)) for s in shares)
        for s in shares:
            typer.echo(f"  {part_label(s.part):<{width}}  {100 * s.share:+6.1f} %  ({s.contribution:+.4f})")
    if plot is not None:
        chart(shares, cosine, plot, f"Why {query.name} matched {result.name}")
        if not as_json:
            typer.echo(f"chart: {plot}")
