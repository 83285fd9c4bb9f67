"""`cmr measure PATH...`: LVEF, volumes and mass of studies from their segmented short-axis cine stack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("measure")(measure)


def _safe_name(p: Path) -> str:
    p = p.resolve()
    name = p.parent.name if p.name.lower() in ("dicom", "dcm", "images") else p.name  # a study's inner folder
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name or "study")


def _fmt(v: float | None, unit: str) -> str:
    return "-" if v is None else f"{v:g} {unit}"


def measure(
    paths: list[Path] = typer.Argument(..., help="Study folders, zips or files."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object keyed by each given path."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Write per study: label maps (.masks.npz), the "
                                         "mid-ventricular cine with contours (.gif) and the volume curves (.png)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Segmentation checkpoint (default: the "
                                              "shipped cmr-seg-small)."),
    all_phases: bool = typer.Option(False, "--all-phases", help="Segment every phase at full resolution (default: "
                                    "a quick volume-curve pass, then ED and ES at full resolution; --masks "
                                    "implies it, for the cine loop)."),
) -> None:
    """Segment the LV cavity, LV myocardium and RV cavity of each study's short-axis cine (every slice and
    phase: a quick pass for the volume curve, full resolution at ED and ES, or everything with --all-phases)
    and report LVEDV, LVESV, LVEF, LV mass (1.05 g/ml), RVEDV, RVESV, RVEF (indexed when the
    header has height and weight), with ED/ES from the LV volume curve and a quality flag. A value that
    cannot be measured is null with the reason; a study that cannot be read is reported and the others go on
    (exit code 1 when any failed)."""
    from rich.console import Console
    from rich.table import Table

    from orchestration.cli.tables import print_table

    from cmr.dicom import StudyLoadError, load_study
    from cmr.quant.measure import measure_study
    from cmr.quant.outputs import save_masks, write_cine_overlay, write_volume_curve
    from cmr.quant.segmenter import load_segmenter
    from cmr.quant.volumes import MEASUREMENT_UNITS

    try:
        seg = load_segmenter(checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    results: dict[str, Any] = {}
    failed = 0
    for p in paths:
        try:
            study = load_study(p)
        except StudyLoadError as exc:
            failed += 1
            results[str(p)] = {"error": exc.reason}
            continue
        sm = measure_study(study, seg, all_phases=all_phases or masks is not None)
        entry = sm.to_dict()
        if masks is not None and sm.masks:
            stem = masks / _safe_name(p)
            entry["files"] = {
                "masks": str(save_masks(sm, stem.with_suffix(".masks.npz"))),
                "cine": str(write_cine_overlay(sm, stem.with_suffix(".gif"))),
                "volume_curve": str(write_volume_curve(sm, stem.with_suffix(".png"), title=p.name)),
            }
        results[str(p)] = entry
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        console = Console()
        table = Table(title=f"measurements ({seg.version})")
        table.add_column("measure")
        for p in results:
            table.add_column(Path(p).name)
        for key, unit in MEASUREMENT_UNITS.items():
            table.add_row(key, *[("error" if "error" in r else _fmt(r.get(key), unit)) for r in results.values()])
        table.add_row("quality", *[r.get("quality", "error") for r in results.values()])
        print_table(table, console)
        for p, r in results.items():
            if "error" in r:
                console.print(f"[red]{p}: {r['error']}[/red]")
                continue
            for why in r.get("quality_reasons", []):
                console.print(f"{Path(p).name}: check: {why}")
            reasons = sorted(set(r.get("unavailable", {}).values()) - set(r.get("quality_reasons", [])))
            for why in reasons:
                console.print(f"{Path(p).name}: not measured: {why}")
            for kind, f in r.get("files", {}).items():
                console.print(f"{Path(p).name}: {kind} -> {f}")
    if failed:
        raise typer.Exit(1)
