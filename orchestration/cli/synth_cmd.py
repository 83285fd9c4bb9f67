"""`cmr synth`: generate synthetic CMR studies as DICOM with paired impressions."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from orchestration.cli.lazy import get_settings
from cmr.synth.scanners import STYLE_POOLS, STYLES
from orchestration.cli.tables import print_table


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)


def synth(
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (studies/ and reports.jsonl)."),
    studies: int = typer.Option(10, "--studies", min=1, help="Number of studies."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same data set."),
    workers: int = typer.Option(-1, "--workers", help="Worker processes (default: CMR_SYNTH_WORKERS or one per core)."),
    scanner: Optional[str] = typer.Option(None, "--scanner", help="One scanner style, or a pool drawn from at random: all (default), training (every style but the held-out one), heldout."),
    phrasing: str = typer.Option("train", "--phrasing", help="Impression phrase bank: train or heldout."),
    list_scanners: bool = typer.Option(False, "--list-scanners", help="List scanner styles and exit."),
    distractors: bool = typer.Option(True, "--distractors/--no-distractors", help="Also write the series a real exam holds besides cine and LGE (scouts, mapping, perfusion, flow, ...; cmr.synth.distractors)."),
) -> None:
    """Generate a synthetic cardiac MRI data set: beating-heart phantom studies as DICOM plus reports.jsonl."""
    console = Console()
    if list_scanners:
        table = Table("style", "vendor", "field", "matrix", "phases", "layout", "role")
        for s in STYLES.values():
            table.add_row(s.name, s.manufacturer, f"{s.field_strength:g} T", f"{s.matrix[0]}x{s.matrix[1]}",
                          str(s.phases), "enhanced multi-frame" if s.multiframe else "single-frame",
                          "HELD OUT (evaluation only)" if s.held_out else "training")
        print_table(table, console)
        return
    err = Console(stderr=True)
    if out is None:
        err.print("error: --out is required")
        raise typer.Exit(2)
    if scanner is not None and scanner not in STYLES and scanner not in STYLE_POOLS:
        err.print(f"error: unknown scanner style {scanner!r}; use a pool ({', '.join(STYLE_POOLS)}) or see `cmr synth --list-scanners`")
        raise typer.Exit(2)
    if phrasing not in ("train", "heldout"):
        err.print("error: --phrasing must be 'train' or 'heldout'")
        raise typer.Exit(2)
    from cmr.synth.generate import generate_dataset  # heavy imports only when generating

    n_workers = workers if workers >= 0 else get_settings().synth_workers
    start = time.perf_counter()
    records = generate_dataset(out, studies, seed, n_workers, scanner, phrasing,  # type: ignore[arg-type]
                               distractors=distractors)
    elapsed = time.perf_counter() - start
    diseases = Counter(r["labels"]["disease"] for r in records)
    styles = Counter(r["scanner"] for r in records)
    console.print(f"{len(records)} studies in {elapsed:.1f} s ({60 * len(records) / elapsed:.1f} studies/min) -> {out}")
    console.print("diseases: " + ", ".join(f"{k} {v}" for k, v in sorted(diseases.items())))
    console.print("scanners: " + ", ".join(f"{k} {v}" for k, v in sorted(styles.items())))
