"""The worker's per-record logic with a stand-in pipeline and producer (no broker): what is published where,
retries of transient failures, and that no failure escapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from kafka.errors import KafkaError, UnknownProducerIdError

from cmr.config import Settings
from cmr.v1 import common_pb2, events_pb2
from ingest_svc.messages import IngestFailure, Stage, embedding_created, new_exam, study_ref
from ingest_svc.pipeline import Outcome
from ingest_svc.worker import IngestWorker

KEY = "a" * 32


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Future:
    def get(self, timeout: float) -> None:
        return None


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> _Future:
        self.sent.append((topic, key, value))
        return _Future()


class _Pipeline:
    def __init__(self, *effects: Any) -> None:
        self.effects = list(effects)
        self.calls = 0

    def context(self) -> None:
        return None

    def process(self, msg: events_pb2.NewExam) -> Outcome:
        self.calls += 1
        effect = self.effects.pop(0) if len(self.effects) > 1 else self.effects[0]
        if isinstance(effect, Exception):
            raise effect
        event = embedding_created(study_key=KEY, model=common_pb2.ModelInfo(version="m@1"), exam_point_id="p",
                                  embedding=[1.0], scores=[], views=[], impression="", labels=[],
                                  source_event_id=msg.event_id)
        return Outcome(event, KEY, duplicate=effect == "duplicate", created=True, seconds={"encode": 0.1})


def _worker(pipeline: _Pipeline) -> tuple[IngestWorker, _Producer]:
    s = Settings(ingest_max_attempts=3, ingest_backoff_s=0.001, ingest_backoff_max_s=0.002)
    w = IngestWorker(s, pipeline=pipeline)  # type: ignore[arg-type]
    producer = _Producer()
    w._producer = producer  # type: ignore[assignment]
    return w, producer


def _record(value: bytes | None) -> _Record:
    return _Record("cmr.exams.new", 1, 5, b"k", value)


def _good() -> bytes:
    return new_exam(study_ref(path="/x")).SerializeToString()


def test_success_publishes_the_event_keyed_by_study() -> None:
    w, p = _worker(_Pipeline("ok"))
    w.handle(_record(_good()))
    assert [(t, k) for t, k, _ in p.sent] == [("cmr.exams.embedded", KEY.encode())]
    assert w.stats.indexed == 1 and w.metrics.value("cmr_ingest_messages_total", outcome="indexed") == 1


def test_transient_failures_are_retried_then_dead_lettered() -> None:
    pipe = _Pipeline(IngestFailure(Stage.ENCODE, "UNAVAILABLE", transient=True))
    w, p = _worker(pipe)
    w.handle(_record(_good()))
    assert pipe.calls == 3
    (topic, _, value), = p.sent
    letter = events_pb2.DeadLetter.FromString(value)
    assert topic == "cmr.exams.dead-letter" and letter.stage == "encode" and letter.attempts == 3
    assert "still failing after 3 attempts" in letter.reason
    assert w.metrics.value("cmr_ingest_retries_total", stage="encode") == 2


def test_recovers_when_a_transient_failure_clears() -> None:
    pipe = _Pipeline(IngestFailure(Stage.FETCH, "refused", transient=True), "ok")
    w, p = _worker(pipe)
    w.handle(_record(_good()))
    assert pipe.calls == 2 and p.sent[0][0] == "cmr.exams.embedded"


@pytest.mark.parametrize("effect", [IngestFailure(Stage.LOAD, "no cine series"), KeyError("a bug")])
def test_bad_input_and_bugs_go_to_the_dead_letter_topic_once(effect: Exception) -> None:
    pipe = _Pipeline(effect)
    w, p = _worker(pipe)
    w.handle(_record(_good()))
    assert pipe.calls == 1 and len(p.sent) == 1 and p.sent[0][0] == "cmr.exams.dead-letter"
    assert events_pb2.DeadLetter.FromString(p.sent[0][2]).stage == "load"


def test_undecodable_record_and_duplicate_notice() -> None:
    w, p = _worker(_Pipeline("duplicate"))
    w.handle(_record(b"\xff\xfe"))
    w.handle(_record(_good()))
    stages = [events_pb2.DeadLetter.FromString(v).stage for t, _, v in p.sent if t == "cmr.exams.dead-letter"]
    assert stages == ["decode", "dedupe"]
    assert [t for t, _, _ in p.sent].count("cmr.exams.embedded") == 1
    assert (w.stats.dead_letters, w.stats.duplicates) == (1, 1)


class _DownFuture:
    """The ack of a publish while the broker is down: a retriable Kafka error."""

    def get(self, timeout: float) -> None:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError("broker not reachable")


class _FlakyProducer(_Producer):
    """Refuses the first `down` sends as an unreachable broker would, then takes them."""

    def __init__(self, down: int, error: Exception | None = None) -> None:
        super().__init__()
        self.down, self.error, self.tries, self.closed = down, error, 0, 0

    def close(self, timeout: float | None = None) -> None:
        self.closed += 1

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.tries += 1
        if self.tries <= self.down:
            if self.error is not None:
                raise self.error
            return _DownFuture()
        return super().send(topic, key, value)


@pytest.mark.parametrize("error", [None, UnknownProducerIdError(), KafkaError("InitProducerId: UnknownError")])
def test_a_broker_outage_is_ridden_out_with_backoff(monkeypatch: pytest.MonkeyPatch, error: Exception | None) -> None:
    """Publishing the event retries (re-creating the topics, with a new producer each time: after a broker restart
    the old producer's id is unknown to it) until the broker is back, instead of stopping the worker: more tries
    than the study's own retry budget, so it is not that budget."""
    ensured: list[str] = []
    monkeypatch.setattr("ingest_svc.worker.ensure_topics", lambda s, timeout_s: ensured.append(s.kafka_topic_new))
    w, _ = _worker(_Pipeline("ok"))
    flaky = _FlakyProducer(down=6, error=error)
    made: list[int] = []
    monkeypatch.setattr("ingest_svc.worker.make_producer", lambda s: made.append(1) or flaky)
    w._producer = flaky  # type: ignore[assignment]
    w.handle(_record(_good()))
    assert [t for t, _, _ in flaky.sent] == [w.settings.kafka_topic_embedded]
    assert flaky.tries == 7 and len(ensured) == 6
    assert flaky.closed == 6 and len(made) == 6  # each failed producer dropped, a new one made
    assert w.stats.indexed == 1
    assert w.metrics.retries.labels("publish")._value.get() == 6


def test_a_non_retriable_publish_error_still_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka.errors import MessageSizeTooLargeError

    from ingest_svc.worker import PublishError

    monkeypatch.setattr("ingest_svc.worker.ensure_topics", lambda s, timeout_s: None)
    w, _ = _worker(_Pipeline("ok"))
    w._producer = _FlakyProducer(down=1, error=MessageSizeTooLargeError("too big"))  # type: ignore[assignment]
    monkeypatch.setattr("ingest_svc.worker.make_producer", lambda s: pytest.fail("no retry expected"))
    with pytest.raises(PublishError, match="MessageSizeTooLargeError"):
        w.handle(_record(_good()))


def test_a_stop_during_an_outage_leaves_the_record_uncommitted(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest_svc.worker import WorkerStopping

    monkeypatch.setattr("ingest_svc.worker.ensure_topics", lambda s, timeout_s: w.request_stop())
    w, _ = _worker(_Pipeline("ok"))
    flaky = _FlakyProducer(down=100)
    w._producer = flaky  # type: ignore[assignment]
    monkeypatch.setattr("ingest_svc.worker.make_producer", lambda s: flaky)
    with pytest.raises(WorkerStopping):
        w.handle(_record(_good()))
    assert w.stats.indexed == 0
