"""The Orthanc bridge with Kafka away (ingest_svc.orthanc.OrthancBridge): it no longer needs the broker to
start; a publish waits with the platform's Kafka backoff (cmr/kafka_wait.py) for a broker that is down or
restarted, with a new publisher per attempt, and the change position is saved only once the study is
published; a stop during the wait ends run() without saving it (the study is published after a restart). The
real broker: tests/integration/ingest_svc/test_kafka_wait_beyond_worker.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from kafka.errors import BrokerNotAvailableError, UnknownProducerIdError

from cmr.config import Settings
from ingest_svc.orthanc import OrthancBridge

FAST = Settings(ingest_backoff_s=0.01, ingest_backoff_max_s=0.02, kafka_bootstrap="127.0.0.1:9",
                orthanc_url="http://127.0.0.1:9")


class _Response:
    status_code = 200

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict[str, Any]:
        return self.body


class _Orthanc:
    """Answers the bridge's two requests: one StableStudy change (seq 7), and that study's tags."""

    def get(self, url: str, params: Any = None, timeout: float = 0) -> _Response:
        if url.endswith("/changes"):
            return _Response({"Changes": [{"ChangeType": "StableStudy", "ID": "o1", "Seq": 7}], "Last": 7,
                              "Done": True})
        return _Response({"MainDicomTags": {"StudyInstanceUID": "1.2.3"}, "Series": ["s"]})


class _Publisher:
    def __init__(self, outcomes: list[Exception | None], sent: list[str]) -> None:
        self.outcomes, self.sent = outcomes, sent
        self.producer = self

    def publish(self, msg: Any, uid: str | None = None) -> tuple[int, int]:
        error = self.outcomes.pop(0) if self.outcomes else None
        if error is not None:
            raise error
        self.sent.append(uid or "")
        return 0, len(self.sent)

    def close(self, timeout: float | None = None) -> None:
        pass


def _bridge(tmp_path: Path, connect: Any) -> OrthancBridge:
    bridge = OrthancBridge(FAST, state_file=tmp_path / "state.json", connect=connect)
    bridge._http = _Orthanc()  # type: ignore[assignment]
    return bridge


def test_a_publish_waits_for_the_broker_then_saves_the_position(tmp_path: Path) -> None:
    sent: list[str] = []
    # the broker is down for three connection attempts, then the first producer meets a restart (its id is
    # unknown), then a new one publishes
    attempts: list[Exception | None] = [BrokerNotAvailableError()] * 3 + [None, None]
    made: list[_Publisher] = []

    def connect() -> _Publisher:
        error = attempts.pop(0)
        if error is not None:
            raise error
        made.append(_Publisher([UnknownProducerIdError()] if not made else [], sent))
        return made[-1]

    bridge = _bridge(tmp_path, connect)  # constructed with the broker down: nothing waited for yet
    assert bridge.poll_once() == 1
    assert sent == ["1.2.3"] and len(made) == 2 and bridge.kafka_retries == 4
    assert json.loads((tmp_path / "state.json").read_text())["since"] == 7


def test_a_stop_during_the_wait_ends_run_without_saving_the_position(tmp_path: Path) -> None:
    tried = threading.Event()

    def connect() -> _Publisher:
        tried.set()
        raise BrokerNotAvailableError()

    bridge = _bridge(tmp_path, connect)
    runner = threading.Thread(target=bridge.run, kwargs={"poll_s": 0.05})
    runner.start()
    assert tried.wait(10)
    bridge.stop()
    runner.join(10)
    assert not runner.is_alive()
    assert not (tmp_path / "state.json").exists()  # the study was not published: the next start publishes it
    assert bridge.published == 0
