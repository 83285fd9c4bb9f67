"""The audit trail: who did what, when, with how many results.

Each service appends JSON lines to <audit_dir>/<service>.jsonl. The file is only ever opened for appending and
every entry carries the hash of the one before it (a hash chain), so an edited, removed or reordered entry is
found by `cmr audit verify`. Appends take an exclusive file lock, so processes sharing a file keep one chain.
When audit_kafka is on, every entry is also published to the audit topic by a background thread: the file is the
record of truth, Kafka is for subscribers (a SIEM), so a broker outage never fails or slows an RPC.

Entries never hold images, paths or patient identifiers: studies appear by study key (a keyed hash), queries
by their text, and a study read from storage only as "ref".
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cmr.config import Settings

log = logging.getLogger(__name__)

GENESIS = "0" * 64


@dataclass
class AuditEntry:
    service: str
    action: str                 # search, similar, zero-shot, few-shot, cohort, export, draft, upsert, delete, ...
    method: str                 # full gRPC method
    subject: str                # token subject ("anonymous" when auth is off, "-" when no valid token)
    roles: list[str]
    status: str                 # gRPC status code name of the outcome
    results: int | None = None  # how many results went back (hits, members, sentences, bytes exported)
    what: dict[str, Any] = field(default_factory=dict)  # the request, summarised without identifiers
    detail: str = ""            # why it was refused or failed
    peer: str = ""
    ts: str = ""
    prev: str = ""
    hash: str = ""

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("hash")
        return d


def entry_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def audit_dir(settings: Settings) -> Path:
    return Path(settings.audit_dir) if settings.audit_dir else Path(settings.data_dir) / "audit"


class AuditLog:
    """Append-only, hash-chained JSON lines for one service."""

    def __init__(self, path: Path, service: str, publisher: KafkaAuditPublisher | None = None) -> None:
        self.path, self.service, self.publisher = path, service, publisher
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> AuditLog:
        publisher = KafkaAuditPublisher(settings) if settings.audit_kafka else None
        return cls(audit_dir(settings) / f"{service}.jsonl", service, publisher)

    def append(self, entry: AuditEntry) -> AuditEntry:
        entry.service = self.service
        entry.ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # other processes appending to the same file wait here
            try:
                entry.prev = _last_hash(self.path)
                entry.hash = entry_hash(entry.body())
                os.write(self._fd, (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode())
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        if self.publisher is not None:
            self.publisher.publish(entry)
        return entry

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        os.close(self._fd)


def _last_hash(path: Path) -> str:
    """Hash of the file's last entry (read from the end: O(1) in the file size)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if end == 0:
            return GENESIS
        chunk = 4096
        while True:
            start = max(0, end - chunk)
            f.seek(start)
            tail = f.read(end - start)
            lines = tail.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return str(json.loads(lines[-1])["hash"])
            chunk *= 2


class KafkaAuditPublisher:
    """Publishes entries to the audit topic from a background thread; bounded queue, drops (and counts) when the
    broker is away for long, never blocks the caller."""

    def __init__(self, settings: Settings, max_queued: int = 10_000) -> None:
        self.settings = settings
        self.dropped = 0
        self._queue: queue.Queue[AuditEntry | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="audit-kafka", daemon=True)
        self._thread.start()

    def publish(self, entry: AuditEntry) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("audit topic unreachable: %d entries not published (they are in the audit file)",
                            self.dropped)

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        from kafka.errors import KafkaError

        from cmr.kafka_io import ensure_topics, make_producer

        producer = None
        while True:
            entry = self._queue.get()
            if entry is None:
                break
            try:
                if producer is None:
                    ensure_topics(self.settings, [self.settings.kafka_topic_audit], timeout_s=10)
                    producer = make_producer(self.settings, client_id=f"cmr-audit-{entry.service}")
                producer.send(self.settings.kafka_topic_audit, key=entry.subject.encode(),
                              value=json.dumps(asdict(entry)).encode())
            except (KafkaError, OSError) as exc:
                self.dropped += 1
                log.warning("audit entry not published to Kafka (%s); it is in the audit file", exc)
        if producer is not None:
            producer.flush(timeout=5)
            producer.close(timeout=5)


# --- reading ------------------------------------------------------------------------------------------------------


def read_entries(folder: Path) -> Iterator[AuditEntry]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open() as f:
            for line in f:
                if line.strip():
                    yield AuditEntry(**json.loads(line))


def query(folder: Path, *, subject: str | None = None, action: str | None = None, service: str | None = None,
          status: str | None = None, since: datetime | None = None, until: datetime | None = None,
          limit: int | None = None) -> list[AuditEntry]:
    """Entries of every service's file matching all given filters, oldest first."""
    def keep(e: AuditEntry) -> bool:
        ts = datetime.fromisoformat(e.ts)
        return ((subject is None or e.subject == subject) and (action is None or e.action == action)
                and (service is None or e.service == service) and (status is None or e.status == status)
                and (since is None or ts >= since) and (until is None or ts <= until))
    found = sorted((e for e in read_entries(folder) if keep(e)), key=lambda e: e.ts)
    return found[-limit:] if limit else found


@dataclass
class ChainReport:
    file: str
    entries: int
    ok: bool
    problem: str = ""


def verify(folder: Path) -> list[ChainReport]:
    """Re-hash every file's chain; the first broken link is reported with its line number."""
    reports = []
    for path in sorted(folder.glob("*.jsonl")):
        prev, n, problem = GENESIS, 0, ""
        with path.open() as f:
            for n, line in enumerate(f, start=1):
                try:
                    data = json.loads(line)
                    entry = AuditEntry(**data)
                except (ValueError, TypeError) as exc:
                    problem = f"line {n}: not an audit entry ({exc})"
                    break
                if entry.prev != prev:
                    problem = f"line {n}: chain broken (an entry before it was removed, changed or reordered)"
                    break
                if entry_hash(entry.body()) != entry.hash:
                    problem = f"line {n}: entry altered (its hash does not match its content)"
                    break
                prev = entry.hash
        reports.append(ChainReport(str(path), n, not problem, problem))
    return reports

