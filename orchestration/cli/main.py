"""Entry point of the `cmr` console command."""

from __future__ import annotations

import logging

import typer

from orchestration.cli import bench_cmd, calibrate_cmd, dataset_cmd, draft_cmd, embed_cmd, eval_cmd, eval_real_cmd, explain_cmd, generator_cmd, index_cmd, ingest_cmd, inspect_cmd, measure_cmd, quant_cmd, search_cmd, security_cmd, serve_cmd, synth_cmd, train_cmd, up_cmd, zeroshot_cmd
from orchestration.cli.errors import CmrTyper

app = CmrTyper(
    name="cmr",
    help="Semantic search over cardiac MRI: synthetic studies, study loading, embeddings and services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

synth_cmd.register(app)
inspect_cmd.register(app)
train_cmd.register(app)
embed_cmd.register(app)
eval_cmd.register(app)
eval_real_cmd.register(app)
zeroshot_cmd.register(app)
serve_cmd.register(app)
bench_cmd.register(app)
calibrate_cmd.register(app)
search_cmd.register(app)
generator_cmd.register(app)
draft_cmd.register(app)
up_cmd.register(app)
ingest_cmd.register(app)
index_cmd.register(app)
measure_cmd.register(app)
quant_cmd.register(app)
security_cmd.register(app)
explain_cmd.register(app)
dataset_cmd.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    app()
