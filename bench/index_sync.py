"""What making the embedded index durable costs the searches running beside it: the engine's flush() (holds the
GIL) against an fsync of the write-ahead log (search_svc/flusher.py, releases it), with the cores busy or not.

    .venv/bin/python -m bench.index_sync [--points 20000] [--phase-s 40] [--hogs 2]

A real SearchService (in this process, auth off) on an Edge index of `--points` exams with parts (~17 KB of
payload each, as an attention model writes them), restarted so the graph is built. A probe thread sends a
SearchByText every 20 ms (a cached query: what is timed is the service, not the text tower); the main thread
upserts one exam every 3 s (an ingest worker's pace) and, every 10 s, makes the index durable the phase's way:
  none  - nothing (the reference),
  flush - EdgeStore.flush(): the engine writes the segments back, holding the GIL,
  sync  - EdgeStore.sync_wal(): os.fsync of the log's files (what the service's timer does).
The phases run one after another in one service, each twice with and without `--hogs` busy processes at
nice 10 (the ingest worker's decoding and segmentation, which run at CMR_INGEST_NICE). Results:
docs/benchmarks/index_sync.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
console = Console(stderr=True)
N_PARTS = 14
PROBE_EVERY_S = 0.02
UPSERT_EVERY_S = 3.0
DURABLE_EVERY_S = 10.0
SLOW_MS = 100.0
HOGS_SETTLE_S = 1.0  # the busy processes are running before the probe starts
MODES = ("none", "flush", "sync")


@dataclass
class Phase:
    mode: str
    hogs: int
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    slow: list[tuple[float, float]] = field(default_factory=list)  # (s into the phase, ms) of requests over SLOW_MS
    durable_ms: list[float] = field(default_factory=list)  # each flush/sync call


def _upsert(i: int, version: str, rng: np.random.Generator) -> object:
    from cmr.rpc.messages import to_parts, to_vector
    from cmr.v1 import search_pb2

    parts = rng.normal(size=(N_PARTS, 256)).astype(np.float32)
    parts /= np.linalg.norm(parts.sum(0))  # the parts sum to the unit exam vector, as the service checks
    v = parts.sum(0)
    return search_pb2.ExamUpsert(
        study_instance_uid=f"1.2.826.0.1.3680043.10.{i}", image_embedding=to_vector(v), report_embedding=to_vector(v),
        impression="Normal biventricular size and function.", labels=["disease:normal"], model_version=version,
        parts=to_parts([f"part{k}" for k in range(N_PARTS)], ["view"] * N_PARTS, list(parts)))


def _hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def run_phase(client: object, store: object, mode: str, hogs: int, seconds: float, version: str,
              next_id: list[int], rng: np.random.Generator) -> Phase:
    query = "Dilated left ventricle with severely reduced ejection fraction."
    lat: list[tuple[float, float]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            client.search_text(query, top_k=10)  # type: ignore[attr-defined]
            lat.append((t, time.perf_counter() - t))
            time.sleep(PROBE_EVERY_S)

    procs = _hogs(hogs)
    durable: list[float] = []
    try:
        time.sleep(HOGS_SETTLE_S)
        t0 = time.perf_counter()
        th = threading.Thread(target=probe, daemon=True)
        th.start()
        next_upsert, next_durable = t0 + UPSERT_EVERY_S, t0 + DURABLE_EVERY_S
        while time.perf_counter() - t0 < seconds:
            now = time.perf_counter()
            if now >= next_upsert:
                client.upsert([_upsert(next_id[0], version, rng)])  # type: ignore[attr-defined]
                next_id[0] += 1
                next_upsert += UPSERT_EVERY_S
            if now >= next_durable and mode != "none":
                t = time.perf_counter()
                store.flush() if mode == "flush" else store.sync_wal()  # type: ignore[attr-defined]
                durable.append((time.perf_counter() - t) * 1000)
                next_durable += DURABLE_EVERY_S
            time.sleep(0.05)
        stop.set()
        th.join()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    ms = np.array([d for _, d in lat]) * 1000
    return Phase(mode, hogs, len(ms), round(float(np.percentile(ms, 50)), 2), round(float(np.percentile(ms, 99)), 2),
                 round(float(ms.max()), 1), [(round(t - t0, 1), round(d * 1000, 1)) for t, d in lat
                                              if d * 1000 > SLOW_MS], [round(d, 1) for d in durable])


def run(points: int, phase_s: float, hogs: int, out_dir: Path) -> list[Phase]:
    from cmr.config import Settings
    from search_svc.client import SearchClient
    from search_svc.query_text import QueryText
    from search_svc.server import SearchServer

    load_before = [round(x, 2) for x in os.getloadavg()]
    rng = np.random.default_rng(0)
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="bench-index-sync-") as tmp:
        # the service's own timer off: this benchmark makes the index durable itself, the phase's way
        s = Settings(data_dir=Path(tmp), auth_mode="off", index_flush_interval_s=0,
                     live_index_max_unindexed=10**9)
        version = QueryText.from_settings(s).embedder().version
        with SearchServer(s, port=0, encoder_url="127.0.0.1:1") as srv, \
                SearchClient(srv.address, settings=s, timeout_s=300) as client:
            client.wait_ready(60)
            for k in tqdm(range(0, points, 256), desc=f"indexing {points} exams", unit="batch"):
                client.upsert([_upsert(i, version, rng) for i in range(k, min(points, k + 256))])
        console.print("restarting the service so the HNSW graph covers the index...")
        with SearchServer(s, port=0, encoder_url="127.0.0.1:1") as srv, \
                SearchClient(srv.address, settings=s, timeout_s=300) as client:
            client.wait_ready(600)
            for _ in range(100):  # warm: the first searches after an open read the mapped files
                client.search_text("Normal study.", top_k=10)
            next_id = [points]
            plan = [(m, h) for h in (0, hogs) for m in MODES]
            for mode, n_hogs in tqdm(plan, desc="phases", unit="phase"):
                phases.append(run_phase(client, srv.store, mode, n_hogs, phase_s, version, next_id, rng))
                p = phases[-1]
                console.print(f"  {mode:5s} hogs {n_hogs}: p50 {p.p50_ms} ms, p99 {p.p99_ms} ms, max {p.max_ms} ms, "
                              f"{len(p.slow)} over {SLOW_MS:.0f} ms; {mode} calls {p.durable_ms} ms")
    write(phases, points, phase_s, hogs, load_before, out_dir)
    return phases


def write(phases: list[Phase], points: int, phase_s: float, hogs: int, load_before: list[float],
          out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    (out_dir / "index_sync.json").write_text(json.dumps(
        {"when": when, "machine": machine, "points": points, "phase_s": phase_s, "hogs": hogs,
         "load_avg_before": load_before, "phases": [asdict(p) for p in phases]}, indent=2))
    rows = "\n".join(
        f"| {p.mode} | {p.hogs} | {p.requests} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | {p.max_ms:.0f} | {len(p.slow)} | "
        f"{', '.join(f'{d:.0f}' for d in p.durable_ms) or '-'} |" for p in phases)
    md = out_dir / "index_sync.md"
    md.write_text(f"""# Making the embedded index durable while searching: engine flush vs log fsync

