"""The producer's journal and `cmr ingest --resume`: every study recorded as planned before the first publish,
then every publish with its key and report; resume re-publishes exactly the studies the index does not hold (a
broker restart lost them, or the run stopped before sending them), with the report they were first sent with;
a torn last line is skipped, and cut off before the next append; unreadable studies are never re-sent."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from cmr.config import Settings
from cmr.rpc.keys import study_key
from cmr.v1 import events_pb2
from ingest_svc.journal import (
    PLANNED,
    PUBLISHED,
    IngestJournal,
    JournalEntry,
    latest_per_study,
    read_journal,
    unconfirmed,
)
from ingest_svc.producer import ExamPublisher, Report, publish_paths, republish
from study_headers import header_only_dicom

SECRET = "journal-test-secret"


class _Producer:
    """Records what was sent; answers like kafka-python's future (partition, offset)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        md = SimpleNamespace(partition=0, offset=len(self.sent) - 1)
        return SimpleNamespace(get=lambda timeout: md)

    def close(self, timeout: float = 0) -> None:
        pass


def _study(root: Path, uid: str) -> Path:
    folder = root / uid
    folder.mkdir(parents=True)
    (folder / "1.dcm").write_bytes(header_only_dicom(uid))
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, study_key_secret=SECRET)


def test_publishing_records_each_study_with_its_key_and_report(tmp_path: Path, settings: Settings) -> None:
    studies = [_study(tmp_path / "s", f"1.2.3.{i}") for i in range(3)]
    producer = _Producer()
    with IngestJournal(tmp_path / "j.jsonl") as journal:
        pub = ExamPublisher(settings, producer=producer, journal=journal)
        for i, s in enumerate(studies):
            pub.publish_path(s, report=Report(f"impression {i}", ("lge",)))
    entries = read_journal(tmp_path / "j.jsonl")
    assert [e.study_key for e in entries] == [study_key(f"1.2.3.{i}", SECRET) for i in range(3)]
    assert [e.offset for e in entries] == [0, 1, 2] and entries[1].impression == "impression 1"
    sent = [events_pb2.NewExam.FromString(v) for _, _, v in producer.sent]
    assert [m.event_id for m in sent] == [e.event_id for e in entries]


