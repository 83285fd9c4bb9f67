"""`cmr dataset import`: a hospital's archive (a folder per study, or a DICOMweb server) and its RIS report
export, into the data directory `cmr train` and `cmr eval` read (studies/<study key>/, reports.jsonl), plus a dataset card.

Steps: read the report export (one bad report is a recorded failure), index it by the match key (accession
number or StudyInstanceUID; a second report with the same key is recorded and ignored), then import each study
folder (or each study that QIDO-RS lists, fetched with WADO-RS in the worker: cmr.archive.dicomweb) in a
process pool (cmr.archive.study) and journal its outcome under out/.import/journal/. A rerun reads
the journal and skips every study already done, imported or excluded: an import killed midway resumes where
it stopped (a study whose DICOMweb fetch failed is tried again). When all studies are done, reports.jsonl and the card are written from the journal.

The output holds no identifier of the source: study folders and records are named by the keyed study hash of
the index (cmr.rpc.keys.study_key), journal entries by a keyed hash of the source folder (or UID), excluded
studies by their position in the sorted folder (or UID) list, reports by their position in the export. A
DICOMweb import's card names the server's URL, without credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cmr.archive.card import build_card, write_card
from cmr.archive.dicomweb import DicomwebSource, list_studies
from cmr.archive.exam_series import KeepSeries
from cmr.archive.impression import Fallback
from cmr.archive.reports import CsvColumns, ReportFailure, ReportFormat, RisReport, read_reports
from cmr.archive.study import REPORTS_DIR, STUDIES_DIR, MatchBy, StudyJob, StudyTask, import_study, task_id
from cmr.config import Settings
from cmr.data.records import REPORTS_FILE

STATE_DIR = ".import"
JOURNAL_DIR = "journal"
_CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ImportRequest:
    studies: Path | None  # the folder of study folders; None with `dicomweb`
    reports: Path
    out: Path
    fmt: ReportFormat | None = None
    match: MatchBy = "accession"
    columns: CsvColumns = field(default_factory=CsvColumns)
    workers: int = 1
    fallback: Fallback = "findings"
    keep_dates: bool = False
    progress: bool = True
    dicomweb: DicomwebSource | None = None  # import the studies of this DICOMweb server instead of folders
    keep_series: KeepSeries = "exam"  # "all": every series written, not only those the exam needs


@dataclass
class ImportResult:
    card: dict[str, Any]
    imported: int
    excluded: int
    resumed: int  # studies found done in the journal and skipped


def index_reports(reports: list[RisReport], match: MatchBy) -> tuple[dict[str, RisReport], list[ReportFailure]]:
    """Reports by match key; reports without the key, or with a key already seen, are failures."""
    index: dict[str, RisReport] = {}
    failures: list[ReportFailure] = []
    what = "accession number" if match == "accession" else "StudyInstanceUID"
    for r in reports:
        key = r.accession if match == "accession" else r.study_uid
        if not key:
            failures.append(ReportFailure(r.where, f"no {what} to match it by"))
        elif key in index:
            failures.append(ReportFailure(r.where, f"another report has the same {what} (the first one is used)"))
        else:
            index[key] = r
    return index, failures


def _study_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of studies")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no study folders (the import expects one folder per study)")
    return folders


def _tasks(req: ImportRequest, secret: str) -> list[StudyTask]:
    """One task per study folder, or per StudyInstanceUID the DICOMweb server lists (sorted either way)."""
    if req.dicomweb is not None:
        uids = list_studies(req.dicomweb)
        if not uids:
            raise ValueError(f"{req.dicomweb.url}: the DICOMweb server lists no studies (QIDO-RS)")
        return [StudyTask(u, i, task_id(secret, f"dicomweb/{u}")) for i, u in enumerate(uids)]
    if req.studies is None:
        raise ValueError("give --studies DIR or --dicomweb URL")
    folders = _study_folders(req.studies)
    root = req.studies
    return [StudyTask(f, i, task_id(secret, f.relative_to(root).as_posix())) for i, f in enumerate(folders)]


def _fingerprint(req: ImportRequest) -> dict[str, Any]:
    digest = hashlib.sha256(req.reports.read_bytes()).hexdigest()
    fingerprint = {"reports_sha256": digest, "format": req.fmt, "match": req.match, "fallback": req.fallback,
                   "keep_dates": req.keep_dates,
                   "columns": [req.columns.accession, req.columns.study_uid, req.columns.text]}
    if req.dicomweb is not None:  # only then: journals of folder imports from before stay resumable
        fingerprint["dicomweb"] = req.dicomweb.url
    if req.keep_series != "all":  # imports from before the option kept every series: they resume under `all`
        fingerprint["keep_series"] = req.keep_series
    return fingerprint


def _source(req: ImportRequest) -> dict[str, str]:
    return {"kind": "dicomweb", "url": req.dicomweb.url} if req.dicomweb is not None else {"kind": "folders"}


def _check_state(out: Path, fingerprint: dict[str, Any]) -> None:
    """A resumed import must be the same import: same report file and options."""
    state = out / STATE_DIR
    config = state / _CONFIG_FILE
    if config.exists():
        old = json.loads(config.read_text())
        if old != fingerprint:
            changed = sorted(k for k in {**old, **fingerprint} if old.get(k) != fingerprint.get(k))
            raise ValueError(f"{out} holds an import with other inputs ({', '.join(changed)} changed): "
                             "use a new --out, or delete it to start over")
        return
    (state / JOURNAL_DIR).mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(fingerprint))


def _journal(out: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    for p in (out / STATE_DIR / JOURNAL_DIR).glob("*.json"):
        try:
            entry = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue  # a half-written entry cannot happen (atomic rename), but never trust it
        done[entry["task"]] = entry
    return done


def _record(out: Path, entry: dict[str, Any]) -> None:
    path = out / STATE_DIR / JOURNAL_DIR / f"{entry['task']}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, path)


# Worker state, set once per process (the report index is sent once, not with every study).
_WORKER: dict[str, Any] = {}


def _init_worker(job: StudyJob, reports: Mapping[str, RisReport]) -> None:
    _WORKER["job"], _WORKER["reports"] = job, reports


def _run(task: StudyTask) -> dict[str, Any]:
    try:
        return import_study(task, _WORKER["job"], _WORKER["reports"])
    except Exception as exc:  # noqa: BLE001 - one bad study is recorded, never fatal to the import
        return {"task": task.task_id, "order": task.order, "status": "excluded", "stage": "import",
                "reason": f"unexpected {type(exc).__name__}", "seconds": {}}


def _assemble(out: Path, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal entries in study order; a second study with the same study key or report is excluded."""
    entries = sorted(entries, key=lambda e: e["order"])
    seen_keys: set[str] = set()
    seen_reports: set[str] = set()
    final = []
    for e in entries:
        if e["status"] == "imported":
            if e["study_key"] in seen_keys or e["report"] in seen_reports:
                e = {**e, "status": "excluded", "stage": "match", "reason": "the same study or report as an "
                     "earlier folder (duplicate)", "record": None}
            else:
                seen_keys.add(e["study_key"])
                seen_reports.add(e["report"])
        final.append(e)
    return final


