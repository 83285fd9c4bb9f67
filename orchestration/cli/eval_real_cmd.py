"""`cmr eval-real`: the real-data benchmark of a checkpoint (and the untrained model) on ACDC, evaluation only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("eval-real")(eval_real)


def eval_real(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: shipped small model)."),
    out: Path = typer.Option(Path("real-data.json"), "--out", help="results JSON to write."),
    docs: Optional[Path] = typer.Option(None, "--docs", help="Also write real-data.md and its figures here."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Only N patients, taken round-robin over the groups (a quick run)."),
    untrained: bool = typer.Option(True, "--untrained/--no-untrained",
                                   help="Also evaluate the same architecture, untrained (seed 0)."),
    data: Optional[Path] = typer.Option(None, "--data", help="An ACDC-style folder (labels.jsonl, patientNNN.npz, "
                                        "to_dicom.py); default <realdata_dir>/acdc ($CMR_REALDATA_DIR)."),
    sections: bool = typer.Option(True, "--sections/--no-sections", help="Also run the plugged-in sections "
                                  "(quantification: cmr.eval.real_quant); --no-sections: embeddings only."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr."),
) -> None:
    """Zero-shot AUROC, frozen-embedding probe and neighbour group agreement on real ACDC scans, beside the
    untrained model and the checkpoint's synthetic held-out figures (ACDC is never used to tune anything)."""
    from cmr.eval.real import real_results_to_markdown, run_real_evaluation, write_real_docs
    from cmr.model.checkpoint import CheckpointError
    from cmr.realdata.acdc import AcdcLayoutError, RealDataMissingError

    try:
        results = run_real_evaluation(checkpoint, data=data, limit=limit, untrained=untrained, docs_dir=docs,
                                      sections=None if sections else {}, progress=progress)
    except (RealDataMissingError, AcdcLayoutError, CheckpointError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if docs is not None:
        written = write_real_docs(results, docs)
        typer.echo(f"report -> {', '.join(str(p) for p in written)}")
    else:
        real_results_to_markdown(results)  # the renderer must accept what was written
    ck, un = results["models"]["checkpoint"], results["models"].get("untrained")
    d = results["data"]
    typer.echo(f"ACDC: {d['n_embedded']}/{d['n_selected']} patients embedded"
               + (f", {len(results['failures'])} not evaluated" if results["failures"] else ""))
    for role, m in (("checkpoint", ck), ("untrained", un)):
        if not m or m.get("n", 0) == 0:
            continue
        knn = m["knn"]
        typer.echo(f"  {m['label']:28s} zero-shot mean {_f(m['zero_shot_mean'])}  probe mean {_f(m['probe_mean'])}  "
                   f"kNN@1 {_f(knn['k=1']['agreement'])}  kNN@5 {_f(knn['k=5']['agreement'])} "
                   f"(chance {_f(knn['chance'])})")
    for name, reason in results["failures"].items():
        typer.echo(f"  not evaluated: {name}: {reason}", err=True)
    errors = {k: v for k, v in results["sections"].items() if v.get("status") == "error"}
    for name, sec in errors.items():
        typer.echo(f"error: section {name} failed: {sec['error']}", err=True)
    typer.echo(f"results -> {out} ({results['meta']['timings_s']['total']} s)")
    if errors:
        raise typer.Exit(1)


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"
