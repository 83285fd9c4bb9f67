"""Publishing studies to the NewExam topic: what `cmr ingest PATH...` does.

A study is a folder that directly holds DICOM files or series folders of them, or a .zip. Under each PATH the
studies are found recursively: a folder whose own files include DICOM is a study; so is a folder whose
subfolders all hold DICOM of one StudyInstanceUID (a study of series folders, as `cmr synth` writes them);
otherwise its children are searched. A `reports.jsonl` at the root of a `cmr synth` data set supplies each study's impression and labels.

Each record key is the study key (HMAC of the StudyInstanceUID read from one header, the secret as in the
worker), so a study's NewExam and its later events share a partition; a study whose header cannot be read is
keyed by its path hash, and the worker dead-letters it with the reason.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pydicom
from kafka import KafkaProducer

from cmr.config import Settings
from cmr.kafka_io import ensure_topics, make_producer
from cmr.rpc.keys import study_key
from cmr.v1 import common_pb2, events_pb2
from ingest_svc.journal import PLANNED, IngestJournal, JournalEntry
from ingest_svc.messages import new_exam, ref_key, study_ref

log = logging.getLogger(__name__)
_UNREAD = object()  # publish_path's uid when the caller has not read the study's header
FINDING_LABEL_KEYS = ("lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation", "lv_hypertrophy", "lge",
                      "aortic_dilation", "la_enlargement", "pericardial_effusion")


def _is_dicom_file(p: Path) -> bool:
    try:
        with p.open("rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or p.suffix.lower() in (".dcm", ".dicom", ".ima")


def find_studies(paths: Iterable[Path]) -> Iterator[Path]:
    """Study folders and zips under `paths`, in sorted order (see the module doc)."""
    for root in paths:
        if root.is_file():
            if zipfile.is_zipfile(root):
                yield root
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"no such file or folder: {root}")
        yield from _walk(root)


def _walk(folder: Path) -> Iterator[Path]:
    children = sorted(folder.iterdir())
    files = [c for c in children if c.is_file()]
    dirs = [c for c in children if c.is_dir()]
    if any(_is_dicom_file(f) for f in files[:20]):
        yield folder
        return
    if dirs and all(any(_is_dicom_file(f) for f in sorted(d.iterdir())[:5] if f.is_file()) for d in dirs):
        # Series folders of one study, or a folder of flat studies? The StudyInstanceUIDs tell.
        uids = {first_study_uid(d) for d in dirs}
        if len(uids) == 1 and None not in uids:
            yield folder
            return
    for f in files:
        if f.suffix.lower() == ".zip" and zipfile.is_zipfile(f):
            yield f
    for d in dirs:
        yield from _walk(d)


def first_study_uid(study: Path) -> str | None:
    """StudyInstanceUID of the first readable DICOM header (None when there is none)."""
    try:
        if study.is_file():
            with zipfile.ZipFile(study) as zf:
                for info in zf.infolist()[:50]:
                    if not info.is_dir():
                        with zf.open(info) as fp:
                            uid = _uid(fp)
                        if uid:
                            return uid
            return None
        for p in sorted(study.rglob("*"))[:200]:
            if p.is_file():
                with p.open("rb") as fp:
                    uid = _uid(fp)
                if uid:
                    return uid
    except (OSError, zipfile.BadZipFile):
        return None
    return None


def _uid(fp: object) -> str | None:
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=["StudyInstanceUID"], force=True)
        uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        return uid or None
    except Exception:  # noqa: BLE001 - not DICOM: the worker will say why
        return None


@dataclass(frozen=True)
class Report:
    impression: str
    labels: tuple[str, ...]


def synth_reports(root: Path) -> dict[Path, Report]:
    """{study folder: report} from a `cmr synth` data set's reports.jsonl (empty when there is none)."""
    for candidate in (root / "reports.jsonl", root.parent / "reports.jsonl"):
        if candidate.is_file():
            base = candidate.parent
            out = {}
            for line in candidate.read_text().splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                labels = [k for k in FINDING_LABEL_KEYS if rec.get("labels", {}).get(k)]
                disease = rec.get("labels", {}).get("disease")
                if disease:
                    labels.append(f"disease:{disease}")
                out[(base / rec["folder"]).resolve()] = Report(rec.get("impression", ""), tuple(labels))
            return out
    return {}


def record_key(ref: common_pb2.StudyRef, uid: str | None, secret: str) -> bytes:
    if uid:
        try:
            return study_key(uid, secret).encode()
        except ValueError:
            pass
    return ref_key(ref).encode()


def journal_key(ref: common_pb2.StudyRef, uid: str | None, secret: str) -> str:
    """The key the index will hold the study under, for the journal ("" when its header cannot be read)."""
    key = record_key(ref, uid, secret).decode()
    return key if key != ref_key(ref) else ""


