"""Bookkeeping of the load benchmark: raw samples of one step -> per-RPC latency percentiles, achieved QPS and
error counts by status code; and the answer the benchmark exists for, the highest sustained QPS whose search
p99 stays under the limit. Pure functions, no I/O, so they are unit-tested on their own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

OK = "OK"
ALL = "all"  # the pooled row: every RPC of the mix together


@dataclass(frozen=True)
class Sample:
    rpc: str          # SearchByText, SearchByStudy, ZeroShot, Get
    start_s: float    # perf_counter when the call was made
    latency_s: float
    code: str         # grpc.StatusCode name, "OK" on success


@dataclass
class RpcStats:
    rpc: str
    requests: int                 # completed in the window, errors included
    ok: int
    qps: float                    # successful calls per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # status code name -> count


@dataclass
class Step:
    phase: str                    # "ingest" (ingestion running) or "idle" (no ingestion)
    concurrency: int              # closed-loop clients (0 for an open-loop step)
    seconds: float                # measurement window (warm-up excluded)
    qps: float                    # successful calls per second, all RPCs
    rpcs: dict[str, RpcStats]     # per RPC + ALL
    ingest_per_min: float = 0.0   # studies indexed by the ingest worker during the window
    cpu_cores: dict[str, float] = field(default_factory=dict)  # cores used per part (+ machine, other)
    load_avg: float = 0.0         # 1-minute load average at the end of the step
    mode: str = "closed"          # closed (fixed clients) | open (fixed arrival rate)
    offered_qps: float = 0.0      # open loop: the arrival rate asked for
    in_flight: float = 0.0        # mean calls in flight (Little's law: sum of latencies / window)
    index_builds: int = 0         # background index builds finished in the window (each swap pauses search)

    @property
    def p99_ms(self) -> float:
        return self.rpcs[ALL].p99_ms if ALL in self.rpcs else float("nan")


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) in ms, nearest-rank ("higher"): a reported p99 is a latency some call
    really had, never an interpolation below it. NaN when there is no sample."""
    if len(latencies_s) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q, method="higher") * 1000.0)


def rpc_stats(rpc: str, samples: Sequence[Sample], seconds: float) -> RpcStats:
    ok = [s.latency_s for s in samples if s.code == OK]
    errors = Counter(s.code for s in samples if s.code != OK)
    return RpcStats(rpc, len(samples), len(ok), round(len(ok) / seconds, 2) if seconds > 0 else 0.0,
                    *(round(percentile_ms(ok, q), 2) for q in (50, 95, 99)),
                    round(max(ok) * 1000.0, 2) if ok else float("nan"), dict(sorted(errors.items())))


def in_window(samples: Iterable[Sample], start_s: float, end_s: float) -> list[Sample]:
    """Calls that started and finished inside the window: warm-up and the calls cut off at the end are out."""
    return [s for s in samples if s.start_s >= start_s and s.start_s + s.latency_s <= end_s]


def summarize(phase: str, concurrency: int, samples: Sequence[Sample], seconds: float, *, mode: str = "closed",
              offered_qps: float = 0.0) -> Step:
    by_rpc: dict[str, list[Sample]] = {}
    for s in samples:
        by_rpc.setdefault(s.rpc, []).append(s)
    rpcs = {name: rpc_stats(name, by_rpc[name], seconds) for name in sorted(by_rpc)}
    rpcs[ALL] = rpc_stats(ALL, samples, seconds)
    in_flight = round(sum(s.latency_s for s in samples) / seconds, 2) if seconds > 0 else 0.0
    return Step(phase, concurrency, round(seconds, 2), rpcs[ALL].qps, rpcs, mode=mode, offered_qps=offered_qps,
                in_flight=in_flight)


def kept_up(step: Step) -> bool:
    """An open-loop step served at least 80% of its arrivals, less 3 standard deviations of a Poisson count (a
    short step at a low rate may simply have drawn fewer arrivals). Closed-loop steps always keep up."""
    if step.mode != "open":
        return True
    expected = step.offered_qps * step.seconds
    return step.qps * step.seconds >= 0.8 * expected - 3.0 * math.sqrt(expected)


def saturated(step: Step, limit_ms: float) -> bool:
    """An open-loop step the stack could not keep up with (or far over the limit): higher rates only pile up
    queues, so the sweep stops there."""
    return not kept_up(step) or not step.p99_ms < 10 * limit_ms


def error_rate(step: Step) -> float:
    row = step.rpcs.get(ALL)
    return 0.0 if row is None or row.requests == 0 else 1.0 - row.ok / row.requests


def passes(step: Step, limit_ms: float, max_error_rate: float, rpc: str | None = None) -> bool:
    """Search p99 under the limit for every RPC of the mix (and pooled), and errors within the allowance.
    rpc: judge that RPC's p99 alone (which part of the mix holds the answer back)."""
    p99s = [r.p99_ms for name, r in step.rpcs.items() if rpc is None or name == rpc]
    return (bool(p99s) and all(p == p and p < limit_ms for p in p99s) and error_rate(step) <= max_error_rate
            and kept_up(step))


def best_step(steps: Iterable[Step], limit_ms: float = 50.0, max_error_rate: float = 0.01,
              rpc: str | None = None) -> Step | None:
    """The step with the highest achieved QPS among those that pass; None when none does. A step that passes
    above a failing one still counts: the answer is the highest QPS seen under the limit."""
    ok = [s for s in steps if passes(s, limit_ms, max_error_rate, rpc)]
    return max(ok, key=lambda s: s.qps) if ok else None
