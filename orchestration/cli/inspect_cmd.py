"""`cmr inspect` (series table and exam slot coverage of a study) and `cmr render` (GIF/PNG montage).

Unusable input ends with exit status 2 and one line "error: <reason>" on stderr, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestration.cli.tables import print_table

if TYPE_CHECKING:  # the DICOM stack (pydicom, scipy) is imported where a command runs, not for `cmr --help`
    from cmr.dicom import ExamSpec, Study

EXIT_UNUSABLE = 2


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
    app.command("render")(render)


def _fail(reason: str) -> NoReturn:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(EXIT_UNUSABLE)


def _load(path: Path) -> Study:
    from cmr.dicom import StudyLoadError, load_study

    try:
        return load_study(path)
    except StudyLoadError as err:
        _fail(err.reason)


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def _report(study: Study, spec: ExamSpec) -> dict[str, Any]:
    """Everything `inspect` shows, as JSON-ready data."""
    from cmr.dicom import StudyLoadError
    from cmr.dicom.exam import slot_sources

    error: dict[str, str] | None = None
    try:
        slots = slot_sources(study, spec)
    except StudyLoadError as err:
        slots, error = {s.name: [] for s in spec.slots}, {"code": err.code, "reason": err.reason}
    return {
        "study": study.info().to_dict(),
        "series": [s.info().to_dict() for s in study.series],
        "slots": {
            s.name: {"sequence": s.sequence, "view": s.view, "frames": s.length, "present": bool(slots[s.name]),
                     "series": slots[s.name]}
            for s in spec.slots
        },
        "missing": [name for name, keys in slots.items() if not keys],
        "error": error,
    }


def _print(report: dict[str, Any], console: Console) -> None:
    st = report["study"]
    console.print(
        f"study {escape(st['study_instance_uid'] or '-')}  date {st['study_date'] or '-'}  "
        f"scanner {escape(' '.join(x for x in (st['manufacturer'], st['model']) if x) or '-')} "
        f"{_fmt(st['field_strength'], 'T')}  files {st['n_files']} ({len(st['skipped'])} skipped)"
    )
    table = Table("#", "kind", "view", "slices", "phases", "matrix", "spacing mm", "thick mm", "description", "scanner")
    for s in report["series"]:
        table.add_row(
            _fmt(s["series_number"]), s["kind"], s["view"], str(s["slices"]), str(s["phases"]),
            f"{s['rows']}x{s['cols']}", "x".join(f"{v:g}" for v in s["pixel_spacing"]), _fmt(s["slice_thickness"]),
            escape(s["description"] or "-"), escape(s["scanner"] or "-"),
        )
    print_table(table, console)
    slots = Table("slot", "sequence", "view", "frames", "status", "series #")
    numbers = {s["key"]: _fmt(s["series_number"]) for s in report["series"]}
    for name, slot in report["slots"].items():
        status = "[green]filled[/green]" if slot["present"] else "[yellow]missing[/yellow]"
        slots.add_row(name, slot["sequence"], slot["view"], str(slot["frames"]), status,
                      ", ".join(numbers.get(k, k) for k in slot["series"]) or "-")
    print_table(slots, console)
    by_code: dict[str, list[str]] = {}
    for skipped in st["skipped"]:
        by_code.setdefault(skipped["code"], []).append(skipped["reason"])
    for reasons in by_code.values():  # one line per kind of problem, not one per file
        more = f" (and {len(reasons) - 1} more like it)" if len(reasons) > 1 else ""
        console.print(f"[yellow]skipped[/yellow] {escape(reasons[0])}{more}")
    for warning in st["warnings"]:
        console.print(f"[yellow]warning[/yellow] {escape(warning)}")
    for q in st["header_quirks"]:
        files = f" in {q['files']} files" if q["files"] else ""
        console.print(f"[yellow]header quirk[/yellow] {escape(q['message'])}: {q['count']} times{files} "
                      f"(e.g. {escape(q['example'])})")


def inspect(
    path: Path = typer.Argument(..., help="Study folder, .zip, or DICOM file."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Show the series of a DICOM study (kind, view, size, geometry) and which exam slots it fills."""
    from cmr.dicom import ExamSpec

    study = _load(path)
    report = _report(study, ExamSpec())
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report, Console(soft_wrap=True))  # long lines are not cut into pieces for pipes
    if report["error"] is not None:
        _fail(report["error"]["reason"])


def render(
    path: Path = typer.Argument(..., help="Study folder, .zip, or DICOM file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .gif (animated) or .png (static montage)."),
) -> None:
    """Render a study as a labelled montage of its cine (and LGE) views."""
    if out.suffix.lower() not in (".gif", ".png"):
        _fail(f"{out.name}: --out must end with .gif or .png")
    study = _load(path)
    from cmr.dicom import StudyLoadError
    from cmr.render import render_study  # Pillow drawing only when rendering

    try:
        render_study(study, out)
    except StudyLoadError as err:
        _fail(err.reason)
    except OSError as err:
        _fail(f"{out.name}: cannot write ({err.strerror or type(err).__name__})")
    typer.echo(f"wrote {out}")