def test_resume_republishes_only_what_the_index_lacks(tmp_path: Path, settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    studies = [_study(tmp_path / "s", f"1.2.3.{i}") for i in range(4)]
    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal:
        pub = ExamPublisher(settings, producer=_Producer(), journal=journal)
        for i, s in enumerate(studies):
            pub.publish_path(s, report=Report(f"impression {i}", ("lge",)))
    keys = [study_key(f"1.2.3.{i}", SECRET) for i in range(4)]
    held = {keys[0], keys[2]}  # the broker restarted before studies 1 and 3 were ingested
    todo = unconfirmed(read_journal(path), lambda ks: {k for k in ks if k in held})
    assert [e.study_key for e in todo] == [keys[1], keys[3]]

    producer = _Producer()
    monkeypatch.setattr("ingest_svc.producer.ensure_topics", lambda s: None)
    monkeypatch.setattr("ingest_svc.producer.make_producer", lambda s, client_id: producer)
    with IngestJournal(path) as journal:
        published, gone = republish(settings, todo, journal)
    assert (published, gone) == (2, [])
    resent = [events_pb2.NewExam.FromString(v) for _, _, v in producer.sent]
    assert [m.report_text for m in resent] == ["impression 1", "impression 3"]
    assert all(m.source == "resume" and list(m.labels) == ["lge"] for m in resent)
    # the journal now ends with the re-publishes: the latest entry per study is the new one
    latest = {e.study_key: e for e in latest_per_study(read_journal(path))}
    assert latest[keys[1]].event_id == resent[0].event_id and len(latest) == 4


def test_torn_line_unkeyed_and_vanished_studies(tmp_path: Path, settings: Settings,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal:
        journal.record(JournalEntry(path=str(tmp_path / "gone"), study_key="a" * 32))
        journal.record(JournalEntry(path=str(tmp_path / "not-dicom"), study_key=""))
    with path.open("a") as f:
        f.write('{"path": "/half')  # the producer died writing it
    entries = read_journal(path)
    assert len(entries) == 2
    todo = unconfirmed(entries, lambda ks: set())
    assert [e.path for e in todo] == [str(tmp_path / "gone")]  # the unkeyed one can never be confirmed
    monkeypatch.setattr("ingest_svc.producer.ensure_topics", lambda s: None)
    monkeypatch.setattr("ingest_svc.producer.make_producer", lambda s, client_id: _Producer())
    assert republish(settings, todo) == (0, [str(tmp_path / "gone")])


def test_a_line_that_is_not_a_journal_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"format": "something-else"}\n')
    with pytest.raises(ValueError, match="line 1"):
        read_journal(path)
    with pytest.raises(FileNotFoundError, match="--journal"):
        read_journal(tmp_path / "missing.jsonl")


def test_resume_cli_says_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cmr.config import get_settings
    from cmr.rpc.ports import free_ports
    from orchestration.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--help"])  # the --pacs help once broke rich markup ("[/AET]")
    assert result.exit_code == 0 and "--resume" in result.output and "4242/ORTHANC" in result.output
    result = runner.invoke(app, ["ingest", "--resume", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no ingest journal" in result.output
    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal:
        journal.record(JournalEntry(path=str(tmp_path), study_key="a" * 32))
    for k, v in {"CMR_SEARCH_URL": f"127.0.0.1:{free_ports(1)[0]}", "CMR_TLS": "false", "CMR_AUTH_MODE": "off",
                 "CMR_REQUEST_TIMEOUT_S": "2", "CMR_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["ingest", "--resume", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "search service" in result.output


class _DiesAfter(_Producer):
    """A publisher killed (or failing) after `n` sends."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        if len(self.sent) == self.n:
            raise KafkaTimeoutError("the broker went away")
        return super().send(topic, key, value)


def test_a_run_that_stops_half_way_is_resumed_in_full(tmp_path: Path, settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    studies = [_study(tmp_path / "s", f"1.2.3.{i}") for i in range(5)]
    keys = [study_key(f"1.2.3.{i}", SECRET) for i in range(5)]
    producer = _DiesAfter(2)
    monkeypatch.setattr("ingest_svc.producer.ensure_topics", lambda s: None)
    monkeypatch.setattr("ingest_svc.producer.make_producer", lambda s, client_id: producer)
    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal, pytest.raises(KafkaTimeoutError):
        publish_paths(settings, [tmp_path / "s"], journal=journal)
    entries = read_journal(path)
    # the whole plan first (before the first publish), then one line per publish that returned
    assert [e.status for e in entries] == [PLANNED] * 5 + [PUBLISHED] * 2
    assert [e.study_key for e in entries[:5]] == keys
    published = [events_pb2.NewExam.FromString(v).event_id for _, _, v in producer.sent]
    assert [e.event_id for e in entries[5:]] == published
    # nothing indexed yet: resume sends all five; the worker indexed the two published: the three never sent
    assert sorted(e.study_key for e in unconfirmed(entries, lambda ks: set())) == sorted(keys)
    todo = unconfirmed(entries, lambda ks: {keys[0], keys[1]})
    assert [e.study_key for e in todo] == keys[2:] and all(e.status == PLANNED for e in todo)

    resent = _Producer()
    monkeypatch.setattr("ingest_svc.producer.make_producer", lambda s, client_id: resent)
    with IngestJournal(path) as journal:
        assert republish(settings, todo, journal) == (3, [])
    assert [k.decode() for _, k, _ in resent.sent] == keys[2:]
    # after the resume every study's latest line is a publish: a second resume has nothing left to send
    latest = latest_per_study(read_journal(path))
    assert len(latest) == 5 and all(e.status == PUBLISHED for e in latest)
    assert unconfirmed(latest, lambda ks: set(ks)) == []


def test_reopening_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal:
        journal.record(JournalEntry(path="/a", study_key="a" * 32))
    with path.open("a") as f:
        f.write('{"path": "/half')  # the producer died writing it
    with IngestJournal(path) as journal:  # `--resume` appends to the same file
        journal.record(JournalEntry(path="/b", study_key="b" * 32))
    assert [e.path for e in read_journal(path)] == ["/a", "/b"]  # not glued to the fragment: every line parses


def test_resume_with_the_broker_away_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume reads the topic to leave queued studies alone: without a broker it says so, and sends nothing."""
    from typer.testing import CliRunner

    from cmr.config import get_settings
    from cmr.rpc.ports import free_ports
    from orchestration.cli.main import app

    path = tmp_path / "j.jsonl"
    with IngestJournal(path) as journal:
        journal.record(JournalEntry(path=str(tmp_path), study_key="a" * 32, event_id="e1", partition=0, offset=0))
    search_port, kafka_port = free_ports(2)
    for k, v in {"CMR_SEARCH_URL": f"127.0.0.1:{search_port}", "CMR_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
                 "CMR_TLS": "false", "CMR_AUTH_MODE": "off", "CMR_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("ingest_svc.journal.indexed_by", lambda client: lambda keys: set())  # nothing indexed
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["ingest", "--resume", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and f"Kafka at 127.0.0.1:{kafka_port}" in result.output, result.output
    assert len(read_journal(path)) == 1  # nothing re-published
