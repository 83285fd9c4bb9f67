"""The producer's journal: what `cmr ingest --journal FILE` published, so that `cmr ingest --resume FILE` can
re-publish what the index never confirmed.

Why: the one-machine stack's broker (Tansu, memory storage) loses every queued exam when it restarts, and a
producer whose publish returned cannot know. The journal is the producer's own record: before the first
publish, one "planned" line per study found (the study, its key, the report it will be sent with), fsynced
together; then one "published" line per publish, fsynced before the next study is published. Resume reads
it, asks the search service which study keys it holds, and publishes every planned or published study it
does not hold again (same report). So a `cmr ingest` killed half-way (or stopped by a Kafka error) loses
nothing either: what it never reached is planned, hence re-sent. A study still queued when resume runs (its
record on the topic, not yet consumed: ingest_svc/queued.py) is not sent again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

JOURNAL_FORMAT = "cmr-ingest-journal/1"
PLANNED, PUBLISHED = "planned", "published"


@dataclass(frozen=True)
class JournalEntry:
    path: str                  # the study folder or zip, as published
    study_key: str             # the key the index will hold it under; "" when its header could not be read
    impression: str = ""
    labels: tuple[str, ...] = ()
    event_id: str = ""
    partition: int = -1
    offset: int = -1
    published_at: str = ""
    status: str = PUBLISHED    # or PLANNED: found and about to be published (lines of older journals: published)
    format: str = JOURNAL_FORMAT

    @classmethod
    def from_json(cls, line: str) -> JournalEntry:
        data = json.loads(line)
        if data.get("format") != JOURNAL_FORMAT:
            raise ValueError(f"not an ingest journal line (format {data.get('format')!r})")
        return cls(**{**data, "labels": tuple(data.get("labels", ()))})


class IngestJournal:
    """Append-only JSON lines; each record() / record_all() is on disk when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._fh = path.open("a", encoding="utf-8")

    def record(self, entry: JournalEntry) -> None:
        self.record_all([entry])

    def record_all(self, entries: Iterable[JournalEntry]) -> None:
        """Append the entries with one fsync (the plan of a whole `cmr ingest` run)."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lines = [json.dumps(asdict(e if e.published_at else replace(e, published_at=now)), separators=(",", ":"))
                 + "\n" for e in entries]
        self._fh.write("".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> IngestJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_torn_tail(path: Path) -> None:
    """Remove a last line without its newline (a writer died in the middle of it: never promised), so the next
    append starts a line of its own instead of gluing itself to the fragment (which would then not parse)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)  # rare (a torn line), so reading it all is fine
        f.flush()
        os.fsync(f.fileno())


def read_journal(path: Path) -> list[JournalEntry]:
    """Every entry, oldest first; a torn last line (the producer died writing it) is skipped. ValueError names
    the line of anything else that is not a journal entry."""
    if not path.is_file():
        raise FileNotFoundError(f"no ingest journal at {path} (write one with `cmr ingest PATH --journal {path}`)")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break  # torn: that study's publish never returned, so it was never promised
            if not line.strip():
                continue
            try:
                out.append(JournalEntry.from_json(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path} line {n}: {exc}") from exc
    return out


def latest_per_study(entries: Iterable[JournalEntry]) -> list[JournalEntry]:
    """The last publish of each study path, in first-published order."""
    latest: dict[str, JournalEntry] = {}
    for e in entries:
        latest.pop(e.path, None)
        latest[e.path] = e
    return list(latest.values())


def unconfirmed(entries: Iterable[JournalEntry],
                indexed: Callable[[Sequence[str]], set[str]]) -> list[JournalEntry]:
    """Studies of the journal the index does not hold; `indexed(keys)` returns the keys it holds. A study
    without a key (its header was unreadable, so the worker dead-letters it) can never be confirmed and is not
    re-published."""
    studies = [e for e in latest_per_study(entries) if e.study_key]
    held = indexed([e.study_key for e in studies]) if studies else set()
    return [e for e in studies if e.study_key not in held]


def indexed_by(client: object) -> Callable[[Sequence[str]], set[str]]:
    """`indexed` over a SearchClient: a Get per key, NOT_FOUND meaning not held (any other error raises)."""
    import grpc

    def check(keys: Sequence[str]) -> set[str]:
        held = set()
        for k in keys:
            try:
                client.get(k)  # type: ignore[attr-defined]
                held.add(k)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
        return held

    return check


__all__ = ["IngestJournal", "JournalEntry", "indexed_by", "latest_per_study", "read_journal", "unconfirmed"]
