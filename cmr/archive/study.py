"""One archive study through the import: read its files (or fetch it over DICOMweb), match its report, de-identify images and text, check
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

from cmr.archive.dicomweb import DicomwebError, DicomwebSource, fetch_study
from cmr.archive.exam_series import KeepSeries, kept_by_exam, skip_reason, split_datasets
from cmr.archive.impression import Fallback, extract_impression
from cmr.archive.measurements import report_measurements
from cmr.archive.reports import RisReport
from cmr.archive.scrub import merge_identifiers, scrub_report
from cmr.config import Settings
from cmr.deid import DeidentificationError, Deidentifier, Identifiers, scrub_text
from cmr.dicom import Study, load_study
from cmr.dicom.errors import StudyLoadError
from cmr.reports.labeller import label_report
from cmr.rpc.keys import study_key

MatchBy = Literal["accession", "study-uid"]
STUDIES_DIR = "studies"
REPORTS_DIR = "reports"  # the de-identified full report text of each study
_PARTIAL = ".partial-"


@dataclass(frozen=True)
class StudyTask:
    source: Path | str  # a study folder, or a StudyInstanceUID on the job's DICOMweb server
    order: int  # position among the study folders (or UIDs): names an excluded study without its folder name
    task_id: str  # keyed hash of the folder path (or UID): the journal entry's name


@dataclass(frozen=True)
class StudyJob:
    out: Path
    match: MatchBy
    fallback: Fallback
    keep_dates: bool
    settings: Settings
    dicomweb: DicomwebSource | None = None  # where a task's StudyInstanceUID is fetched from
    keep_series: KeepSeries = "all"  # "exam": only the series the exam needs are de-identified and written


def task_id(secret: str, relative: str) -> str:
    """Folder names of real archives often carry names or MRNs: journal entries are named by a keyed hash.
    A DICOMweb study's `relative` is "dicomweb/<StudyInstanceUID>" (no folder name holds a slash)."""
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


# the study (classified), the datasets to write, the identifiers to scrub, series stats, the loader's notes
_Loaded = tuple[Study, list[Dataset], Identifiers, list[dict[str, Any]], list[str]]


def _series_stats(study: Study, identifiers: Identifiers, keep_series: KeepSeries) -> list[dict[str, Any]]:
    """What the card counts of each series found. Descriptions as de-identification leaves them (Clean
    Descriptors: the patient's identifiers removed), also for series that are not written."""
    stats = []
    for s in study.series:
        kept = keep_series == "all" or kept_by_exam(s)
        stats.append({"kind": s.kind, "view": s.view or "", "description": scrub_text(s.description, identifiers),
                      "kept": kept, "reason": "" if kept else skip_reason(s.kind)})
    return stats


def _pseudonymous_warnings(study: Study, new_uids: Mapping[str, str]) -> list[str]:
    """The loader's notes name series by SeriesInstanceUID. Under `exam` the study was loaded from the source
    headers: a written series gets the pseudonymous UID it carries now, the others a placeholder."""
    out = []
    for note in study.warnings:
        for s in study.series:
            uid = s.series_instance_uid
            if uid and uid in note:
                note = note.replace(uid, new_uids.get(uid) or "(a series not written)")
        out.append(note)
    return out


def _merged(*found: Identifiers) -> Identifiers:
    terms = {t for ids in found for t in ids.terms}
    return Identifiers(tuple(sorted(terms, key=lambda t: (-len(t), t))))


def _load(task: StudyTask, job: StudyJob, clock: _StageClock, datasets: list[Dataset], key: str,
          report: RisReport) -> Study | dict[str, Any]:
    """The study loaded (timed as the "load" stage), or the exclusion when it does not load or has no cine."""
    clock.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = load_study(datasets, settings=job.settings)
    except StudyLoadError as exc:
        return _excluded(task, "load", f"{exc.code}: the study does not load", clock, study_key=key,
                         report=report.where)
    clock.stop("load")
    if not study.has_cine:
        return _excluded(task, "load", "no cine series", clock, study_key=key, report=report.where)
    return study


def _deidentify_all(task: StudyTask, job: StudyJob, clock: _StageClock, datasets: list[Dataset], key: str,
                    report: RisReport) -> _Loaded | dict[str, Any]:
    """`--keep-series all`: every dataset de-identified, then the de-identified study loaded."""
    clock.start()
    try:
        deid = Deidentifier(job.settings.study_key_secret, keep_dates=job.keep_dates).deidentify(datasets)
    except DeidentificationError as exc:
        return _excluded(task, "deidentify", f"{exc.error_type}: {exc.reason}", clock, study_key=key,
                         report=report.where)
    identifiers = merge_identifiers(deid.identifiers, report.identifiers)
    clock.stop("deidentify")

    study = _load(task, job, clock, deid.datasets, key, report)
    if isinstance(study, dict):
        return study
    return study, deid.datasets, identifiers, _series_stats(study, identifiers, "all"), list(study.warnings)