`python -m bench.index_sync --points {points} --phase-s {phase_s:g} --hogs {hogs}`, {when}. Machine: {machine};
1-minute load average before the run {load_before[0]} ({load_before}).

A SearchService (in process, auth off) on {points:,} exams with parts, HNSW built; a probe sends a (cached)
SearchByText every {PROBE_EVERY_S * 1000:.0f} ms, one exam is upserted every {UPSERT_EVERY_S:g} s, and every
{DURABLE_EVERY_S:g} s the index is made durable the phase's way: **flush** = the engine's `flush()` (writes the
segments back holding the GIL: what the service's timer did before), **sync** = `EdgeStore.sync_wal()` (fsync of
the write-ahead log's files; os.fsync releases the GIL: what the timer does now), **none** = neither. Each phase
{phase_s:g} s, one after another in the same service; "hogs" = busy processes at nice 10 beside it (what the
ingest worker's decoding and segmentation are at `CMR_INGEST_NICE`).

| mode | hogs | requests | p50 ms | p99 ms | max ms | requests over {SLOW_MS:.0f} ms | each flush/sync call (ms) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{rows}

Both make acknowledged writes survive a power cut (a restart replays the synced log onto the segments); only the
flush stops every request of the service while it runs, and with the cores busy it runs for longer.
""")
    return md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--phase-s", type=float, default=40.0)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    a = ap.parse_args(argv)
    run(a.points, a.phase_s, a.hogs, a.out)
    console.print(f"results: {a.out / 'index_sync.md'}")


if __name__ == "__main__":
    main()
