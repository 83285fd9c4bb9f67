"""Ingest throughput end to end: demo-size synthetic studies (full 11-series CMR exams, ~340 DICOM files each)
published to Kafka and ingested by 1 and then 2 workers, everything on this machine as deployed: the Tansu
broker, `cmr serve encoder` (Triton), `cmr serve search` (Qdrant Edge) and `python -m ingest_svc` workers, each
its own process.

    cmr bench ingest [--quick] [--json]      # or: .venv/bin/python -m bench.ingest

Measured per worker count: studies per minute in steady state (from the embedding events' timestamps, first to
last), the same including worker start-up and the group join, and where a study's time goes (each worker's
Prometheus stage histograms: fetch, parse, de-identify, assemble the exam tensor, encode, upsert, score,
publish). Each pass indexes into a fresh search service. Results: docs/benchmarks/ingest.{md,json,png} (quick
runs: ingest_quick.*).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from bench.dev_security import Security
from bench.encoder import EncoderProcess, machine_description, wait_serving
from cmr.config import get_settings
from cmr.rpc.ports import free_ports
from cmr.synth.generate import generate_dataset
from ingest_svc.pipeline import TIMED_STAGES

console = Console(stderr=True)
REPO = Path(__file__).resolve().parent.parent
TARGET_PER_MIN = 30.0
STAGES = (*TIMED_STAGES, "publish")  # the worker's stage histogram labels (measure: the segmenter, when on)


@dataclass
class Pass:
    workers: int
    studies: int
    wall_s: float                # worker start to last study indexed (start-up and group join included)
    steady_s: float              # first to last embedding event
    per_min_steady: float
    per_min_wall: float
    stage_mean_s: dict[str, float] = field(default_factory=dict)   # per study, summed over workers
    dead_letters: int = 0


@dataclass
class IngestBench:
    when: str
    machine: str
    load_avg_before: list[float]
    security: str
    quick: bool
    studies: int
    files_per_study: float
    mb_per_study: float
    passes: list[Pass]
    target_per_min: float
    meets_target: bool
    note: str


class LoggedProcess:
    """A benchmark's server or worker process, its output in a log file; stop() ends it (TERM, then KILL)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_ready(self, client: Any, timeout_s: float) -> None:
        wait_serving(client.wait_ready, self.proc, self.log_path, timeout_s)

    def stop(self, timeout_s: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _families(url: str) -> list[Any]:
    """The metric families of one worker's Prometheus endpoint (none while it is unreachable)."""
    try:
        return list(text_string_to_metric_families(requests.get(url, timeout=5).text))
    except requests.RequestException:
        return []


def _handled(metrics_urls: Sequence[str]) -> float:
    """Studies the workers have finished: indexed (event published) or dead-lettered; a study read again after a
    rebalance counts once (its second pass is a duplicate)."""
    return sum(s.value for url in metrics_urls for fam in _families(url) if fam.name == "cmr_ingest_messages"
               for s in fam.samples if s.name.endswith("_total") and s.labels.get("outcome") != "duplicate")


def _stage_means(metrics_urls: Sequence[str], n: int) -> dict[str, float]:
    sums: dict[str, float] = {}
    for url in metrics_urls:
        for fam in _families(url):
            if fam.name != "cmr_ingest_stage_seconds":
                continue
            for s in fam.samples:
                if s.name.endswith("_sum"):
                    sums[s.labels["stage"]] = sums.get(s.labels["stage"], 0.0) + s.value
    return {k: round(sums.get(k, 0.0) / max(n, 1), 4) for k in STAGES if k in sums}


def run_pass(n_workers: int, data: Path, encoder_url: str, work: Path, n: int, sec: Security) -> Pass:
    from cmr.kafka_io import read_topic
    from ingest_svc.broker import TansuBroker
    from ingest_svc.producer import publish_paths
    from search_svc.client import SearchClient
    from cmr.v1 import events_pb2

    settings = get_settings()
    with TansuBroker(data_dir=work / f"broker{n_workers}") as broker:
        search_port = free_ports(1)[0]
        env = {**os.environ, "CMR_KAFKA_BOOTSTRAP": broker.bootstrap, "CMR_ENCODER_URL": encoder_url,
               "CMR_SEARCH_URL": f"127.0.0.1:{search_port}", "CMR_DATA_DIR": str(work / f"search{n_workers}"),
               "CMR_STUDY_ROOTS": json.dumps([str(data)]), "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "30000",
               "CMR_KAFKA_PARTITIONS": "4"}
        search = LoggedProcess([str(Path(sys.executable).parent / "cmr"), "serve", "search", "--port", str(search_port),
                        "--encoder-url", encoder_url], {**env, **sec.env("search")}, work / f"search{n_workers}.log")
        s = sec.service_settings(settings.model_copy(update={"kafka_bootstrap": broker.bootstrap,
                                                             "kafka_partitions": 4}))
        workers: list[LoggedProcess] = []
        try:
            with SearchClient(f"127.0.0.1:{search_port}", settings=s) as client:
                search.wait_ready(client, 180)
                publish_paths(s, [data])
                ports = free_ports(n_workers)
                t0 = time.monotonic()
                for i, port in enumerate(ports):
                    workers.append(LoggedProcess([sys.executable, "-m", "ingest_svc"],
                                         {**env, **sec.env("ingest"), "CMR_INGEST_METRICS_PORT": str(port)},
                                         work / f"worker{n_workers}_{i}.log"))
                deadline = t0 + 60 * 30
                urls = [f"http://127.0.0.1:{p}/metrics" for p in ports]
                # done when the workers have published every study's event, not when the index holds it: a worker
                # stopped between its upsert and its event would leave the last study without event and timings
                while _handled(urls) < n and time.monotonic() < deadline:
                    if any(w.proc.poll() is not None for w in workers):
                        raise RuntimeError(f"a worker exited; see {work}")
                    time.sleep(0.5)
                wall = time.monotonic() - t0
                stages = _stage_means(urls, n)
            events = [events_pb2.EmbeddingCreated.FromString(r.value) for r in read_topic(s, s.kafka_topic_embedded)]
            letters = [events_pb2.DeadLetter.FromString(r.value) for r in read_topic(s, s.kafka_topic_dead_letter)]
            dead = sum(d.stage != "dedupe" for d in letters)  # a study read again after a rebalance is no failure
        finally:
            for w in workers:
                w.stop()
            search.stop()
    stamps = sorted(e.created_at.ToDatetime().timestamp() for e in events)
    steady = stamps[-1] - stamps[0] if len(stamps) > 1 else wall
    per_min_wall = 60 * n / wall
    # first to last event; with a single event there is no steady state: the rate including start-up
    per_min_steady = 60 * (len(stamps) - 1) / steady if len(stamps) > 1 and steady > 0 else per_min_wall
    return Pass(n_workers, n, round(wall, 2), round(steady, 2), round(per_min_steady, 2), round(per_min_wall, 2),
                stages, dead)


def plot(r: IngestBench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{p.workers} worker{'s' if p.workers > 1 else ''}" for p in r.passes]
    x = range(len(r.passes))
    a.bar([i - 0.2 for i in x], [p.per_min_steady for p in r.passes], 0.4, label="steady state")
    a.bar([i + 0.2 for i in x], [p.per_min_wall for p in r.passes], 0.4, label="incl. start-up")
    a.axhline(r.target_per_min, color="red", ls="--", label=f"target {r.target_per_min:.0f}/min")
    a.set_xticks(list(x), labels)
    a.set_ylabel("studies / minute")
    a.set_title("ingest throughput (demo-size studies)")
    a.legend()
    bottom = [0.0] * len(r.passes)
    for stage in STAGES:
        vals = [p.stage_mean_s.get(stage, 0.0) for p in r.passes]
        b.bar(list(x), vals, bottom=bottom, label=stage)
        bottom = [u + v for u, v in zip(bottom, vals)]
    b.set_xticks(list(x), labels)
    b.set_ylabel("seconds per study (worker time)")
    b.set_title("where the time goes")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_markdown(r: IngestBench, png: str) -> str:
    rows = "\n".join(f"| {p.workers} | {p.studies} | {p.per_min_steady:.1f} | {p.per_min_wall:.1f} | {p.wall_s:.0f} | "
                     f"{p.dead_letters} |" for p in r.passes)
    stage_rows = "\n".join(
        f"| {s} | " + " | ".join(f"{p.stage_mean_s.get(s, 0.0):.3f}" for p in r.passes) + " |" for s in STAGES)
    return f"""# Ingest benchmark

`cmr bench ingest{' --quick' if r.quick else ''}`, {r.when}. Machine: {r.machine}; load average before the run
{r.load_avg_before}. {r.note}

{r.studies} demo-size synthetic studies ({r.files_per_study:.0f} DICOM files, {r.mb_per_study:.1f} MB each: cine
SAX stack, 2/3/4-chamber cines, LGE; the quick run uses fewer) published to Kafka (Tansu), then ingested end to end by `python -m
ingest_svc` workers: read, parse, de-identify (dicognito + PS3.15 basic profile), build the exam tensor, encode
(EncoderService on Triton), upsert (SearchService on Qdrant Edge), zero-shot scores, publish the event, commit.
Every process (broker, Triton, encoder, search, workers) shares the same {os.cpu_count()} cores. Between
the services: {r.security}.

| workers | studies | studies/min (steady) | studies/min (incl. start-up) | wall s | dead letters |
| --- | --- | --- | --- | --- | --- |
{rows}

Target: >= {r.target_per_min:.0f} studies/min on 2 cores: **{'met' if r.meets_target else 'not met'}** (best steady
state).

Where a study's time goes (mean seconds per study inside the workers, from their Prometheus histograms; with 2
workers two studies are in flight at once, so these add up to more than the wall time per study):

| stage | {' | '.join(f'{p.workers} worker(s)' for p in r.passes)} |
| --- | {' | '.join('---' for _ in r.passes)} |
{stage_rows}

![ingest throughput]({png})

Reading it: the slowest stage here is **{max(STAGES, key=lambda k: sum(p.stage_mean_s.get(k, 0.0) for p in r.passes))}**
(parse, de-identify and assemble are pure-Python/numpy work on every file of the study; measure runs the
segmenter on the short-axis cine; encode is the CLIP model on Triton). A second worker helps only as far as
the cores are free: Triton, the search service and the broker run on the same two cores. On a real deployment the workers scale out
across machines up to the partition count (CMR_KAFKA_PARTITIONS).
"""


def run(quick: bool = False, out_dir: Path | None = None, studies: int | None = None, security: bool = True,
        worker_counts: Sequence[int] = (1, 2)) -> IngestBench:
    """security: the services as deployed (TLS + bearer tokens, keys made for this run) or off (stated)."""
    n = studies or (6 if quick else 30)
    out_dir = out_dir or REPO / "docs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        data = work / "data"
        console.print(f"generating {n} demo-size studies...")
        generate_dataset(data, n, 11, workers=2, progress=False)
        study_files = [f for f in (data / "studies").rglob("*") if f.is_file()]
        files_per = len([f for f in study_files if f.suffix != ".json"]) / n
        mb_per = sum(f.stat().st_size for f in study_files) / n / 1e6
        sec = Security.create(security, work / "security")
        console.print(f"security: {sec.describe()}")
        enc = EncoderProcess(True, work, env=sec.env("encoder"))
        passes = []
        try:
            from encoder_svc.client import EncoderClient

            with EncoderClient(enc.address, settings=sec.service_settings(get_settings())) as c:
                enc.wait_ready(c, 300)
            for k in worker_counts:
                console.print(f"ingesting {n} studies with {k} worker(s)...")
                passes.append(run_pass(k, data, enc.address, work, n, sec))
                console.print(f"  {passes[-1].per_min_steady:.1f} studies/min steady, {passes[-1].wall_s:.0f} s wall")
        finally:
            enc.stop()
    best = max(p.per_min_steady for p in passes)
    result = IngestBench(
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine_description(),
        load_avg_before=load_before, security=sec.describe(), quick=quick, studies=n,
        files_per_study=round(files_per, 1),
        mb_per_study=round(mb_per, 2), passes=passes, target_per_min=TARGET_PER_MIN,
        meets_target=best >= TARGET_PER_MIN,
        note="Other jobs were running on the machine (load average above): read these figures as lower bounds."
             if load_before[0] > 0.5 else "")
    stem = "ingest_quick" if quick else "ingest"
    (out_dir / f"{stem}.json").write_text(json.dumps(asdict(result), indent=2))
    plot(result, out_dir / f"{stem}.png")
    (out_dir / f"{stem}.md").write_text(to_markdown(result, f"{stem}.png"))
    console.print(f"results: {out_dir / stem}.md")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--studies", type=int)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--security", choices=("on", "off"), default="on")
    a = ap.parse_args(argv)
    print(json.dumps(asdict(run(a.quick, a.out, a.studies, a.security == "on")), indent=2))


if __name__ == "__main__":
    main()
