"""`cmr bench encoder|search|ingest|quant|text|load|crash|fuzz`: the benchmarks of bench/, results and plots written to docs/benchmarks/."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Optional

import typer


SECURITY_HELP = ("on: TLS + bearer tokens as deployed (a CA and keys made for the run); off: plaintext, auth off "
                 "(a stated development measurement)")


def _on_off(security: str) -> bool:
    if security not in ("on", "off"):
        raise typer.BadParameter("--security is on or off")
    return security == "on"


def _print_json(result: Any) -> None:
    typer.echo(json.dumps(asdict(result) if is_dataclass(result) else result, indent=2, default=str))


def register(app: typer.Typer) -> None:
    bench = typer.Typer(help="Benchmarks; results, tables and plots go to docs/benchmarks/.", no_args_is_help=True)
    app.add_typer(bench, name="bench")

    @bench.command("encoder")
    def encoder(quick: bool = typer.Option(False, "--quick", help="4 studies, 4 s per point (about 2 minutes)"),
                security: str = typer.Option("on", help=SECURITY_HELP),
                as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
                out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """Studies/s and p50/p99 latency at concurrency 1, 8, 32, dynamic batching on/off, vs the raw model."""
        from bench.encoder import run

        result = run(quick=quick, out_dir=out, security=_on_off(security))
        if as_json:
            _print_json(result)

    @bench.command("search")
    def search(quick: bool = typer.Option(False, "--quick", help="100k vectors only"),
               as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
               out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """Qdrant Edge (HNSW, +int8), qdrant-client local mode and numpy exact at 100k and 1M vectors."""
        from bench.search import run

        result = run(quick=quick, **({"out_dir": out} if out else {}))
        if as_json:
            _print_json(result)

    @bench.command("ingest")
    def ingest(quick: bool = typer.Option(False, "--quick", help="6 studies instead of 30 (a few minutes)"),
               security: str = typer.Option("on", help=SECURITY_HELP),
               as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
               out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """Studies/min end to end through Kafka with 1 and 2 ingest workers, and the time per stage."""
        from bench.ingest import run

        result = run(quick=quick, out_dir=out, security=_on_off(security))
        if as_json:
            _print_json(result)

    @bench.command("quant")
    def quant(quick: bool = typer.Option(False, "--quick", help="2 synthetic studies (+1 Sunnybrook), 2 repeats"),
              as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
              out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """Seconds to segment and measure one study (target < 2 s on 2 cores), by stage, bf16 and fp32."""
        from bench.quant import run

        result = run(quick=quick, out_dir=out)
        if as_json:
            _print_json(result)

    @bench.command("text")
    def text(quick: bool = typer.Option(False, "--quick", help="100 timed queries, 500 through the cache"),
             data: Optional[Path] = typer.Option(None, help="labelled studies (with their cache) for the zero-shot "
                                                 "AUROCs of each runtime, e.g. data/bench/test_heldout"),
             as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
             out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """The query text tower: torch vs ONNX Runtime fp32/int8 at batch 1 (target >= 3x), equality, the cache."""
        from bench.text_path import REPO, run, write

        result = run(quick=quick, data=data)
        typer.echo(f"wrote {write(result, out or REPO / 'docs' / 'benchmarks')}")
        if as_json:
            _print_json(result)

    @bench.command("load")
    def load(quick: bool = typer.Option(False, "--quick", help="5 short steps, a 3,000-exam index (minutes)"),
             security: str = typer.Option("on", help=SECURITY_HELP),
             as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
             out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """Sustained QPS with search p99 < 50 ms at rising concurrency, with and without ingestion running."""
        from bench.load import run

        result = run(quick=quick, out_dir=out, security=_on_off(security))
        if as_json:
            _print_json(result)

    @bench.command("crash")
    def crash(quick: bool = typer.Option(False, "--quick", help="5 kills of each part instead of 20, a broker "
                                         "restart during 40 studies instead of 200, 6 studies instead of 12 "
                                         "during the `cmr up` kills"),
              as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
              out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)"),
              parts: str = typer.Option("search,ingest,disk,stack", help="comma-separated: search, ingest (worker "
                                        "+ broker), disk (a full disk under the search service), stack (every "
                                        "part of `cmr up` SIGKILLed once)")
              ) -> None:
        """SIGKILL the search service (writes, backups, switches), the ingest worker, the broker and each part of
        `cmr up`; check nothing acknowledged is lost."""
        from bench.crash import PARTS, run

        chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
        if not chosen or set(chosen) - set(PARTS):
            raise typer.BadParameter(f"{parts!r}: choose from {', '.join(PARTS)}", param_hint="--parts")
        result = run(quick=quick, out_dir=out, parts=chosen)
        if as_json:
            _print_json(result)
        if not result.ok:
            raise typer.Exit(1)

    @bench.command("fuzz")
    def fuzz(inputs: int = typer.Option(10_000, "--inputs", help="generated inputs per target"),
             targets: Optional[str] = typer.Option(None, "--targets", help="comma-separated target names "
                                                   "(loader_file, search.Upsert, ...; default all)"),
             seed: int = typer.Option(20261124, "--seed", help="hypothesis seed (runs are reproducible)"),
             corpus: Optional[Path] = typer.Option(None, help="where failing inputs go (default OUT/fuzz_corpus)"),
             minutes: Optional[float] = typer.Option(None, help="wall-clock budget: targets stop there even "
                                                     "short of --inputs"),
             out: Optional[Path] = typer.Option(None, help="output folder (default docs/benchmarks)")) -> None:
        """The study loader and every gRPC handler fuzzed against real services: outcomes per target."""
        from bench.fuzz.bench import run

        names = [t.strip() for t in (targets or "").split(",") if t.strip()]
        result = run(inputs=inputs, targets=names, out_dir=out, seed=seed, corpus=corpus, minutes=minutes)
        failed = sum(t.crashes + t.hangs for t in result.targets)
        if failed or result.after:
            raise typer.Exit(1)