def _deidentify_exam_series(task: StudyTask, job: StudyJob, clock: _StageClock, datasets: list[Dataset], key: str,
                            report: RisReport) -> _Loaded | dict[str, Any]:
    """`--keep-series exam`: the study is loaded (classified) once, in memory, from the source headers; only the
    series the exam needs (cmr.archive.exam_series) are then de-identified and written. Nothing of the source
    leaves the worker: the journal gets de-identified descriptions and pseudonymous series UIDs."""
    study = _load(task, job, clock, datasets, key, report)
    if isinstance(study, dict):
        return study

    clock.start()
    split = split_datasets(datasets, study.series, "exam")
    source_uids = [str(ds.get("SeriesInstanceUID", "") or "") for ds in split.kept]
    try:
        deid = Deidentifier(job.settings.study_key_secret, keep_dates=job.keep_dates).deidentify(split.kept)
    except DeidentificationError as exc:
        return _excluded(task, "deidentify", f"{exc.error_type}: {exc.reason}", clock, study_key=key,
                         report=report.where)
    # Identifiers in the headers of series not written still come out of the report text and descriptions.
    identifiers = merge_identifiers(_merged(deid.identifiers, Identifiers.collect(split.skipped)),
                                    report.identifiers)
    new_uids = {src: str(ds.get("SeriesInstanceUID", "")) for src, ds in zip(source_uids, deid.datasets)}
    clock.stop("deidentify")
    return (study, deid.datasets, identifiers, _series_stats(study, identifiers, "exam"),
            _pseudonymous_warnings(study, new_uids))


def import_study(task: StudyTask, job: StudyJob, reports: Mapping[str, RisReport]) -> dict[str, Any]:
    """Import one study folder; the returned outcome is its journal entry (see the module doc)."""
    clock = _StageClock()
    if isinstance(task.source, str):
        return _import_fetched(task, job, reports, clock)
    datasets, others = _read(task.source)
    clock.stop("read")
    return _import_datasets(task, job, reports, clock, datasets, others)


def _import_fetched(task: StudyTask, job: StudyJob, reports: Mapping[str, RisReport],
                    clock: _StageClock) -> dict[str, Any]:
    """A DICOMweb study: fetched (WADO-RS), then the same steps as a folder's files. A failed fetch is the
    study's exclusion (stage fetch; a rerun of the import tries it again)."""
    assert job.dicomweb is not None and isinstance(task.source, str)
    try:
        datasets = fetch_study(job.dicomweb, task.source)
    except DicomwebError as exc:
        clock.stop("fetch")
        try:
            extra = {"study_key": study_key(task.source, job.settings.study_key_secret)}
        except ValueError:
            extra = {}
        return _excluded(task, "fetch", exc.reason, clock, transient=exc.transient, **extra)
    clock.stop("fetch")
    return _import_datasets(task, job, reports, clock, datasets, 0)


def _import_datasets(task: StudyTask, job: StudyJob, reports: Mapping[str, RisReport], clock: _StageClock,
                     datasets: list[Dataset], others: int) -> dict[str, Any]:
    if not datasets:
        assert isinstance(task.source, Path)  # a DICOMweb study without instances is a fetch failure
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

    if job.keep_series == "exam":
        loaded = _deidentify_exam_series(task, job, clock, datasets, key, report)
    else:
        loaded = _deidentify_all(task, job, clock, datasets, key, report)
    if isinstance(loaded, dict):
        return loaded
    study, deid_datasets, identifiers, series, notes = loaded

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
    pseudo_uid = str(deid_datasets[0].get("StudyInstanceUID", ""))
    final = job.out / STUDIES_DIR / key
    partial = job.out / STUDIES_DIR / f"{_PARTIAL}{key}"
    for stale in (partial, final):  # a study interrupted before its journal entry is redone from scratch
        if stale.exists():
            shutil.rmtree(stale)
    _write_dicom(deid_datasets, partial)
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
                      "series": series, "files": len(datasets), "written_files": len(deid_datasets),
                      "other_files": others, "skipped_files": len(study.skipped),
                      "warnings": notes,
                      "impression_section": extraction.section, "addendum": extraction.has_addendum}}


__all__ = ["MatchBy", "REPORTS_DIR", "STUDIES_DIR", "StudyJob", "StudyTask", "import_study", "task_id"]
