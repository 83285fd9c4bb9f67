"""`cmr draft STUDY`: a report draft from the running generator service, printed as it is streamed. The service
grounds every draft in the study's measurements; `--show-grounding` prints what it replaced, removed, added or
flagged, and where the measurements came from (the stream's grounding fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


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
    show_grounding: bool = typer.Option(False, "--show-grounding", help="After the draft, where the measurements "
                                        "came from and what grounding in them changed: each number replaced, "
                                        "removed or added, statements flagged for review (with --json: one more "
                                        "object, {\"grounding\": ...})."),
    url: Optional[str] = typer.Option(None, help="Generator service (default CMR_GENERATOR_URL)."),
) -> None:
    """Draft the impression of a study, sentence by sentence as it is written, stating the study's measured
    LVEF, volumes and mass (never numbers the draft guessed)."""
    import grpc

    from cmr.rpc.keys import is_study_key
    from generator_svc.client import MODES, STRATEGIES, GeneratorClient

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}")
    if strategy not in STRATEGIES:
        _fail(f"--strategy must be one of {', '.join(STRATEGIES)}")
    if is_study_key(study):
        where: dict[str, object] = {"study_key": study}
    elif Path(study).exists():
        where = {"path": str(Path(study).resolve())}
    else:
        _fail(f"{study}: neither a study key nor an existing study folder/zip")
    options = dict(strategy=strategy, beam_width=beam_width, temperature=temperature, seed=seed,
                   neighbours=neighbours)
    try:
        with GeneratorClient(url) as client:
            stream = client.stream(mode, **options, **where)
            for s in stream:
                if as_json:
                    typer.echo(json.dumps({"index": s.index, "text": s.text, "findings": list(s.findings),
                                           "sources": list(s.sources), "last": s.last, "model": s.model_version,
                                           "kind": s.kind, "changes": list(s.changes), "review": list(s.review)}))
                else:
                    typer.echo(f"{s.index}. {s.text}")
            if show_grounding:
                if as_json:
                    typer.echo(json.dumps({"grounding": stream.grounding}))
                else:
                    typer.echo("\n".join(grounding_lines(stream.grounding)))
    except grpc.RpcError as exc:
        hint = " (is `cmr serve generator` running?)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        _fail(f"{exc.code().name}: {exc.details()}{hint}")


def _change_note(c: dict[str, str]) -> str:
    name = c["measure"]
    if c["action"] == "replaced":
        return f"{name} {c['before']} -> {c['after']}" if c["before"] != c["after"] else \
            f"{name} {c['after']} (as measured)"
    if c["action"] == "removed":
        return f"{name} {c['before']} removed ({c['reason']})"
    return f"{name} {c['after']} added"


def grounding_lines(g: dict[str, Any] | None) -> list[str]:
    """What grounding did to the draft (`DraftStream.grounding`, read from the streamed sentences), for people."""
    if not g:
        return ["", "grounding: the service sent no grounding fields (an older server?)"]
    where = {"request": "given with the request", "index": "from the index", "measured": "measured by this server",
             "none": "none"}.get(g.get("source", ""), g.get("source", ""))
    head = f"measurements: {where}"
    if g.get("source") == "none":
        head += f" ({g.get('reason', '')}): the draft states no LVEF, volumes or mass"
    else:
        head += f", quality {g.get('quality', '')}" + (f" ({'; '.join(g['quality_reasons'])})"
                                                      if g.get("quality_reasons") else "")
        head += f", segmenter {g.get('segmenter') or '-'}"
    out = ["", head]
    for s in g.get("sentences", []):
        notes = [_change_note(c) for c in s.get("changes", [])]
        notes += [f"REVIEW {r}" for r in s.get("review", [])]
        if notes or s.get("kind", "draft") != "draft":
            label = {"measurements": " (measurement sentence)", "note": " (note)"}.get(s.get("kind", ""), "")
            out.append(f"  {s['index']}.{label}" + (" " + "; ".join(notes) if notes else ""))
    dropped = g.get("dropped", [])
    if dropped:
        out.append("  dropped with their sentences: " + "; ".join(_change_note(c) for c in dropped))
    return out


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
    measure_studies: int = typer.Option(100, "--measure-studies", min=-1, help="Measure the first N test studies "
                                        "with the segmenter and score the numbers the drafts state, before and "
                                        "after grounding (0 = skip, -1 = all; cached in TEST/cache/measurements)."),
    segmenter: Optional[Path] = typer.Option(None, "--segmenter", help="Segmentation checkpoint for the "
                                             "measurements (default: the shipped cmr-seg-small)."),
    measure_workers: int = typer.Option(0, "--measure-workers", min=0, help="Processes measuring studies "
                                        "(0 = up to 2, one per core)."),
) -> None:
    """Score retrieval, consensus and CMR-TARGET drafts on a test set: BLEU-1..4, ROUGE-L, METEOR, clinical F1
    per finding, disease accuracy and hallucination rate; writes a report with a chart. Then the numbers the
    drafts state (LVEF, RVEF, volumes, mass) against the segmenter's measurements and the ground truth, before
    and after grounding."""
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
        from generator_svc.grounding_eval import default_workers

        results = run(generator, index, test, neighbours=neighbours, max_studies=max_studies or None,
                      decoding=decoding, threads=threads, measure_studies=measure_studies, segmenter=segmenter,
                      measure_workers=measure_workers or default_workers())
    except (GeneratorCheckpointError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    path = write_report(results, out, describe_machine())
    for name, value, ok in target_checks(results):
        typer.echo(f"{'met    ' if ok else 'NOT MET'}  {name}: {value}")
    g = results.get("grounding")
    if g:
        for mode, r in g["modes"].items():
            parts = []
            for when in ("before", "after"):
                c = r[when]["lvef_pct"]
                truth = f"{c['truth_within']}/{c['truth_compared']}" if c["truth_compared"] else "-"
                parts.append(f"{when} {c['stated']}/{c['drafts']} state an LVEF, {c['measured_within']}/"
                             f"{c['measured_compared']} within 5 of measured, {truth} of truth")
            typer.echo(f"LVEF {mode}: " + "; ".join(parts))
    typer.echo(f"report: {path}")
