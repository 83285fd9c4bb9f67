"""The load benchmark's bookkeeping: nearest-rank percentiles, the measured window, per-RPC rows with errors by
status code, and the choice of the highest QPS whose p99 stays under the limit."""

from __future__ import annotations

import math

import pytest

from bench.load_stats import ALL, Sample, Step, best_step, in_window, passes, percentile_ms, rpc_stats, summarize


def test_percentiles_are_nearest_rank_in_ms() -> None:
    lat = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile_ms(lat, 50) == pytest.approx(51.0)  # "higher": a latency some call really had
    assert percentile_ms(lat, 99) == pytest.approx(100.0)
    assert percentile_ms([0.007], 99) == pytest.approx(7.0)
    assert math.isnan(percentile_ms([], 99))


def test_window_keeps_calls_that_started_and_ended_inside() -> None:
    s = [Sample("Get", 0.5, 0.1, "OK"), Sample("Get", 1.0, 0.1, "OK"), Sample("Get", 9.95, 0.1, "OK"),
         Sample("Get", 5.0, 1.0, "OK")]
    kept = in_window(s, 1.0, 10.0)
    assert [x.start_s for x in kept] == [1.0, 5.0]


def test_rpc_rows_count_errors_by_code_and_time_only_successes() -> None:
    s = [Sample("Get", 0, 0.010, "OK"), Sample("Get", 0, 0.020, "OK"), Sample("Get", 0, 5.0, "DEADLINE_EXCEEDED"),
         Sample("Get", 0, 0.001, "RESOURCE_EXHAUSTED"), Sample("Get", 0, 0.001, "RESOURCE_EXHAUSTED")]
    r = rpc_stats("Get", s, 2.0)
    assert (r.requests, r.ok, r.qps) == (5, 2, 1.0)
    assert r.errors == {"DEADLINE_EXCEEDED": 1, "RESOURCE_EXHAUSTED": 2}
    assert r.max_ms == pytest.approx(20.0) and r.p99_ms == pytest.approx(20.0)


def test_summarize_has_a_row_per_rpc_and_a_pooled_row() -> None:
    s = [Sample("SearchByText", 0, 0.030, "OK")] * 8 + [Sample("Get", 0, 0.002, "OK")] * 2
    step = summarize("idle", 4, s, 5.0)
    assert set(step.rpcs) == {"SearchByText", "Get", ALL}
    assert step.qps == pytest.approx(2.0) and step.rpcs[ALL].requests == 10
    assert step.p99_ms == pytest.approx(30.0)


def _step(qps: float, p99s: dict[str, float], errors: int = 0, phase: str = "ingest", c: int = 1) -> Step:
    rows = {}
    for name, p99 in p99s.items():
        n = 100
        rows[name] = rpc_stats(name, [Sample(name, 0, p99 / 1000, "OK")] * n
                               + [Sample(name, 0, 0.001, "UNAVAILABLE")] * errors, 1.0)
    step = summarize(phase, c, [], 1.0)
    step.rpcs, step.qps = rows, qps
    return step


def test_best_step_is_the_highest_qps_with_every_p99_under_the_limit() -> None:
    steps = [_step(20, {"SearchByText": 12, ALL: 12}, c=1), _step(60, {"SearchByText": 40, ALL: 35}, c=4),
             _step(90, {"SearchByText": 70, ALL: 45}, c=16),   # one RPC over the limit: out
             _step(85, {"SearchByText": 48, ALL: 48}, c=8, errors=5)]  # ~5% errors: out
    assert best_step(steps, 50.0, 0.01).concurrency == 4
    assert passes(steps[3], 50.0, 0.10)  # within a looser error allowance it would count
    assert best_step(steps[2:3], 50.0) is None
    assert best_step([], 50.0) is None


def test_a_step_without_successes_never_passes() -> None:
    step = summarize("idle", 1, [Sample("Get", 0, 0.001, "UNAUTHENTICATED")], 1.0)
    assert not passes(step, 50.0, 1.0)


def test_best_step_for_one_rpc_judges_that_rpc_alone() -> None:
    steps = [_step(20, {"SearchByText": 60, "Get": 5, ALL: 55}, c=1), _step(40, {"SearchByText": 90, "Get": 20, ALL: 80}, c=4)]
    assert best_step(steps, 50.0) is None
    assert best_step(steps, 50.0, rpc="Get").concurrency == 4
    assert best_step(steps, 50.0, rpc="SearchByText") is None
