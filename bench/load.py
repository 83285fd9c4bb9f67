"""Load: the sustained QPS at which search p99 stays under 50 ms on this machine, with ingestion running at the
same time and without it, through the real services as deployed (TLS + bearer tokens by default).

    cmr bench load [--quick] [--out docs/benchmarks] [--security on|off]   # or: python -m bench.load

It starts the parts itself (bench/load_stack.py): Triton + EncoderService, SearchService on Qdrant Edge, builds
the index through them (bench/load_index.py), then drives closed-loop steps at rising concurrency with the query
mix of bench/load_gen.py: first without ingestion, then with the Tansu broker and an ingest worker busy with new
studies; after each, one open-loop step of SearchByText alone at 10 queries/s (the clinician's call, issue 19's
targets). Per step: achieved QPS, p50/p95/p99/max per RPC, errors by status code, studies/min ingested, cores used
per part (the load generator included) and the load average. Results: docs/benchmarks/load.{md,json,png}
(quick runs: load_quick.*). Run it niced: `nice -n 10 cmr bench load`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bench.load_cpu import cores_used, snapshot
from bench.load_gen import MIX, TOP_K, UserPool, Workload, cache_missing, run_closed_loop, run_open_loop
from bench.load_report import LoadBench, best_summary, write
from bench.load_stats import Step, best_step, in_window, saturated, summarize
from cmr.config import Settings, get_settings
from cmr.rpc.heap import freeze_startup_heap

console = Console(stderr=True)
REPO = Path(__file__).resolve().parent.parent
LIMIT_MS = 50.0
MAX_ERROR_RATE = 0.01
# Issue 19's clinician path: SearchByText alone, open loop at this rate, in each phase (see load_report.TEXT_TARGETS).
TEXT_ONLY: tuple[tuple[str, float], ...] = (("SearchByText", 1.0),)
TEXT_RATE = 10.0
TEXT_QUERIES = 20_000  # distinct cache-missing queries per phase (a step draws ~230 of them)
HIT_TEXTS = 20  # distinct sentences of the cache-hit reference step (well under the query cache's size)


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...]   # closed-loop steps: clients
    rates: tuple[float, ...]       # open-loop steps: arrivals per second (the sweep stops once saturated)
    warmup_s: float
    step_s: float
    users: int          # simulated identities
    real: int           # studies encoded into the index
    total: int          # index size after padding
    ingest_studies: int  # new studies available to the worker

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls((1, 4, 16), (5.0, 15.0), 2.0, 8.0, 32, 100, 3000, 60)
        return cls((1, 2, 4, 8, 16, 32), (2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0), 3.0, 20.0, 100, 500, 20000, 300)


def text_plan(plan: Plan) -> Plan:
    """One open-loop step of SearchByText alone at TEXT_RATE, with the plan's warm-up and window."""
    return replace(plan, concurrency=(), rates=(TEXT_RATE,))


def text_workloads(texts: Sequence[str], study_keys: Sequence[str],
                   per_phase: int = TEXT_QUERIES) -> tuple[Workload, Workload]:
    """The cache-missing SearchByText workloads of the two phases, with no query in common. They shared one list
    once, and since each step draws with the same seed, the phase with ingestion asked exactly the queries the
    idle phase had just put in the query cache: it measured cache hits (p50 8-11 ms against 15-19 idle)."""
    fresh = cache_missing(texts, 2 * per_phase)
    return (Workload(fresh[0::2], study_keys, TEXT_ONLY), Workload(fresh[1::2], study_keys, TEXT_ONLY))


def measure(phase: str, pool: UserPool, work: Workload, plan: Plan, *, pids: Callable[[], dict[str, int]],
            ingested: Callable[[], float] | None = None, builds: Callable[[], int] | None = None,
            progress: Progress | None = None, check: Callable[[], None] | None = None) -> list[Step]:
    """The closed-loop steps (one per concurrency), then the open-loop steps (one per rate, until saturated);
    CPU, ingestion and the search service's finished background index builds are read over each measured window
    only (a build's swap pauses every search: without the count a stall in a step has no visible cause)."""
    levels = [("closed", float(c)) for c in plan.concurrency] + [("open", r) for r in plan.rates]
    per_step = plan.warmup_s + plan.step_s
    task = progress.add_task(phase, total=len(levels) * per_step) if progress else None
    steps: list[Step] = []
    for i, (mode, level) in enumerate(levels):
        if mode == "open" and steps and steps[-1].mode == "open" and saturated(steps[-1], LIMIT_MS):
            break
        label = f"{int(level)} clients" if mode == "closed" else f"{level:g}/s offered"
        t_call = time.perf_counter()
        at_window: dict[str, Any] = {}

        def tick() -> None:
            now = time.perf_counter()
            if "cpu" not in at_window and now >= t_call + plan.warmup_s:
                at_window.update(cpu=snapshot(pids()), t=now, ingested=ingested() if ingested else 0.0,
                                 builds=builds() if builds else 0)
            if progress is not None and task is not None:
                progress.update(task, completed=i * per_step + min(now - t_call, per_step),
                                description=f"{phase}: {label}")
            if check is not None:
                check()

        if mode == "closed":
            samples, ws, we = run_closed_loop(pool, work, int(level), plan.warmup_s, plan.step_s, seed=i, tick=tick)
        else:
            samples, ws, we = run_open_loop(pool, work, level, plan.warmup_s, plan.step_s, seed=i, tick=tick)
        t_end = time.perf_counter()
        step = summarize(phase, int(level) if mode == "closed" else 0, in_window(samples, ws, we), we - ws,
                         mode=mode, offered_qps=level if mode == "open" else 0.0)
        if "cpu" in at_window:
            wall = t_end - at_window["t"]
            step.cpu_cores = cores_used(at_window["cpu"], snapshot(pids()), wall)
            if ingested is not None:
                step.ingest_per_min = round(60 * (ingested() - at_window["ingested"]) / wall, 2)
            if builds is not None:
                step.index_builds = builds() - at_window["builds"]
        step.load_avg = round(os.getloadavg()[0], 2)
        steps.append(step)
        console.print(f"  {phase:6s} {label:>15s}: {step.qps:6.1f} QPS, p50 {step.rpcs['all'].p50_ms:6.1f} ms, "
                      f"p99 {step.p99_ms:7.1f} ms, errors {sum(step.rpcs['all'].errors.values())}"
                      + (f", ingest {step.ingest_per_min:.1f}/min" if ingested else "")
                      + (f", {step.index_builds} index build(s)" if step.index_builds else ""))
    return steps


