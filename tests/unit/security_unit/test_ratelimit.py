from __future__ import annotations

from cmr.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_rate_per_identity() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.try_acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.try_acquire("a")
    assert 0.49 < wait <= 0.5  # the next token in 1/rate s
    assert limiter.try_acquire("b") == 0.0  # another identity has its own bucket
    clock.t += 0.5
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") > 0


def test_idle_buckets_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 5, clock=clock)
    for i in range(100):
        limiter.try_acquire(f"user-{i}")
    clock.t += 120
    limiter.try_acquire("late")
    assert list(limiter._buckets) == ["late"]
