"""One archive study through the import: read its files, match its report, de-identify images and text, check
it loads with a cine, label its impression, write it. Runs in a worker process; returns a JSON-ready outcome
(the journal entry) and never raises for a bad study: the reason goes in the outcome.

Nothing is written before de-identification: the DICOM goes to a hidden partial folder only after dicognito
and the Clean Descriptors pass, the report text only after scrubbing, and both are moved into place before the
journal entry that marks the study done.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from cmr.archive.impression import Fallback, extract_impression
from cmr.archive.measurements import report_measurements
from cmr.archive.reports import RisReport
from cmr.archive.scrub import merge_identifiers, scrub_report
from cmr.config import Settings
from cmr.deid import DeidentificationError, Deidentifier
from cmr.dicom import load_study
from cmr.dicom.errors import StudyLoadError
from cmr.reports.labeller import label_report
from cmr.rpc.keys import study_key

MatchBy = Literal["accession", "study-uid"]
STUDIES_DIR = "studies"
REPORTS_DIR = "reports"  # the de-identified full report text of each study
_PARTIAL = ".partial-"


@dataclass(frozen=True)
class StudyTask:
    source: Path
    order: int  # position among the study folders: names an excluded study without its folder name
    task_id: str  # keyed hash of the folder path: the journal entry's name


@dataclass(frozen=True)
class StudyJob:
    out: Path
    match: MatchBy
    fallback: Fallback
    keep_dates: bool
    settings: Settings


def task_id(secret: str, relative: str) -> str:
    """Folder names of real archives often carry names or MRNs: journal entries are named by a keyed hash."""
    return hmac.new(secret.encode(), f"archive-source|{relative}".encode(), hashlib.sha256).hexdigest()[:24]


def _looks_like_dicom(ds: Dataset, data: bytes) -> bool:
    meta = getattr(ds, "file_meta", None)
    return (data[128:132] == b"DICM" or (meta is not None and "TransferSyntaxUID" in meta)
            or "SOPClassUID" in ds or "PixelData" in ds)


def _read(folder: Path) -> tuple[list[Dataset], int]:
    """(datasets that parse as DICOM, number of other files)."""
    datasets, others = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # header quirks: the loader reports them once per study
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
            except Exception:  # noqa: BLE001 - pydicom raises many types on junk
                others += 1
                continue
            if _looks_like_dicom(ds, data):
                datasets.append(ds)
            else:
                others += 1
    return datasets, others


def _common(datasets: list[Dataset], keyword: str) -> str:
    values = [str(ds.get(keyword, "") or "").strip() for ds in datasets]
    counts = Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else ""


class _StageClock:
    """Wall and CPU seconds per stage. CPU seconds are what other jobs on a shared machine do not inflate."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.start()

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self, stage: str) -> None:
        self.wall[stage] = time.perf_counter() - self._wall
        self.cpu[stage] = time.process_time() - self._cpu


def _excluded(task: StudyTask, stage: str, reason: str, clock: _StageClock, **extra: Any) -> dict[str, Any]:
    return {"task": task.task_id, "order": task.order, "status": "excluded", "stage": stage, "reason": reason,
            "seconds": clock.wall, "cpu_seconds": clock.cpu, **extra}


def _write_dicom(datasets: list[Dataset], folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, ds in enumerate(datasets):
        meta = getattr(ds, "file_meta", None)
        if meta is None or "TransferSyntaxUID" not in meta:
            ds.ensure_file_meta()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)


def _labels(impression: str) -> tuple[dict[str, Any], dict[str, Any]]:
    read = label_report(impression)
    silver = {f: {"state": lab.state, "severity": lab.severity, "uncertain": lab.uncertain}
              for f, lab in read.findings.items()}
    return read.as_label_dict(), {"findings": silver, "disease": read.disease,
                                  "disease_uncertain": read.disease_uncertain}