def index_builds(search_url: str, settings: Settings) -> int:
    """Background index builds the search service has finished since it started, over all collections."""
    from search_svc.client import SearchClient

    with SearchClient(search_url, settings=settings, timeout_s=10) as client:
        return sum(state.builds for state in client.stats().index)


def indexed(states: Sequence[Any], max_unindexed: int) -> bool:
    """Whether the live index has caught up: no build running, and every collection's un-indexed tail under the
    build threshold or already built once (a collection too small for the engine to index stays plain)."""
    return all(not st.building and (st.unindexed < max_unindexed or st.builds > 0) for st in states)


def wait_until_indexed(search_url: str, settings: Settings, max_unindexed: int, timeout_s: float = 1800.0) -> float:
    """Wait for the background builds a restart starts (search_svc/store/live_index.py); returns the seconds
    waited. Measured steps then see the served index, not the one-off pause of the first build's swap (about
    2 s at 20k exams), which docs/benchmarks/live_index.md measures on its own. 0 = no live index: no wait."""
    from search_svc.client import SearchClient

    t0 = time.monotonic()
    if max_unindexed <= 0:
        return 0.0
    with SearchClient(search_url, settings=settings, timeout_s=10) as client:
        while not indexed(client.stats().index, max_unindexed):
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"the search service's index builds did not finish in {timeout_s:.0f} s")
            time.sleep(2.0)
    return time.monotonic() - t0


def pick_data(settings: Settings, plan: Plan) -> tuple[Path, list[Path], Path]:
    """(index data set, new studies for the worker, their data set): the kept benchmark sets when present
    (data/bench/test_instyle with its exam-tensor cache, data/bench/test_heldout), else generated once and kept."""
    bench = settings.data_dir / "bench"
    index_set, ingest_set = bench / "test_instyle", bench / "test_heldout"
    if not ((index_set / "reports.jsonl").exists() and (ingest_set / "studies").is_dir()):
        from cmr.synth.generate import generate_dataset

        out = settings.data_dir / "bench_load"
        index_set, ingest_set = out / "index", out / "ingest"
        for path, n, seed in ((index_set, plan.real, 31), (ingest_set, plan.ingest_studies, 32)):
            if not (path / "reports.jsonl").exists():
                with console.status(f"generating {n} synthetic studies in {path} (kept for the next run)..."):
                    generate_dataset(path, n, seed, workers=2, progress=False)
    studies = sorted(p for p in (ingest_set / "studies").iterdir() if p.is_dir())[:plan.ingest_studies]
    return index_set, studies, ingest_set


def env_overrides() -> dict[str, str]:
    """CMR_* variables of this run (they reach every part), secrets left out: they change what is measured."""
    secret = ("TOKEN", "KEY", "SECRET", "PASSWORD")
    return {k: v for k, v in os.environ.items() if k.startswith("CMR_") and not any(w in k for w in secret)}


