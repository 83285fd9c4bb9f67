"""The audit trail: who did what, when, with how many results.

Each service appends JSON lines to <audit_dir>/<service>.jsonl. The file is only ever opened for appending and
every entry carries the hash of the one before it (a hash chain), so an edited, removed or reordered entry is
found by `cmr audit verify`. Appends take an exclusive file lock, so processes sharing a file keep one chain.
When audit_kafka is on, every entry is also published to the audit topic by a background thread: the file is the
record of truth, Kafka is for subscribers (a SIEM), so a broker outage never fails or slows an RPC (entries wait
in a bounded queue for the broker; see KafkaAuditPublisher).

Entries never hold images, paths or patient identifiers: studies appear by study key (a keyed hash), queries
by their text, and a study read from storage only as "ref".
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmr.config import Settings

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

GENESIS = "0" * 64
RESERVE_RETRY_S = 10.0  # how often a released audit reserve is tried again


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
    """Append-only, hash-chained JSON lines for one service.

    Durability: with fsync on (settings.audit_fsync, the default) append() returns only once the entry is on
    disk, so an entry written before an RPC answered survives a SIGKILL and a power cut. It is a group commit:
    threads that append while an fdatasync runs are all covered by the next one, so N concurrent RPCs cost
    about two fdatasyncs, not N (0.7 ms each on the development machine's disk; see docs/reliability.md).
    With sync_delay_s > 0 (settings.audit_sync_delay_ms) append() returns once the entry is written to the file,
    which a SIGKILL does not undo, and a background thread fdatasyncs within sync_delay_s of it: a power cut loses
    at most the entries of the last sync_delay_s, and no RPC waits for the disk.
    An entry torn by a crash or a full disk in the middle of its write (it never answered its RPC) is moved
    aside to <file>.torn before the next append, so the chain stays verifiable."""

    def __init__(self, path: Path, service: str, publisher: KafkaAuditPublisher | None = None, *,
                 fsync: bool = True, reserve_bytes: int = 0, sync_delay_s: float = 0.0) -> None:
        """reserve_bytes: space kept allocated beside the file for the entries written once the disk is full
        (SpaceReserve); 0 = none. sync_delay_s: with fsync, 0 = each append waits for its sync; > 0 = a background
        thread syncs at most this long after an append, which does not wait."""
        self.path, self.service, self.publisher, self.fsync = path, service, publisher, fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)  # read: the torn-tail check
        self.reserve = SpaceReserve(path.with_name(path.name + ".reserve"), reserve_bytes)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0  # entries appended by this object
        self._synced = 0   # of those, how many an fdatasync has covered
        self.sync_delay_s = sync_delay_s if fsync else 0.0
        self._dirty = threading.Event()   # an entry was written since the background sync last started
        self._closing = threading.Event()
        self._syncer: threading.Thread | None = None
        if self.sync_delay_s > 0:
            self._syncer = threading.Thread(target=self._sync_later, name=f"audit-sync-{service}", daemon=True)
            self._syncer.start()

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> AuditLog:
        publisher = KafkaAuditPublisher(settings) if settings.audit_kafka else None
        return cls(audit_dir(settings) / f"{service}.jsonl", service, publisher, fsync=settings.audit_fsync,
                   reserve_bytes=int(settings.audit_reserve_mb * 2**20),
                   sync_delay_s=settings.audit_sync_delay_ms / 1000)

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Write one entry (on disk when this returns, with fsync on). OSError (a full disk...) leaves the file
        as it was before the call."""
        entry.service = self.service
        entry.ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # other processes appending to the same file wait here
            try:
                size = _drop_torn_tail(self.path, self._fd)
                entry.prev = _last_hash(self.path, size)
                entry.hash = entry_hash(entry.body())
                data = (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode()
                try:
                    _write_all_or_nothing(self._fd, data, size)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.reserve.release(self.path):
                        raise
                    _write_all_or_nothing(self._fd, data, size)  # into the space the reserve held
                self.reserve.keep()  # made again once space is back (cheap while it is held)
                self._written += 1
                mine = self._written
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        if self._syncer is not None:
            self._dirty.set()
        elif self.fsync:
            self._sync(mine)
        if self.publisher is not None:
            self.publisher.publish(entry)
        return entry

    def _sync(self, mine: int) -> None:
        """Return once entry number `mine` is on disk: one fdatasync covers every entry written before it began."""
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fdatasync that started after our write already covered it
            covered = self._written  # everything written so far is in the page cache: this sync covers it
            os.fdatasync(self._fd)
            self._synced = max(self._synced, covered)

    @property
    def unsynced(self) -> int:
        """Entries written but not yet covered by an fdatasync (what a power cut now would lose)."""
        return self._written - self._synced if self.fsync else 0

    def _sync_later(self) -> None:
        """The background sync of sync_delay_s mode: wait for an append, let the others of the next sync_delay_s
        join it, sync them all at once. A failing sync (EIO) is logged and tried again at the next append."""
        while True:
            self._dirty.wait()
            if self._closing.wait(self.sync_delay_s):
                return  # close() syncs what is left
            self._dirty.clear()
            try:
                self._sync(self._written)
            except OSError:
                log.exception("audit log %s: fdatasync failed; entries since the last sync are not yet on disk",
                              self.path)

    def close(self) -> None:
        if self._syncer is not None:
            self._closing.set()
            self._dirty.set()
            self._syncer.join()
            try:
                self._sync(self._written)
            except OSError:
                log.exception("audit log %s: the last fdatasync failed", self.path)
        if self.publisher is not None:
            self.publisher.close()
        os.close(self._fd)


class SpaceReserve:
    """A file of `size` bytes allocated beside an audit log and given back to the filesystem when a write finds
    the disk full, so that the entries of the RPCs answered meanwhile are still written (about size / 400 of
    them) while everything else on that disk is refused; made again, at most every RESERVE_RETRY_S, once the
    disk has room for it. Best effort: another program can take the released space first."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.held = size > 0 and path.is_file() and path.stat().st_blocks * 512 >= size
        self.releases = 0
        self._next_try = 0.0
        self.keep()

    def keep(self) -> None:
        if self.held or self.size <= 0 or time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + RESERVE_RETRY_S
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # really allocated: a sparse file would hold nothing
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            self.held = True
        except OSError:  # no room yet
            tmp.unlink(missing_ok=True)

    def release(self, log_file: Path) -> bool:
        """Give the space back (the disk is full); False when there is none to give."""
        if not self.held:
            return False
        self.path.unlink(missing_ok=True)
        self.held = False
        self.releases += 1
        self._next_try = time.monotonic() + RESERVE_RETRY_S
        log.error("the disk under the audit log %s is full: its %.0f MB reserve is released so that entries go on "
                  "being written; free space there", log_file, self.size / 2**20)
        return True


def _write_all_or_nothing(fd: int, data: bytes, size: int) -> None:
    """Append `data`; on a short write or an error (ENOSPC) cut the file back to `size` and raise OSError."""
    try:
        n = os.write(fd, data)
        if n != len(data):
            raise OSError(errno.ENOSPC, f"short write ({n} of {len(data)} bytes): is the disk full?")
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            log.exception("could not cut a partly written audit entry back off")
        raise


def _drop_torn_tail(path: Path, fd: int) -> int:
    """The file's size once a torn last line (no newline: a writer died in the middle of it) is moved to
    <file>.torn; the lock is held, so no other writer is in the middle of a line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    with path.open("rb") as f:
        data = f.read()
    keep = data.rfind(b"\n") + 1
    with open(path.with_name(path.name + ".torn"), "ab") as torn:
        torn.write(data[keep:] + b"\n")
    os.ftruncate(fd, keep)
    log.warning("audit log %s ended in a torn entry (a crash while it was written, before its RPC answered); "
                "moved it to %s.torn", path, path.name)
    return keep


def _last_hash(path: Path, end: int) -> str:
    """Hash of the entry ending at byte `end` (read from the end: O(1) in the file size)."""
    if end == 0:
        return GENESIS
    with path.open("rb") as f:
        chunk = 4096
        while True:
            start = max(0, end - chunk)
            f.seek(start)
            tail = f.read(end - start)
            lines = tail.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return str(json.loads(lines[-1])["hash"])
            chunk *= 2


class PublisherStopping(Exception):
    """Raised inside a Kafka wait of the audit publisher when it is being closed."""


class KafkaAuditPublisher:
    """Publishes entries to the audit topic from a background thread, so an RPC never waits for Kafka.

    Kafka away (down at start, restarting, unreachable): the thread waits with the platform's Kafka backoff
    (cmr/kafka_wait.py: one warning per attempt, a new producer each time, the topic re-created) and publishes
    everything queued, in order, once the broker answers. Entries produced meanwhile wait in a bounded queue
    (`max_queued`, CMR_AUDIT_KAFKA_QUEUE); when it is full, new entries are not queued: they are counted
    (`dropped`, a warning at the first and every 1000th) and stay in the audit file, which is the record.
    Delivery to the topic is at least once: a batch interrupted by a broker restart is sent again (subscribers
    de-duplicate on the entry's hash). Errors no retry can fix (PERMANENT_KAFKA_ERRORS: not authorised...) drop
    the batch (counted, logged) and the thread goes on. close() publishes what is queued if the broker answers
    within `timeout_s`, then gives up on the rest (counted in `unpublished`)."""

    BATCH = 500

    def __init__(self, settings: Settings, max_queued: int | None = None,
                 connect: Callable[[], Any] | None = None) -> None:
        """connect(): a new producer (default: create the audit topic, then make_producer); tests pass a fake."""
        self.settings = settings
        self.dropped = 0      # not queued: the queue was full while Kafka was away
        self.failed = 0       # dropped after an error no retry can fix
        self.published = 0
        self.unpublished = 0  # still queued when close() gave up
        self.retries = 0
        self._connect = connect or self._default_connect
        limit = settings.audit_kafka_queue if max_queued is None else max_queued
        self._queue: queue.Queue[AuditEntry | None] = queue.Queue(maxsize=limit)
        self._stopping = threading.Event()
        self._producer: Any = None
        self._thread = threading.Thread(target=self._run, name="audit-kafka", daemon=True)
        self._thread.start()

    def publish(self, entry: AuditEntry) -> None:
        """Queue `entry`; never blocks."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("audit topic unreachable and %d entries queued: %d entries not published (they are "
                            "in the audit file)", self._queue.maxsize, self.dropped)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self._queue.put_nowait(None)  # after what is queued: published first if the broker answers
        except queue.Full:
            self._stopping.set()
        self._thread.join(timeout_s)
        self._stopping.set()  # a broker still away: stop waiting for it
        self._thread.join(max(1.0, timeout_s))

    def _default_connect(self) -> Any:
        from cmr.kafka_io import ensure_topics, make_producer
        from cmr.kafka_wait import BROKER_ATTEMPT_S

        ensure_topics(self.settings, [self.settings.kafka_topic_audit], timeout_s=BROKER_ATTEMPT_S)
        return make_producer(self.settings, client_id="cmr-audit")

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise PublisherStopping()

    def _run(self) -> None:
        done = False
        while not done:
            first = self._queue.get()
            batch = [] if first is None else [first]
            done = first is None
            while not done and len(batch) < self.BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                else:
                    batch.append(more)
            if batch and not self._send(batch):
                self.unpublished += len(batch) + self._queue.qsize()
                log.warning("audit publisher closed with %d entries not published to Kafka (they are in the "
                            "audit file)", self.unpublished)
                break
        self._drop_producer(timeout_s=5)

    def _send(self, batch: list[AuditEntry]) -> bool:
        """Publish `batch` (awaited), waiting for the broker as long as it takes; False when closed first."""
        from kafka.errors import KafkaError  # imported here: a service without audit_kafka never loads kafka

        from cmr.kafka_wait import kafka_connection_logs_quiet, kafka_retrying, retry_outline

        what = f"Kafka at {self.settings.kafka_bootstrap}"

        def before_retry(state: RetryCallState) -> None:
            exc, pause = retry_outline(state)
            self.retries += 1
            self._drop_producer()
            log.warning("audit publisher waiting for %s: attempt %d failed (%s: %s); %d entries waiting, next "
                        "attempt in %.1f s", what, state.attempt_number, type(exc).__name__, exc,
                        len(batch) + self._queue.qsize(), pause)

        try:
            with kafka_connection_logs_quiet():
                for attempt in kafka_retrying(self.settings, before_retry, self._sleep):
                    with attempt:
                        if self._producer is None:
                            self._producer = self._connect()
                        futures = [self._producer.send(self.settings.kafka_topic_audit, key=e.subject.encode(),
                                                       value=json.dumps(asdict(e)).encode()) for e in batch]
                        self._producer.flush(timeout=self.settings.kafka_request_timeout_ms / 1000)
                        for f in futures:
                            f.get(timeout=0)  # the broker's answer: raises the send's KafkaError
        except PublisherStopping:
            return False
        except Exception as exc:  # noqa: BLE001 - a KafkaError no retry can fix, or a bug: the thread lives on
            self.failed += len(batch)
            self._drop_producer()
            log.error("audit entries not published to Kafka (%s: %s); %d so far; they are in the audit file",
                      type(exc).__name__, exc, self.failed, exc_info=not isinstance(exc, KafkaError))
            return True
        self.published += len(batch)
        return True

    def _drop_producer(self, timeout_s: float = 0) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout_s)
            except Exception:  # noqa: BLE001 - a broken producer may fail to close; it is dropped either way
                log.debug("closing the audit producer failed", exc_info=True)


# --- reading ------------------------------------------------------------------------------------------------------


def read_entries(folder: Path) -> Iterator[AuditEntry]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open() as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a torn last entry (see verify): not a record of anything that answered
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
    note: str = ""  # something worth knowing that does not break the chain (a torn last entry)


def verify(folder: Path) -> list[ChainReport]:
    """Re-hash every file's chain; the first broken link is reported with its line number. A last line without
    its newline that does not parse is a torn write (the process died in the middle of it, before the RPC it
    records answered): noted, not a break; the next append moves it aside."""
    reports = []
    for path in sorted(folder.glob("*.jsonl")):
        prev, n, problem, note = GENESIS, 0, "", ""
        with path.open() as f:
            for i, line in enumerate(f, start=1):
                try:
                    data = json.loads(line)
                    entry = AuditEntry(**data)
                except (ValueError, TypeError) as exc:
                    if not line.endswith("\n"):
                        note = f"line {i}: torn last entry ({len(line)} bytes), written when the process stopped"
                        break
                    problem = f"line {i}: not an audit entry ({exc})"
                    break
                n = i
                if entry.prev != prev:
                    problem = f"line {i}: chain broken (an entry before it was removed, changed or reordered)"
                    break
                if entry_hash(entry.body()) != entry.hash:
                    problem = f"line {i}: entry altered (its hash does not match its content)"
                    break
                prev = entry.hash
        reports.append(ChainReport(str(path), n, not problem, problem, note))
    return reports
