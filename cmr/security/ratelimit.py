"""Per-identity rate limits: a token bucket per subject (sustained rate + burst), thread-safe.

Buckets of subjects idle long enough to be full again are dropped, so memory stays bounded by the active callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate_per_s, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # subject -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def try_acquire(self, subject: str) -> float:
        """0.0 when the call may go ahead (a token is taken), else the seconds until the next token."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(subject, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[subject] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[subject] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if now - self._last_sweep > 60.0:
                self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {s: v for s, v in self._buckets.items() if now - v[1] < full_after}
        self._last_sweep = now
