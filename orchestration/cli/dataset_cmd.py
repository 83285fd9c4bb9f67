"""`cmr dataset import`: a hospital's archive (DICOM study folders or a DICOMweb server + RIS report export) into a data directory
that `cmr train` and `cmr eval` read, de-identified, with silver labels and a dataset card (cmr.archive)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from cmr.archive.reports import DEFAULT_IDENTIFIER_COLUMNS, FORMATS, CsvColumns

dataset_app = typer.Typer(help="Bring a hospital's own archive in: `cmr dataset import`.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")


@dataset_app.command("import")
def import_cmd(
    studies: Optional[Path] = typer.Option(None, "--studies", help="Folder with one sub-folder of DICOM files per "
                                           "study (or --dicomweb)."),
    dicomweb: Optional[str] = typer.Option(None, "--dicomweb", help="DICOMweb service root of a PACS (e.g. "
                                           "https://pacs/dicom-web): every study it lists (QIDO-RS) is fetched "
                                           "(WADO-RS). Auth: CMR_ARCHIVE_DICOMWEB_TOKEN or _USERNAME/_PASSWORD."),
    dicomweb_ca: Optional[Path] = typer.Option(None, "--dicomweb-ca", help="PEM CA bundle for the DICOMweb "
                                               "server's certificate (default: CMR_ARCHIVE_DICOMWEB_CA, else the "
                                               "system's CAs)."),
    reports: Path = typer.Option(..., "--reports", help="RIS report export: CSV, HL7 v2 ORU messages or FHIR "
                                 "(NDJSON of Bundles / DiagnosticReports, or one Bundle)."),
    out: Path = typer.Option(..., "--out", help="Data directory to write (resumed if it holds this import)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Report format: {', '.join(FORMATS)} "
                                      "(default: from the file name)."),
    match: str = typer.Option("accession", "--match", help="Match reports to studies by accession "
                              "(AccessionNumber) or study-uid (StudyInstanceUID)."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (default: one per core)."),
    fallback: Optional[str] = typer.Option(None, "--fallback", help="A report without an impression section: "
                                           "findings, last-paragraph or none (default: "
                                           "CMR_ARCHIVE_IMPRESSION_FALLBACK or findings)."),
    accession_column: str = typer.Option("AccessionNumber", "--accession-column", help="CSV: accession column."),
    uid_column: str = typer.Option("StudyInstanceUID", "--uid-column", help="CSV: StudyInstanceUID column."),
    text_column: str = typer.Option("ReportText", "--text-column", help="CSV: full report text column."),
    identifier_columns: Optional[str] = typer.Option(None, "--identifier-columns", help="CSV: comma-separated "
                                                     "columns whose values are removed from the text (default: "
                                                     + ", ".join(DEFAULT_IDENTIFIER_COLUMNS) + ")."),
    keep_series: Optional[str] = typer.Option(None, "--keep-series", help="exam: de-identify and write only the "
                                              "series the exam needs (what `cmr train` reads); all: every series "
                                              "(default: CMR_ARCHIVE_KEEP_SERIES or exam)."),
) -> None:
    """Import studies and their reports: match, extract impressions, de-identify, label (silver), write."""
    from cmr.archive.dicomweb import DicomwebError, DicomwebSource
    from cmr.archive.importer import ImportRequest, import_archive
    from cmr.config import get_settings

    console = Console(stderr=True, soft_wrap=True)
    settings = get_settings()
    if (studies is None) == (dicomweb is None):
        raise typer.BadParameter("give one of --studies DIR and --dicomweb URL")
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if match not in ("accession", "study-uid"):
        raise typer.BadParameter("--match must be accession or study-uid")
    fallback = fallback or settings.archive_impression_fallback
    if fallback not in ("findings", "last-paragraph", "none"):
        raise typer.BadParameter("--fallback must be findings, last-paragraph or none")
    keep_series = keep_series or settings.archive_keep_series
    if keep_series not in ("exam", "all"):
        raise typer.BadParameter("--keep-series must be exam or all")
    ids = (tuple(c.strip() for c in identifier_columns.split(",") if c.strip()) if identifier_columns
           else DEFAULT_IDENTIFIER_COLUMNS)
    try:
        source = DicomwebSource.from_settings(dicomweb, settings, dicomweb_ca) if dicomweb else None
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    req = ImportRequest(studies=studies, reports=reports, out=out, fmt=fmt, match=match,  # type: ignore[arg-type]
                        columns=CsvColumns(accession_column, uid_column, text_column, ids),
                        workers=workers or os.cpu_count() or 1, fallback=fallback,  # type: ignore[arg-type]
                        keep_dates=settings.archive_keep_dates, dicomweb=source,
                        keep_series=keep_series)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    try:
        result = import_archive(req, settings)
    except (FileNotFoundError, ValueError, DicomwebError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    c = result.card["counts"]
    console.print(f"imported {c['imported']} of {c['study_folders']} studies in {time.perf_counter() - t0:.1f} s "
                  f"({result.resumed} already done); excluded {c['excluded_studies']} studies "
                  f"({c['studies_without_report']} without a report); reports: {c['reports_failed']} unreadable, "
                  f"{c['reports_without_study']} without a study (matched by {match}).")
    console.print(f"data directory: {out} (reports.jsonl, studies/); card: {out / 'dataset_card.md'}")