def import_study(task: StudyTask, job: StudyJob, reports: Mapping[str, RisReport]) -> dict[str, Any]:
    """Import one study folder; the returned outcome is its journal entry (see the module doc)."""
    clock = _StageClock()
    datasets, others = _read(task.source)
    clock.stop("read")
    if not datasets:
        try:
            load_study(task.source, settings=job.settings)
            code = "no_images"
        except StudyLoadError as exc:
            code = exc.code
        return _excluded(task, "read", f"no readable DICOM image in the folder ({code}; {others} other files)",
                         clock)
    source_uid = _common(datasets, "StudyInstanceUID")
    match_value = _common(datasets, "AccessionNumber") if job.match == "accession" else source_uid
    try:
        key = study_key(source_uid, job.settings.study_key_secret)
    except ValueError:
        return _excluded(task, "read", "no valid StudyInstanceUID in the headers", clock)
    report = reports.get(match_value) if match_value else None
    if report is None:
        what = "accession number" if job.match == "accession" else "StudyInstanceUID"
        why = f"the headers carry no {what}" if not match_value else f"no report with this study's {what}"
        return _excluded(task, "match", why, clock, study_key=key, unmatched=True)

    clock.start()
    try:
        deid = Deidentifier(job.settings.study_key_secret, keep_dates=job.keep_dates).deidentify(datasets)
    except DeidentificationError as exc:
        return _excluded(task, "deidentify", f"{exc.error_type}: {exc.reason}", clock, study_key=key,
                         report=report.where)
    identifiers = merge_identifiers(deid.identifiers, report.identifiers)
    clock.stop("deidentify")

    clock.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = load_study(deid.datasets, settings=job.settings)
    except StudyLoadError as exc:
        return _excluded(task, "load", f"{exc.code}: the study does not load", clock, study_key=key,
                         report=report.where)
    clock.stop("load")
    if not study.has_cine:
        return _excluded(task, "load", "no cine series", clock, study_key=key, report=report.where)

    clock.start()
    extraction = extract_impression(report.text, job.fallback)
    if not extraction.found:
        return _excluded(task, "report", "no impression section (fallback: none)", clock, study_key=key,
                         report=report.where)
    impression = scrub_report(extraction.text, identifiers)
    full_text = scrub_report(report.text, identifiers)
    labels, silver = _labels(impression)
    clock.stop("report")

    clock.start()
    info = study.info()
    series = [{"kind": s.kind, "view": s.view or "", "description": s.description} for s in study.series]
    pseudo_uid = str(deid.datasets[0].get("StudyInstanceUID", ""))
    final = job.out / STUDIES_DIR / key
    partial = job.out / STUDIES_DIR / f"{_PARTIAL}{key}"
    for stale in (partial, final):  # a study interrupted before its journal entry is redone from scratch
        if stale.exists():
            shutil.rmtree(stale)
    _write_dicom(deid.datasets, partial)
    os.replace(partial, final)
    text_path = job.out / REPORTS_DIR / f"{key}.txt"
    tmp = text_path.with_name(text_path.name + ".tmp")
    tmp.write_text(full_text + "\n", encoding="utf-8")
    os.replace(tmp, text_path)
    clock.stop("write")
    record = {
        "folder": f"{STUDIES_DIR}/{key}",
        "impression": impression,
        "labels": labels,
        "label_source": "silver",  # the finding labeller's reading of the impression, not a reader's truth
        "silver": silver,
        "impression_source": extraction.source,
        # The numbers the report states (what the reader measured): the measurement tokens' input, as
        # reference_measurements is on the reports.jsonl path. Read after scrubbing, like everything written.
        "measurements": report_measurements(full_text),
        "scanner": " ".join(p for p in (info.manufacturer, info.model) if p),
        "study_key": key,
        "study_instance_uid": pseudo_uid,  # the de-identified (pseudonymous) UID the written files carry
        "views": sorted({f"{s.kind}_{s.view}" for s in study.series if s.kind in ("cine", "lge") and s.view}),
    }
    return {"task": task.task_id, "order": task.order, "status": "imported", "study_key": key,
            "report": report.where, "record": record, "seconds": clock.wall, "cpu_seconds": clock.cpu,
            "stats": {"manufacturer": info.manufacturer, "model": info.model, "field_strength": info.field_strength,
                      "series": series, "files": len(datasets), "other_files": others,
                      "skipped_files": len(study.skipped), "warnings": list(study.warnings),
                      "impression_section": extraction.section, "addendum": extraction.has_addendum}}


__all__ = ["MatchBy", "REPORTS_DIR", "STUDIES_DIR", "StudyJob", "StudyTask", "import_study", "task_id"]
