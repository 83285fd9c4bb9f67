"""The demo seeder under a stack whose parts get killed (found by the `cmr up` crash bench): a restarting
service or broker is waited for instead of ending the seeder, and studies a broker restart lost are
re-published until the index holds every study sent."""

from __future__ import annotations

import grpc
import pytest
from kafka.errors import KafkaTimeoutError

from orchestration.stack.seed_confirm import confirm_indexed, patiently, transient


class Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_studies_lost_by_a_broker_restart_are_republished_until_indexed() -> None:
    index: set[str] = set()
    queue = ["a"]  # "b" was queued in the broker when it restarted: gone; "a" is still queued
    republished: list[str] = []

    def held(keys: list[str]) -> set[str]:
        return {k for k in keys if k in index}

    def again(key: str):  # noqa: ANN202
        return lambda: (republished.append(key), queue.append(key))

    def count() -> int:
        if queue and clock.t > 5:
            index.add(queue.pop())  # the worker indexes the queued study after a while
        return len(index)

    clock, lines, looked_up = Clock(), [], []
    missing = confirm_indexed({"a": again("a"), "b": again("b")}, lambda keys: looked_up.append(len(keys)) or
                              held(keys), count, stall_s=30, rounds=3, say=lines.append, poll_s=2, sweep_s=10,
                              now=clock.now, sleep=clock.sleep)
    assert missing == [] and index == {"a", "b"}
    assert republished == ["b"]  # only what the index did not hold, once
    assert clock.t >= 30 and "re-publishing them (1/3)" in lines[0]
    assert len(looked_up) <= clock.t / 10 + 3  # keys looked up every sweep_s (and before re-publishing), not every poll


def test_a_study_never_indexed_is_reported_after_the_rounds() -> None:
    republished: list[str] = []
    clock, lines = Clock(), []
    missing = confirm_indexed({"x": lambda: republished.append("x")}, lambda keys: set(), lambda: 7, stall_s=10,
                              rounds=2, say=lines.append, now=clock.now, sleep=clock.sleep)
    assert missing == ["x"] and republished == ["x", "x"] and len(lines) == 2


def test_patiently_waits_for_a_restarting_service_and_reconnects() -> None:
    answers: list[BaseException | str] = [Rpc(grpc.StatusCode.UNAVAILABLE), KafkaTimeoutError("broker away"), "ok"]
    recovered, lines = [], []

    def call() -> str:
        a = answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a

    assert patiently(call, "the broker", 30, lines.append, recover=lambda: recovered.append(1),
                     first_wait_s=0.001) == "ok"
    assert len(recovered) == 2 and all("the broker not answering" in x for x in lines)


def test_patiently_does_not_retry_what_a_restart_cannot_cure() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise Rpc(grpc.StatusCode.INVALID_ARGUMENT)

    with pytest.raises(grpc.RpcError):
        patiently(call, "the search service", 30, print, first_wait_s=0.001)
    assert len(calls) == 1
    assert transient(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED)) and not transient(ValueError("bad"))
