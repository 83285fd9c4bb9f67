"""The encoder benchmark's machinery: the load generators keep the requested requests in flight and time
them, and the target checks and report read the points they are given."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.encoder import BenchResult, Point, check_targets, closed_loop, closed_loop_async, plot, to_markdown


def _slow_server(service_s: float, capacity: int) -> tuple[Callable[[int, Callable[[bool], None]], None], list[int]]:
    """A fake asynchronous server: each request takes service_s; at most `capacity` run at once."""
    gate = threading.Semaphore(capacity)
    in_flight: list[int] = []
    now = [0]

    def submit(i: int, done: Callable[[bool], None]) -> None:
        def work() -> None:
            with gate:
                now[0] += 1
                in_flight.append(now[0])
                time.sleep(service_s)
                now[0] -= 1
            done(i % 50 != 49)  # every 50th request fails

        threading.Thread(target=work).start()

    return submit, in_flight


def test_closed_loop_async_keeps_concurrency_and_counts_errors() -> None:
    submit, in_flight = _slow_server(0.02, capacity=100)
    n, secs, lat, errors = closed_loop_async(submit, 8, seconds=1.0, warmup_s=0.2)
    assert max(in_flight) <= 8 and max(in_flight) >= 6
    # 8 clients x ~1/0.02 s each: roughly 400 completions in the window (scheduling noise allowed).
    assert 150 < n + errors < 450 and errors >= 1
    assert min(lat) >= 0.02 and secs == 1.0


def test_closed_loop_threads() -> None:
    n, secs, lat, errors = closed_loop(lambda i: time.sleep(0.01), 4, seconds=0.5, warmup_s=0.1)
    assert errors == 0 and 80 < n < 220 and min(lat) >= 0.01


def _points(on32: float, off32: float, raw: float, service_best: float) -> list[Point]:
    mk = lambda path, b, c, t: Point(path, b, c, 10, 1.0, t, 1.0, 2.0)  # noqa: E731
    return [mk("raw", "n/a", 1, raw / 2), mk("raw", "n/a", 8, raw),
            mk("service", "on", 1, 10), mk("service", "on", 8, service_best), mk("service", "on", 32, on32),
            mk("service", "off", 1, 10), mk("service", "off", 8, off32), mk("service", "off", 32, off32),
            mk("triton", "on", 1, 10), mk("triton", "on", 8, 10), mk("triton", "on", 32, 10),
            mk("triton", "off", 1, 10), mk("triton", "off", 8, 10), mk("triton", "off", 32, 10)]


@pytest.mark.parametrize("on32, off32, raw, best, gain_met, loss_met", [
    (60, 30, 70, 60, True, True),     # 2.0x, loses 14%
    (50, 30, 70, 55, False, False),   # 1.67x, loses 21%
])
def test_targets(on32: float, off32: float, raw: float, best: float, gain_met: bool, loss_met: bool) -> None:
    t = check_targets(_points(on32, off32, raw, best))
    assert t["batching_gain_at_32"]["met"] is gain_met
    assert t["service_loss_vs_raw"]["met"] is loss_met
    assert t["batching_gain_at_32"]["value"] == round(on32 / off32, 2)


def test_report_and_plot(tmp_path: Path) -> None:
    r = BenchResult(date="2026-11-24", machine="test cpu", device="CPU", model_version="m@1", quick=True,
                    seconds_per_point=1, max_batch_size=8, queue_delay_us=2000, inputs="4 studies",
                    points=_points(60, 30, 70, 60))
    r.targets = check_targets(r.points)
    md = to_markdown(r, "x.png")
    assert "**met**" in md and "| service | on | 32 | 60.0 |" in md
    plot(r, tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 10_000
