"""`cmr embed study PATH...` and `cmr embed text "..."`: unit vectors in the shared exam/report space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:  # numpy is imported where a command runs: `cmr --help` must not pay for it
    import numpy as np

embed_app = typer.Typer(help="Embed studies or report text into the shared CMR-CLIP space (L2-normalised).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(embed_app, name="embed")


def fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def load_model_or_fail(checkpoint: Optional[Path]):  # noqa: ANN202
    from cmr.model.checkpoint import CheckpointError, DEFAULT_CHECKPOINT, load_model

    try:
        return load_model(checkpoint)
    except (CheckpointError, FileNotFoundError) as exc:
        hint = "" if checkpoint or DEFAULT_CHECKPOINT.exists() else " (the shipped model is missing; train one with `cmr train`)"
        fail(f"{exc}{hint}")


def exams_or_fail(model, paths: list[Path]) -> tuple[list, "np.ndarray | None"]:  # noqa: ANN001 - CMRCLIP
    """Each study as an exam for `model`, with its measurements when the model reads them (None otherwise);
    the first unusable study ends the command with its reason."""
    from cmr.dicom import StudyLoadError, load_study
    from cmr.model.inference import study_measurements

    exams, studies = [], []
    for p in paths:
        try:
            studies.append(load_study(p))
            exams.append(studies[-1].to_exam(model.spec))
        except StudyLoadError as exc:
            fail(exc.reason if p.name in exc.reason else f"{p}: {exc.reason}")
    return exams, study_measurements(model, studies)


def _emit(names: list[str], vectors: np.ndarray, as_json: bool) -> None:
    import numpy as np

    if as_json:
        typer.echo(json.dumps([{"input": n, "dim": int(v.shape[0]), "vector": [round(float(x), 6) for x in v]}
                               for n, v in zip(names, vectors)]))
        return
    for n, v in zip(names, vectors):
        head = " ".join(f"{x:+.4f}" for x in v[:6])
        typer.echo(f"{n}\t[{head} ... ] ({v.shape[0]}-d, norm {np.linalg.norm(v):.3f})")


@embed_app.command("study")
def study(
    paths: list[Path] = typer.Argument(..., help="Study folders, zip files or single DICOM files."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Model checkpoint (default: shipped small model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: [{input, dim, vector}]."),
) -> None:
    """Embed whole studies (all views and sequences as one exam)."""
    from cmr.model.inference import embed_exams

    model = load_model_or_fail(checkpoint)
    _emit([str(p) for p in paths], embed_exams(model, *exams_or_fail(model, paths)), as_json)


@embed_app.command("text")
def text(
    texts: list[str] = typer.Argument(..., help="Report text or search phrases."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Model checkpoint (default: shipped small model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: [{input, dim, vector}]."),
) -> None:
    """Embed report text (impressions, search phrases, zero-shot prompts)."""
    from cmr.model.inference import check_texts, embed_texts

    try:
        check_texts(texts)
    except ValueError as exc:
        fail(str(exc))
    model = load_model_or_fail(checkpoint)
    _emit(list(texts), embed_texts(model, texts), as_json)
