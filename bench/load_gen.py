"""The load generator: simulated clinicians calling SearchService through the project's own client
(search_svc.client.SearchClient over cmr.rpc.client.open_channel, so TLS and bearer tokens come from Settings as
in any deployed client).

Closed loop: `concurrency` threads each make one call, wait for the answer, make the next (as a UI does: a user
waits for the results): the capacity at each concurrency. Open loop: calls arrive at a fixed mean rate (Poisson)
whatever the answers do, as many independent users do; latency counts from the scheduled arrival, so time spent
queued behind a slow call is in it (no coordinated omission): the latency at a sustained rate. Each call is made on behalf of the next simulated user in turn, each user with its own
channel and its own token, so the per-identity rate limit sees many people at a human pace rather than one
robot (with U users at Q queries/s each identity makes Q/U calls/s). Threads in one process are enough: a sync
gRPC call releases the GIL while it waits, and the generator's own CPU is measured and reported.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from bench.load_stats import OK, Sample
from cmr.config import Settings
from search_svc.client import SearchClient

# What a clinician's session does, by share of calls: mostly phrases typed into the search box (text ->
# encoder -> index), then "digital twins" of an exam they opened (by study key), its zero-shot profile, and
# opening a result (Get).
MIX: tuple[tuple[str, float], ...] = (("SearchByText", 0.70), ("SearchByStudy", 0.15), ("ZeroShot", 0.10),
                                      ("Get", 0.05))
TOP_K = 10


@dataclass
class Workload:
    texts: Sequence[str]        # query phrases (sentences of real-style impressions)
    study_keys: Sequence[str]   # indexed studies the simulated users open
    mix: tuple[tuple[str, float], ...] = MIX


def call(client: SearchClient, rpc: str, rng: random.Random, work: Workload) -> None:
    if rpc == "SearchByText":
        client.search_text(rng.choice(work.texts), top_k=TOP_K)
    elif rpc == "SearchByStudy":
        client.similar(study_key=rng.choice(work.study_keys), top_k=TOP_K)
    elif rpc == "ZeroShot":
        client.zero_shot(study_key=rng.choice(work.study_keys))
    elif rpc == "Get":
        client.get(rng.choice(work.study_keys))
    else:
        raise ValueError(f"unknown RPC {rpc!r}")


def cache_missing(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """`n` distinct queries made of `texts` with a random letter case each: the service's query cache keys on the
    exact text, so each one misses it, while the (uncased) tokenizer sees the same tokens as the sentence. What
    the text tower costs when every query is new; the repeat rate is bench/text_path.py's business."""
    rng = random.Random(seed)
    out: set[str] = set()
    for _ in range(20 * n):  # bounded: a handful of very short texts has fewer variants than n
        if len(out) >= n:
            break
        t = rng.choice(texts)
        out.add("".join(c.upper() if rng.random() < 0.5 else c.lower() for c in t))
    return sorted(out)


class UserPool:
    """One SearchClient (channel + identity) per simulated user, handed out round robin."""

    def __init__(self, url: str, user_settings: Sequence[Settings], timeout_s: float = 10.0) -> None:
        if not user_settings:
            raise ValueError("at least one simulated user")
        self.clients = [SearchClient(url, settings=s, timeout_s=timeout_s) for s in user_settings]
        self._next = itertools.cycle(self.clients)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.clients)

    def warm(self, study_key: str) -> None:
        """One call per user: connects every channel (TLS handshake) and checks every token before measuring."""
        for c in self.clients:
            c.get(study_key)

    def next(self) -> SearchClient:
        with self._lock:
            return next(self._next)

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _timed(pool: UserPool, work: Workload, rpc: str, rng: random.Random, t0: float) -> Sample:
    code = OK
    try:
        call(pool.next(), rpc, rng, work)
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() is not None else "UNKNOWN"
    except Exception as exc:  # noqa: BLE001 - a client-side failure is counted, the run goes on
        code = type(exc).__name__
    return Sample(rpc, t0, time.perf_counter() - t0, code)


def run_open_loop(pool: UserPool, work: Workload, rate: float, warmup_s: float, seconds: float, *, seed: int = 0,
                  tick: Callable[[], None] | None = None, max_in_flight: int = 64) -> tuple[list[Sample], float, float]:
    """Poisson arrivals at `rate` per second for warmup_s + seconds, each call on a pool thread (at most
    max_in_flight at once; later arrivals queue, and their wait counts). Calls still queued at the end are
    dropped, so an overloaded step does not spill into the next. Returns (samples, window start, window end)."""
    names = [n for n, _ in work.mix]
    weights = [w for _, w in work.mix]
    rng = random.Random(seed)
    samples: list[Sample] = []
    lock = threading.Lock()

    def job(rpc: str, t_sched: float, k: int) -> None:
        s = _timed(pool, work, rpc, random.Random(seed * 1_000_003 + k), t_sched)
        with lock:
            samples.append(s)

    start = time.perf_counter()
    window_start, stop_at = start + warmup_s, start + warmup_s + seconds
    ex = ThreadPoolExecutor(max_in_flight, thread_name_prefix="open-load")
    t, k = start, 0
    try:
        with _ticking(tick):
            while True:
                t += rng.expovariate(rate)
                if t >= stop_at:
                    break
                while (now := time.perf_counter()) < t:
                    time.sleep(min(t - now, 0.05))
                ex.submit(job, rng.choices(names, weights)[0], t, k)
                k += 1
            while time.perf_counter() < stop_at:
                time.sleep(0.05)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return samples, window_start, stop_at


def run_closed_loop(pool: UserPool, work: Workload, concurrency: int, warmup_s: float, seconds: float, *,
                    seed: int = 0, tick: Callable[[], None] | None = None) -> tuple[list[Sample], float, float]:
    """`concurrency` clients back to back for warmup_s + seconds: (every sample, window start, window end) in
    perf_counter time. Samples of the warm-up are returned too; the caller keeps the window (load_stats.in_window)."""
    names = [n for n, _ in work.mix]
    weights = [w for _, w in work.mix]
    samples: list[Sample] = []
    lock = threading.Lock()
    start = time.perf_counter()
    window_start, stop_at = start + warmup_s, start + warmup_s + seconds

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        mine: list[Sample] = []
        while (t0 := time.perf_counter()) < stop_at:
            mine.append(_timed(pool, work, rng.choices(names, weights)[0], rng, t0))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(k,), daemon=True, name=f"load-{k}") for k in range(concurrency)]
    with _ticking(tick):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return samples, window_start, stop_at


@contextmanager
def _ticking(tick: Callable[[], None] | None, every_s: float = 0.5) -> Iterator[None]:
    """Call `tick` every `every_s` on a thread of its own while the block runs. Its own thread because a tick
    does blocking I/O (the window-start CPU snapshot, the worker's metrics, a Stats call over a new TLS channel):
    on the open loop's scheduling thread it delayed every arrival due meanwhile, and since latency counts from
    the scheduled arrival, the generator's own wait was counted as the service's latency. (It was not the cause of
    the 0.1-0.5 s open-loop outliers of docs/benchmarks/load.md: those stayed after this change.) A tick that
    raises (a part died) is raised here once the block ends."""
    if tick is None:
        yield
        return
    stop = threading.Event()
    failed: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                tick()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                failed.append(exc)
                return
            stop.wait(every_s)

    monitor = threading.Thread(target=loop, name="load-tick", daemon=True)
    monitor.start()
    try:
        yield
    finally:
        stop.set()
        monitor.join()
    if failed:
        raise failed[0]
