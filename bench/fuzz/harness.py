"""The fuzzing loop: run a target on hypothesis-generated inputs, classify each outcome, count per target and
keep every failing input in a corpus folder.

An outcome is `accepted` (the input was processed), `rejected` (refused with an allowed error and a clear
message), `crash` (any other exception, status code, or an unclear message) or `hang` (over the per-input
watchdog). Hypothesis runs generation only (no shrinking, no example database, a fixed seed): a run is
reproducible, and a failure is recorded rather than raised, so one crasher does not stop the run.
"""

from __future__ import annotations

import hashlib
import re
import signal
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

FRAMES_MAGIC = b"CMRFUZZ1"
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


class _TimeUp(BaseException):
    """Ends a run at its deadline (a BaseException: hypothesis and targets let it through)."""


class Hang(BaseException):
    """Raised by the watchdog. A BaseException, so the loader's own `except Exception` cannot swallow it."""


@dataclass(frozen=True)
class Outcome:
    status: str              # accepted | rejected | crash | hang
    code: str = "OK"         # status code name or exception type
    detail: str = ""
    reached_model: bool = False


def clear_message(detail: str) -> bool:
    """A rejection message a person can act on: not empty, not a Python traceback."""
    return bool(detail.strip()) and not _TRACEBACK.search(detail)


@dataclass(frozen=True)
class Target:
    """What to fuzz: inputs from `strategy`, each handed to `run`; `to_bytes` writes an input to the corpus."""

    name: str
    group: str                                  # loader | encoder | search | generator
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], Outcome]
    to_bytes: Callable[[Any], bytes]
    timeout_s: float = 30.0
    allowed: str = ""                           # the rejections the oracle accepts, for the report


@dataclass
class TargetStats:
    name: str
    group: str
    inputs: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    crashes: int = 0
    hangs: int = 0
    reached_model: int = 0
    max_ms: float = 0.0
    p99_ms: float = 0.0
    p50_ms: float = 0.0
    seconds: float = 0.0
    allowed: str = ""
    failures: list[str] = field(default_factory=list)  # corpus files of failing inputs (at most 50 listed)
    failure_kinds: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False  # the run's deadline came before `inputs` reached the number asked for
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few rejection messages per code, as sent

    @property
    def failed(self) -> int:
        return self.crashes + self.hangs


def pack_frames(frames: Sequence[bytes]) -> bytes:
    """Several byte strings as one corpus file (a request stream, a folder's names and contents)."""
    return FRAMES_MAGIC + b"".join(struct.pack("<I", len(f)) + f for f in frames)


def unpack_frames(data: bytes) -> list[bytes]:
    if not data.startswith(FRAMES_MAGIC):
        raise ValueError("not a frames file")
    out, at = [], len(FRAMES_MAGIC)
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        out.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return out


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise Hang in this (main) thread after `seconds`. Pure-Python work is interrupted; a call stuck in C is
    interrupted when it returns, and still counts as a hang."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no result within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_one(target: Target, value: Any) -> tuple[Outcome, float]:
    t0 = time.perf_counter()
    try:
        with watchdog(target.timeout_s):
            outcome = target.run(value)
    except Hang as exc:
        outcome = Outcome("hang", "Hang", str(exc))
    except Exception as exc:  # noqa: BLE001 - a target that raises is a crash of what it drives
        outcome = Outcome("crash", type(exc).__name__, " ".join(str(exc).split())[:500])
    return outcome, (time.perf_counter() - t0) * 1000


def save_failure(corpus: Path, target: Target, data: bytes, outcome: Outcome) -> Path:
    folder = corpus / target.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(f"{outcome.status} {outcome.code}: {outcome.detail}\n")
    return path


def fuzz(target: Target, n: int, *, seed_value: int = 0, corpus: Path | None = None,
         on_input: Callable[[Outcome], None] | None = None, stop_at: float | None = None) -> TargetStats:
    """`n` generated inputs through `target`; failing inputs are written under `corpus/<target>/`. With
    `stop_at` (time.monotonic()), the run ends there even if fewer inputs were tried (`stopped_early`)."""
    stats = TargetStats(target.name, target.group, allowed=target.allowed)
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    latencies: list[float] = []

    @seed(seed_value)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(target.strategy)
    def body(value: Any) -> None:
        if stop_at is not None and time.monotonic() > stop_at:
            raise _TimeUp
        outcome, ms = run_one(target, value)
        latencies.append(ms)
        stats.inputs += 1
        stats.reached_model += outcome.reached_model
        if outcome.status == "accepted":
            stats.accepted += 1
        elif outcome.status == "rejected":
            codes[outcome.code] += 1
            seen = stats.examples.setdefault(outcome.code, [])
            if len(seen) < 3 and outcome.detail[:160] not in seen:
                seen.append(outcome.detail[:160])
        else:
            stats.crashes += outcome.status == "crash"
            stats.hangs += outcome.status == "hang"
            kinds[f"{outcome.status} {outcome.code}"] += 1
            if corpus is not None:
                path = save_failure(corpus, target, target.to_bytes(value), outcome)
                if len(stats.failures) < 50:
                    stats.failures.append(str(path))
        if on_input is not None:
            on_input(outcome)

    t0 = time.perf_counter()
    try:
        body()
    except _TimeUp:
        stats.stopped_early = True
    stats.seconds = time.perf_counter() - t0
    stats.rejected = dict(codes.most_common())
    stats.failure_kinds = dict(kinds.most_common())
    if latencies:
        stats.max_ms = float(np.max(latencies))
        stats.p99_ms = float(np.percentile(latencies, 99))
        stats.p50_ms = float(np.percentile(latencies, 50))
    return stats


__all__ = ["FRAMES_MAGIC", "Hang", "Outcome", "Target", "TargetStats", "clear_message", "fuzz", "pack_frames",
           "run_one", "save_failure", "unpack_frames", "watchdog"]
