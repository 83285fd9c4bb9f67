"""What lets the demo seeder ride out a part of the stack being killed, and keep its promise: it finishes only
once the index holds every demo study it sent.

- `patiently`: a call to the search service or the broker is retried (backoff 0.5 s doubling to 8 s) while the
  service is restarting (gRPC UNAVAILABLE / DEADLINE_EXCEEDED, any Kafka error), up to a time limit; before, one
  such error ended the seeder, and supervisord does not restart a one-shot job, so the rest of the demo was never
  sent (until the next `cmr up`).
- `confirm_indexed`: the embedded broker keeps its queue in memory, so a broker restart loses the studies sent
  but not yet indexed, and the seeder, whose publishes had returned, could not know. Like `cmr ingest --journal`
  + `--resume`, it keeps what it sent and, once nothing new was indexed for `stall_s`, re-publishes what the
  index does not hold (harmless if a study was only slow: the worker's upsert is idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import grpc
from kafka.errors import KafkaError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

T = TypeVar("T")
TRANSIENT_GRPC = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def transient(exc: BaseException) -> bool:
    """A failure that a part coming back cures: a service restarting, the broker away."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in TRANSIENT_GRPC
    return isinstance(exc, KafkaError)


def patiently(call: Callable[[], T], what: str, timeout_s: float, say: Callable[[str], None],
              recover: Callable[[], None] | None = None, *, first_wait_s: float = 0.5) -> T:
    """`call()`, retried while it fails transiently (for up to `timeout_s`); `recover` runs before each retry
    (e.g. a new Kafka producer: a restarted broker does not know the old one's producer id)."""

    def before_retry(state: object) -> None:
        exc = state.outcome.exception() if state.outcome else None  # type: ignore[attr-defined]
        say(f"{what} not answering ({type(exc).__name__}); retrying")
        if recover is not None:
            try:
                recover()
            except Exception as rec_exc:  # noqa: BLE001 - the next attempt fails and retries again
                say(f"{what}: could not reconnect yet ({type(rec_exc).__name__})")

    for attempt in Retrying(retry=retry_if_exception(transient), stop=stop_after_delay(timeout_s),
                            wait=wait_exponential(multiplier=first_wait_s, max=8), before_sleep=before_retry,
                            reraise=True):
        with attempt:
            return call()
    raise AssertionError("unreachable")  # tenacity either returns or re-raises


def confirm_indexed(sent: Mapping[str, Callable[[], None]], held: Callable[[Sequence[str]], set[str]],
                    count: Callable[[], int], *, stall_s: float, rounds: int, say: Callable[[str], None],
                    poll_s: float = 2.0, sweep_s: float = 15.0, now: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Wait until `held` confirms every key of `sent` (key -> its re-publish). Progress is the index count
    (`count`, one cheap RPC a poll); the keys are looked up one by one only every `sweep_s` (a Get each: 200
    demo studies every poll would be 100 audited reads a second). After `stall_s` without progress, re-publish
    the missing ones, at most `rounds` times. The keys still missing (empty: done)."""
    missing = sorted(sent)
    last_count, last_progress, last_sweep = count(), now(), float("-inf")
    republished = 0

    def sweep() -> None:
        nonlocal missing, last_sweep, last_progress
        got = held(missing)
        last_sweep = now()
        if got:
            missing = [k for k in missing if k not in got]
            last_progress = now()

    while missing:
        if now() - last_sweep >= sweep_s:
            sweep()
            continue
        c = count()
        if c != last_count:
            last_count, last_progress = c, now()
        if now() - last_progress >= stall_s:
            sweep()  # the last look before sending again
            if not missing or republished >= rounds:
                break
            republished += 1
            say(f"{len(missing)} studies sent but not indexed after {stall_s:.0f} s without progress "
                f"(a broker restart loses what was queued): re-publishing them ({republished}/{rounds})")
            for key in missing:
                sent[key]()
            last_progress = now()
        sleep(poll_s)
    return missing


__all__ = ["confirm_indexed", "patiently", "transient"]