def run(quick: bool = False, out_dir: Path | None = None, security: bool = True) -> LoadBench:
    from encoder_svc.client import EncoderClient
    from ingest_svc.producer import synth_reports
    from search_svc.client import SearchClient

    from bench.encoder import machine_description
    from bench.load_index import build_index
    from bench.load_stack import Feeder, LoadStack, Security

    plan = Plan.of(quick)
    out_dir = out_dir or REPO / "docs" / "benchmarks"
    base = get_settings()
    load_before = [round(x, 2) for x in os.getloadavg()]
    index_set, new_studies, ingest_set = pick_data(base, plan)
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        sec = Security.create(security, work / "security")
        stack = LoadStack(work, sec, [index_set, ingest_set])
        own = sec.service_settings(base)
        try:
            console.print(f"security: {sec.describe()}")
            stack.start_encoder()
            stack.start_search()
            assert stack.encoder is not None
            with EncoderClient(stack.encoder.address, settings=own, timeout_s=300) as enc, \
                    SearchClient(stack.search_url, settings=own, timeout_s=300) as search:
                enc.wait_ready(300)
                search.wait_ready(180)
                with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                              TimeRemainingColumn(), console=console) as bar:
                    task = bar.add_task("building the index", total=plan.total)
                    index = build_index(enc, search, index_set, plan.real, plan.total,
                                        progress=lambda k, n: bar.update(task, completed=k))
            console.print(f"index: {index.total} exams ({index.real} real, {index.padded} padding); restarting search "
                          "so HNSW covers them...")
            stack.stop_search()
            stack.start_search()
            with SearchClient(stack.search_url, settings=own) as search:
                search.wait_ready(300)
            waited = wait_until_indexed(stack.search_url, own, base.live_index_max_unindexed)
            console.print(f"background index build after the restart: {waited:.0f} s")
            builds = partial(index_builds, stack.search_url, own)
            work_mix = Workload(index.texts, index.study_keys, MIX)
            work_text, work_text_ingest = text_workloads(index.texts, index.study_keys)
            pool = UserPool(stack.search_url, sec.user_settings(base, plan.users))
            try:
                pool.warm(index.study_keys[0])
                # the generator's own full collections (55-67 ms over the index and the query lists) would count
                # as service latency in the open loop: freeze what is set up, as the services do
                freeze_startup_heap()
                with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                              console=console) as bar:
                    steps += measure("idle", pool, work_mix, plan, pids=stack.pids, builds=builds,
                                     progress=bar, check=stack.check_alive)
                    steps += measure("text-idle", pool, work_text, text_plan(plan), pids=stack.pids,
                                     builds=builds, progress=bar, check=stack.check_alive)
                    work_hit = Workload(index.texts[:HIT_TEXTS], index.study_keys, TEXT_ONLY)
                    for text in work_hit.texts:  # each answered once: every call of the step hits the cache
                        pool.next().search_text(text, top_k=TOP_K)
                    steps += measure("text-hit-idle", pool, work_hit, text_plan(plan), pids=stack.pids,
                                     builds=builds, progress=bar, check=stack.check_alive)
                    console.print("starting the broker and an ingest worker...")
                    bootstrap = stack.start_ingest()
                    feeder = Feeder(own.model_copy(update={"kafka_bootstrap": bootstrap}), new_studies,
                                    synth_reports(ingest_set), stack)
                    feeder.start()
                    deadline = time.monotonic() + 300
                    while stack.indexed() < 1:  # the worker joined its group and indexed a first study
                        stack.check_alive()
                        if feeder.error or time.monotonic() > deadline:
                            raise RuntimeError(f"ingestion did not start ({feeder.error}); logs in {stack.logs}")
                        time.sleep(1)
                    steps += measure("ingest", pool, work_mix, plan, pids=stack.pids, builds=builds,
                                     ingested=stack.indexed, progress=bar, check=stack.check_alive)
                    steps += measure("text-ingest", pool, work_text_ingest, text_plan(plan), pids=stack.pids, builds=builds,
                                     ingested=stack.indexed, progress=bar, check=stack.check_alive)
                    feeder.stop()
            finally:
                pool.close()
        finally:
            stack.stop()
    loadgen = sum(s.cpu_cores.get("loadgen", 0.0) for s in steps)
    ours = sum(sum(v for k, v in s.cpu_cores.items() if k not in ("machine", "other")) for s in steps)
    result = LoadBench(
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine_description(),
        load_avg_before=load_before, load_avg_after=[round(x, 2) for x in os.getloadavg()], quick=quick,
        security=sec.describe(), identities=plan.users,
        rate_limit=f"{base.rate_limit_per_s:g} req/s per identity, burst {base.rate_limit_burst}" if sec.on else "off",
        index={"real": index.real, "padded": index.padded, "total": index.total, "source": index.source},
        mix=list(MIX), warmup_s=plan.warmup_s, step_s=plan.step_s, limit_ms=LIMIT_MS, max_error_rate=MAX_ERROR_RATE,
        nice=os.nice(0), steps=steps,
        best={p: best_summary(best_step([s for s in steps if s.phase == p], LIMIT_MS, MAX_ERROR_RATE))
              for p in ("ingest", "idle")},
        loadgen_cpu_share=round(loadgen / ours, 3) if ours else 0.0, env_overrides=env_overrides(),
        text_runtime=base.text_runtime if base.search_embeds_text else None, query_cache_size=base.query_cache_size)
    md = write(result, out_dir, "load_quick" if quick else "load")
    console.print(f"results: {md}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--security", choices=("on", "off"), default="on")
    a = ap.parse_args(argv)
    print(json.dumps(asdict(run(a.quick, a.out, a.security == "on")), indent=2, default=str))


if __name__ == "__main__":
    main()
