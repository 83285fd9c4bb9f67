"""`cmr draft STUDY`: a report draft from the running generator service, printed as it is streamed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

_STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")


def register(app: typer.Typer) -> None:
    app.command("draft")(draft)
    app.command("eval-drafts")(eval_drafts)


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def draft(
    study: str = typer.Argument(..., help="A study key, or a study folder/zip the generator may read "
                                "(under CMR_STUDY_ROOTS on its machine)."),
    mode: str = typer.Option("target", "--mode", help="target (CMR-TARGET), retrieval (nearest report) or "
                             "consensus (what the k nearest agree on)."),
    strategy: str = typer.Option("greedy", "--strategy", help="CMR-TARGET decoding: greedy, beam or sample."),
    beam_width: int = typer.Option(0, "--beam-width", help="beam search width (0 = default 4, at most 8)."),
    temperature: float = typer.Option(0.0, "--temperature", help="sampling temperature (0 = 1.0; at most 2)."),
    seed: int = typer.Option(0, "--seed", help="sampling seed (same seed, same draft)."),
    neighbours: int = typer.Option(0, "--neighbours", help="consensus: k nearest studies (0 = server default)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
    url: Optional[str] = typer.Option(None, help="Generator service (default CMR_GENERATOR_URL)."),
) -> None:
    """Draft the impression of a study, sentence by sentence as it is written."""
    import grpc

    from generator_svc.client import MODES, STRATEGIES, GeneratorClient

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}")
    if strategy not in STRATEGIES:
        _fail(f"--strategy must be one of {', '.join(STRATEGIES)}")
    if _STUDY_KEY.match(study):
        where: dict[str, object] = {"study_key": study}
    elif Path(study).exists():
        where = {"path": str(Path(study).resolve())}
    else:
        _fail(f"{study}: neither a study key nor an existing study folder/zip")
    options = dict(strategy=strategy, beam_width=beam_width, temperature=temperature, seed=seed,
                   neighbours=neighbours)
    try:
        with GeneratorClient(url) as client:
            for s in client.generate(mode, **options, **where):
                if as_json:
                    typer.echo(json.dumps({"index": s.index, "text": s.text, "findings": list(s.findings),
                                           "sources": list(s.sources), "last": s.last, "model": s.model_version}))
                else:
                    typer.echo(f"{s.index}. {s.text}")
    except grpc.RpcError as exc:
        hint = " (is `cmr serve generator` running?)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        _fail(f"{exc.code().name}: {exc.details()}{hint}")


def eval_drafts(
    generator: Path = typer.Option(..., "--generator", help="CMR-TARGET checkpoint."),
    index: Path = typer.Option(..., "--index", help="Data directory whose studies and impressions retrieval "
                               "draws from (the training set)."),
    test: Path = typer.Option(..., "--test", help="Data directory of the test studies (reports.jsonl with labels)."),
    out: Path = typer.Option(Path("docs/model"), "--out", help="Folder for drafting.md, .json and .png."),
    neighbours: int = typer.Option(5, "--neighbours", min=1, max=50, help="k of the consensus mode."),
    decoding: str = typer.Option("greedy", "--decoding", help="CMR-TARGET decoding: greedy, beam or sample."),
    max_studies: int = typer.Option(0, "--max-studies", min=0, help="Score only the first N test studies (0 = all)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = default)."),
) -> None:
    """Score retrieval, consensus and CMR-TARGET drafts on a test set: BLEU-1..4, ROUGE-L, METEOR, clinical F1
    per finding, disease accuracy and hallucination rate; writes a report with a chart."""
    from cmr.data.records import read_records
    from cmr.generator import GeneratorCheckpointError
    from cmr.machine import describe_machine
    from generator_svc.evaluation import target_checks, write_report
    from generator_svc.evaluation import evaluate as run

    if decoding not in ("greedy", "beam", "sample"):
        _fail("--decoding must be greedy, beam or sample")
    try:
        read_records(index)
        read_records(test)
        results = run(generator, index, test, neighbours=neighbours, max_studies=max_studies or None,
                      decoding=decoding, threads=threads)
    except (GeneratorCheckpointError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    path = write_report(results, out, describe_machine())
    for name, value, ok in target_checks(results):
        typer.echo(f"{'met    ' if ok else 'NOT MET'}  {name}: {value}")
    typer.echo(f"report: {path}")