def import_archive(req: ImportRequest, settings: Settings) -> ImportResult:
    """Run (or resume) an import; see the module doc."""
    reports = read_reports(req.reports, req.fmt, req.columns)
    index, dup_failures = index_reports(reports.reports, req.match)
    tasks = _tasks(req, settings.study_key_secret)
    req.out.mkdir(parents=True, exist_ok=True)
    _check_state(req.out, _fingerprint(req))
    (req.out / STUDIES_DIR).mkdir(exist_ok=True)
    (req.out / REPORTS_DIR).mkdir(exist_ok=True)
    # A study whose fetch failed is not done: the server may answer now.
    done = {k: e for k, e in _journal(req.out).items() if e.get("stage") != "fetch"}
    todo = [t for t in tasks if t.task_id not in done]
    job = StudyJob(req.out, req.match, req.fallback, req.keep_dates, settings, req.dicomweb, req.keep_series)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="import", unit="study", disable=not req.progress)
    entries = [done[t.task_id] for t in tasks if t.task_id in done]
    try:
        if req.workers <= 1:
            _init_worker(job, index)
            for t in todo:
                entry = _run(t)
                _record(req.out, entry)
                entries.append(entry)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=req.workers, initializer=_init_worker,
                                     initargs=(job, index)) as pool:
                futures = [pool.submit(_run, t) for t in todo]
                for fut in as_completed(futures):
                    entry = fut.result()
                    _record(req.out, entry)
                    entries.append(entry)
                    bar.update()
    finally:
        bar.close()
    entries = _assemble(req.out, entries)
    records = [e["record"] for e in entries if e["status"] == "imported"]
    tmp = req.out / (REPORTS_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, req.out / REPORTS_FILE)
    card = build_card(entries, reports.reports, reports.failures + dup_failures, req.match,
                      report_format=req.fmt or "auto", fallback=req.fallback, source=_source(req),
                      keep_series=req.keep_series)
    write_card(req.out, card)
    imported = len(records)
    return ImportResult(card, imported, len(entries) - imported, len(tasks) - len(todo))


__all__ = ["ImportRequest", "ImportResult", "JOURNAL_DIR", "STATE_DIR", "import_archive", "index_reports"]
