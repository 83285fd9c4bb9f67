"""The load generator's loops with a stand-in client (no network): every call is timed and attributed to its
RPC, failures are counted by status code, users are taken in turn, and an open loop stamps calls from their
scheduled arrival. Nothing about speed is asserted."""

from __future__ import annotations

import threading

import grpc
import pytest

from bench.load_gen import MIX, Workload, run_closed_loop, run_open_loop
from bench.load_stats import OK, in_window, saturated, summarize


class _Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED


class _FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail = 0, fail

    def _hit(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        if self.fail:
            raise _Refused()

    search_text = similar = zero_shot = get = _hit


class _FakePool:
    def __init__(self, clients: list[_FakeClient]) -> None:
        self.clients, self._i, self._lock = clients, 0, threading.Lock()

    def next(self) -> _FakeClient:
        with self._lock:
            self._i += 1
            return self.clients[self._i % len(self.clients)]


WORK = Workload(["dilated left ventricle", "normal study"], ["k1", "k2"], MIX)


def test_closed_loop_times_every_call_and_spreads_users() -> None:
    pool = _FakePool([_FakeClient(), _FakeClient(), _FakeClient(fail=True)])
    samples, ws, we = run_closed_loop(pool, WORK, 2, 0.05, 1.0, seed=1)  # type: ignore[arg-type]
    assert samples and {s.rpc for s in samples} <= {n for n, _ in MIX}
    assert all(c.calls > 0 for c in pool.clients)  # round robin over the identities
    codes = {s.code for s in samples}
    assert codes == {OK, "RESOURCE_EXHAUSTED"}
    step = summarize("idle", 2, in_window(samples, ws, we), we - ws)
    assert step.rpcs["all"].errors["RESOURCE_EXHAUSTED"] > 0 and step.in_flight >= 0


def test_open_loop_stamps_scheduled_arrivals_inside_the_run() -> None:
    pool = _FakePool([_FakeClient()])
    samples, ws, we = run_open_loop(pool, WORK, 200.0, 0.05, 0.3, seed=2)  # type: ignore[arg-type]
    assert samples and all(s.code == OK for s in samples)
    assert all(ws - 0.05 - 1e-3 <= s.start_s < we for s in samples)
    step = summarize("idle", 0, in_window(samples, ws, we), we - ws, mode="open", offered_qps=200.0)
    assert step.mode == "open" and step.offered_qps == 200.0


class _CountingClient(_FakeClient):
    """Sets `served` once it has answered `n` calls."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.served = n, threading.Event()

    def _count(self, *args: object, **kwargs: object) -> None:
        self._hit()
        if self.calls >= self.n:
            self.served.set()

    search_text = similar = zero_shot = get = _count


def test_a_blocking_tick_does_not_hold_back_the_open_loops_arrivals() -> None:
    """The tick does blocking I/O (a Stats call over a new TLS channel...). Here it blocks until calls have been
    answered: run on the scheduling thread, as it was, no call is made meanwhile and it waits in vain."""
    client = _CountingClient(5)
    seen: list[bool] = []
    samples, _, _ = run_open_loop(_FakePool([client]), WORK, 200.0, 0.05, 0.3, seed=3,  # type: ignore[arg-type]
                                  tick=lambda: seen.append(client.served.wait(10.0)))
    assert seen[0] is True and len(samples) >= 5


@pytest.mark.parametrize("loop", ["open", "closed"])
def test_a_failing_tick_fails_the_step(loop: str) -> None:
    def tick() -> None:
        raise RuntimeError("the search process exited")

    pool = _FakePool([_FakeClient()])
    with pytest.raises(RuntimeError, match="search process exited"):
        if loop == "open":
            run_open_loop(pool, WORK, 50.0, 0.0, 0.2, tick=tick)  # type: ignore[arg-type]
        else:
            run_closed_loop(pool, WORK, 1, 0.0, 0.2, tick=tick)  # type: ignore[arg-type]


def test_an_open_step_that_falls_behind_its_rate_is_saturated() -> None:
    from bench.load_stats import Sample

    behind = summarize("idle", 0, [Sample("Get", 0, 0.001, OK)] * 10, 1.0, mode="open", offered_qps=50.0)
    kept = summarize("idle", 0, [Sample("Get", 0, 0.001, OK)] * 48, 1.0, mode="open", offered_qps=50.0)
    slow = summarize("idle", 0, [Sample("Get", 0, 0.9, OK)] * 48, 1.0, mode="open", offered_qps=50.0)
    assert saturated(behind, 50.0) and not saturated(kept, 50.0) and saturated(slow, 50.0)


def test_the_two_phases_ask_different_cache_missing_queries() -> None:
    """Each text step draws with the same seed: with one shared list the second phase asked exactly the queries the
    first had just put in the service's query cache."""
    from bench.load import TEXT_ONLY, text_workloads

    idle, ingest = text_workloads(["dilated left ventricle", "normal biventricular size and function"], ["k"],
                                  per_phase=40)
    assert len(idle.texts) == len(ingest.texts) == 40
    assert not set(idle.texts) & set(ingest.texts)
    assert idle.mix == ingest.mix == TEXT_ONLY