def plan(journal: IngestJournal, settings: Settings, studies: Iterable[Path],
         reports: Mapping[Path, Report]) -> dict[Path, str | None]:
    """Record every study as planned (one fsync) before anything is published, so that `--resume` also
    re-sends what a killed or failed run never reached; {study: its StudyInstanceUID} (read once, here)."""
    uids: dict[Path, str | None] = {}
    entries = []
    for study in studies:
        uids[study] = uid = first_study_uid(study)
        ref = study_ref(path=str(study.resolve()))
        report = reports.get(study.resolve())
        entries.append(JournalEntry(path=ref.path, study_key=journal_key(ref, uid, settings.study_key_secret),
                                    impression=report.impression if report else "",
                                    labels=report.labels if report else (), status=PLANNED))
    journal.record_all(entries)
    return uids


class ExamPublisher:
    """Publishes NewExam messages (awaited, so a returned call means the broker has them)."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None,
                 journal: IngestJournal | None = None) -> None:
        """journal: where each published study is recorded (for `cmr ingest --resume`)."""
        self.settings = settings
        self.journal = journal
        self._own = producer is None
        if producer is None:
            ensure_topics(settings)
        self.producer = producer or make_producer(settings, client_id="cmr-ingest-producer")

    def publish(self, msg: events_pb2.NewExam, uid: str | None = None) -> tuple[int, int]:
        """(partition, offset) of the record."""
        key = record_key(msg.study, uid, self.settings.study_key_secret)
        md = self.producer.send(self.settings.kafka_topic_new, key=key, value=msg.SerializeToString()).get(
            timeout=self.settings.kafka_request_timeout_ms / 1000)
        return md.partition, md.offset

    def publish_path(self, study: Path, *, report: Report | None = None, source: str = "cli",
                     metadata: Mapping[str, str] | None = None, uid: str | None | object = _UNREAD
                     ) -> events_pb2.NewExam:
        """uid: the study's StudyInstanceUID when the caller read it already (None: unreadable)."""
        ref = study_ref(path=str(study.resolve()))
        msg = new_exam(ref, report_text=report.impression if report else "",
                       labels=report.labels if report else (), source=source, metadata=metadata)
        study_uid = first_study_uid(study) if uid is _UNREAD else uid
        assert study_uid is None or isinstance(study_uid, str)
        partition, offset = self.publish(msg, study_uid)
        if self.journal is not None:
            self.journal.record(JournalEntry(
                path=ref.path, study_key=journal_key(msg.study, study_uid, self.settings.study_key_secret),
                impression=msg.report_text, labels=tuple(msg.labels), event_id=msg.event_id, partition=partition,
                offset=offset))
        return msg

    def close(self) -> None:
        if self._own:
            self.producer.close(timeout=10)

    def __enter__(self) -> ExamPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish_paths(settings: Settings, paths: Iterable[Path], *,
                  progress: Callable[[int, int], None] | None = None,
                  journal: IngestJournal | None = None) -> list[events_pb2.NewExam]:
    """Find the studies under `paths` and publish one NewExam each; `progress(done, total)` after each.
    With a `journal`, every study is recorded as planned before the first publish (see `plan`), then each
    publish as it returns."""
    paths = list(paths)
    studies = list(find_studies(paths))
    reports: dict[Path, Report] = {}
    for p in paths:
        reports.update(synth_reports(p if p.is_dir() else p.parent))
    uids = plan(journal, settings, studies, reports) if journal is not None else {}
    out = []
    with ExamPublisher(settings, journal=journal) as pub:
        for i, study in enumerate(studies):
            out.append(pub.publish_path(study, report=reports.get(study.resolve()),
                                        metadata={"files": str(sum(1 for f in study.rglob("*") if f.is_file()))
                                                  if study.is_dir() else "zip"},
                                        uid=uids.get(study, _UNREAD)))
            if progress:
                progress(i + 1, len(studies))
    return out


def republish(settings: Settings, entries: Iterable[JournalEntry], journal: IngestJournal | None = None, *,
              progress: Callable[[int, int], None] | None = None) -> tuple[int, list[str]]:
    """Publish the journal's `entries` again, with the report each was first sent with (`cmr ingest --resume`);
    (published, paths that no longer exist)."""
    entries = list(entries)
    gone: list[str] = []
    published = 0
    with ExamPublisher(settings, journal=journal) as pub:
        for i, e in enumerate(entries):
            if not Path(e.path).exists():
                gone.append(e.path)
            else:
                pub.publish_path(Path(e.path), report=Report(e.impression, e.labels), source="resume")
                published += 1
            if progress:
                progress(i + 1, len(entries))
    return published, gone


__all__ = ["ExamPublisher", "Report", "find_studies", "first_study_uid", "journal_key", "plan", "publish_paths",
           "record_key", "republish", "synth_reports"]
