"""Encoder throughput and latency: studies/s and p50/p99 at concurrency 1, 8 and 32, with Triton's dynamic
batching on and off, against the raw in-process model on the same exam tensors, in one run.

    cmr bench encoder [--quick] [--json]      # or: .venv/bin/python -m bench.encoder

Each configuration runs `cmr serve encoder` in its own process (as deployed); the load comes from client
threads in this process. Paths measured:
- service: EncoderService.EncodeExam over gRPC -> encoder service -> Triton -> model (what the ingest worker uses)
- triton:  Triton's own gRPC endpoint directly (what the encoder-service hop costs)
- study:   EncoderService.EncodeStudy with the DICOM files uploaded (decoding included; batching on only)
- raw:     the model called in this process on batches of 1 and of the max batch size, no server at all
Results: docs/benchmarks/encoder.{md,json,png} (quick runs: encoder_quick.*).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from bench.dev_security import Security
from cmr.config import Settings, get_settings
from cmr.dicom import load_study
from cmr.synth.generate import generate_dataset

console = Console(stderr=True)
CONCURRENCY = (1, 8, 32)
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Point:
    path: str            # service | triton | study | raw
    batching: str        # on | off | n/a
    concurrency: int     # client threads (raw: the batch size)
    requests: int
    seconds: float
    studies_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


@dataclass
class BenchResult:
    date: str
    machine: str
    device: str
    model_version: str
    quick: bool
    seconds_per_point: float
    max_batch_size: int
    queue_delay_us: int
    inputs: str
    load_average: float = 0.0  # 1-minute load before the run: other jobs on the machine lower every number
    security: str = ""  # TLS and tokens between the benchmark's client and the service, or off
    points: list[Point] = field(default_factory=list)
    targets: dict[str, dict[str, object]] = field(default_factory=dict)


def machine_description() -> str:
    from cmr.machine import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return "CPU"


# --- inputs ---------------------------------------------------------------------------------------------------

def study_folders(n: int, settings: Settings) -> tuple[list[Path], str]:
    """n synthetic study folders: the held-out benchmark set when present, else generated (and kept)."""
    bench = settings.data_dir / "bench" / "test_heldout" / "studies"
    if bench.is_dir():
        found = sorted(p for p in bench.iterdir() if p.is_dir())[:n]
        if len(found) == n:
            return found, f"{n} synthetic studies of data/bench/test_heldout"
    out = settings.data_dir / "bench_encoder"
    with console.status(f"generating {n} synthetic studies in {out} (kept for the next run)..."):
        generate_dataset(out, n, 5, workers=0, scanner="all", phrasing="train", progress=False)
    return sorted(p for p in (out / "studies").iterdir() if p.is_dir())[:n], f"{n} generated synthetic studies"


def exam_tensors(folders: Sequence[Path], spec) -> list[tuple[np.ndarray, np.ndarray]]:  # noqa: ANN001
    out = []
    for f in folders:
        exam = load_study(f).to_exam(spec)
        out.append((exam.pixels_uint8(), exam.mask.copy()))
    return out


# --- load generation ------------------------------------------------------------------------------------------

def closed_loop(call: Callable[[int], object], concurrency: int, seconds: float,
                warmup_s: float = 1.0) -> tuple[int, float, list[float], int]:
    """`concurrency` threads call `call(i)` back to back for `seconds` (after a warm-up): (requests, elapsed,
    latencies in s, errors). Closed loop: each client waits for its answer, as real callers do."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_measure = time.perf_counter() + warmup_s
    stop_at = start_measure + seconds

    def client(k: int) -> None:
        nonlocal errors
        i = k
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                call(i)
                ok = True
            except Exception:  # noqa: BLE001 - counted and reported, the run goes on
                ok = False
            t1 = time.perf_counter()
            if t0 >= start_measure and t1 <= stop_at:
                with lock:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
            i += concurrency

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), seconds, latencies, errors


Submit = Callable[[int, Callable[[bool], None]], None]


def closed_loop_async(submit: Submit, concurrency: int, seconds: float,
                      warmup_s: float = 1.0) -> tuple[int, float, list[float], int]:
    """Like `closed_loop`, with `concurrency` requests kept in flight by completion callbacks instead of
    threads: on 2 cores, 32 client threads would take the CPU the server is being measured on.
    `submit(i, done)` starts request i and calls done(ok) when it completes."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    finished = threading.Event()
    in_flight = 0
    start_measure = time.perf_counter() + warmup_s
    stop_at = start_measure + seconds
    counter = iter(range(10**12))

    def launch() -> None:
        nonlocal in_flight
        t0 = time.perf_counter()
        if t0 >= stop_at:
            return
        with lock:
            in_flight += 1

        def done(ok: bool) -> None:
            nonlocal errors, in_flight
            t1 = time.perf_counter()
            with lock:
                if t0 >= start_measure and t1 <= stop_at:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
                in_flight -= 1
            launch()
            with lock:
                if in_flight == 0 and time.perf_counter() >= stop_at:
                    finished.set()

        submit(next(counter), done)

    for _ in range(concurrency):
        launch()
    finished.wait(seconds + warmup_s + 120)
    return len(latencies), seconds, latencies, errors


def _point(path: str, batching: str, concurrency: int, n: int, seconds: float, lat: list[float],
           errors: int, per_request: int = 1) -> Point:
    ms = np.asarray(lat) * 1000 if lat else np.asarray([np.nan])
    return Point(path, batching, concurrency, n, seconds, n * per_request / seconds, float(np.percentile(ms, 50)),
                 float(np.percentile(ms, 99)), errors)


def measure_raw(tensors: list[tuple[np.ndarray, np.ndarray]], batch_sizes: Sequence[int],
                seconds: float) -> list[Point]:
    from cmr.model.runtime import EncoderRuntime

    runtime = EncoderRuntime()
    points = []
    for b in batch_sizes:
        px = np.stack([tensors[i % len(tensors)][0] for i in range(b)])
        mk = np.stack([tensors[i % len(tensors)][1] for i in range(b)])
        n, secs, lat, err = closed_loop(lambda _i: runtime.encode_exams(px, mk), 1, seconds)
        points.append(_point("raw", "n/a", b, n, secs, lat, err, per_request=b))
    return points


# --- servers --------------------------------------------------------------------------------------------------

class EncoderProcess:
    """`cmr serve encoder` in a child process on free ports; stopped with SIGTERM like a deployment would."""

    def __init__(self, batching: bool, log_dir: Path, env: dict[str, str] | None = None) -> None:
        """env: extra variables on top of this process's (the load benchmark's TLS and token settings)."""
        from cmr.rpc.ports import free_ports

        self.port, t_grpc, t_http, t_metrics = free_ports(4)
        self.triton_url = f"127.0.0.1:{t_grpc}"
        env = {**os.environ, **(env or {}), "CMR_TRITON_GRPC_PORT": str(t_grpc), "CMR_TRITON_HTTP_PORT": str(t_http),
               "CMR_TRITON_METRICS_PORT": str(t_metrics), "CMR_TRITON_DYNAMIC_BATCHING": str(batching).lower(),
               "CMR_TRITON_EXIT_TIMEOUT_S": "1"}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"encoder_bench_{'on' if batching else 'off'}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "cmr"), "serve", "encoder", "--port",
                                      str(self.port)], env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, client: Any, timeout_s: float = 300) -> None:
        wait_serving(client.wait_ready, self.proc, self.log_path, timeout_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def wait_serving(wait_ready: Callable[[float], None], proc: subprocess.Popen[Any], log: Path,
                 timeout_s: float) -> None:
    """`wait_ready` (a client's health wait) until SERVING, but a server process that has exited fails at once
    with the last line of its log (a configuration error, a busy port) instead of after the whole timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()] if log.exists() else []
            raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with code {proc.returncode}: "
                               f"{lines[-1] if lines else 'no output'} (log: {log})")
        try:
            wait_ready(min(5.0, max(deadline - time.monotonic(), 0.1)))
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise


def triton_submitter(url: str, tensors: list[tuple[np.ndarray, np.ndarray]]) -> Submit:
    import tritonclient.grpc as tg

    client = tg.InferenceServerClient(url)
    inputs = []
    # a model that reads measurements takes them as a third input: NaN = not measured, as the service sends an
    # exam tensor without them (without it Triton refuses every request with INVALID_ARGUMENT)
    meta = client.get_model_metadata("cmr_clip_image", "1")
    n_measured = next((int(i.shape[-1]) for i in meta.inputs if i.name == "measurements"), 0)
    for px, mk in tensors:  # built once: the load generator should cost as little CPU as a real client
        a = tg.InferInput("pixels", [1, *px.shape], "UINT8")
        a.set_data_from_numpy(px[None])
        b = tg.InferInput("mask", [1, mk.shape[0]], "BOOL")
        b.set_data_from_numpy(mk[None])
        inputs.append([a, b])
        if n_measured:
            m = tg.InferInput("measurements", [1, n_measured], "FP32")
            m.set_data_from_numpy(np.full((1, n_measured), np.nan, dtype=np.float32))
            inputs[-1].append(m)

    def submit(i: int, done: Callable[[bool], None]) -> None:
        client.async_infer("cmr_clip_image", inputs[i % len(inputs)], lambda result, error: done(error is None),
                           model_version="1")

    return submit


def service_submitter(client, tensors: list[tuple[np.ndarray, np.ndarray]], spec_id: str) -> Submit:  # noqa: ANN001
    from cmr.v1 import common_pb2, encoder_pb2

    requests = [encoder_pb2.EncodeExamRequest(exam=common_pb2.ExamTensor(
        frames=px.shape[0], height=px.shape[1], width=px.shape[2], pixels=px.tobytes(),
        mask=mk.astype(np.uint8).tobytes(), spec_id=spec_id)) for px, mk in tensors]

    def submit(i: int, done: Callable[[bool], None]) -> None:
        future = client.stub.EncodeExam.future(requests[i % len(requests)], timeout=120)
        future.add_done_callback(lambda f: done(f.exception() is None))

    return submit


def measure_server(batching: bool, tensors: list[tuple[np.ndarray, np.ndarray]], folders: Sequence[Path],
                   spec_id: str, seconds: float, progress: Progress, log_dir: Path,
                   security: Security) -> tuple[list[Point], str]:
    from encoder_svc.client import EncoderClient

    label = "on" if batching else "off"
    server = EncoderProcess(batching, log_dir, env=security.env("encoder"))
    points: list[Point] = []
    try:
        # the ingest identity: the role the worker calls EncodeExam with, and not rate-limited
        with EncoderClient(server.address, settings=security.service_settings(get_settings())) as client:
            server.wait_ready(client, 300)
            version = client.model_info().model.version
            task = progress.add_task(f"batching {label}", total=2 * len(CONCURRENCY) + (2 if batching else 0))
            paths: list[tuple[str, Submit]] = [
                ("service", service_submitter(client, tensors, spec_id)),
                ("triton", triton_submitter(server.triton_url, tensors)),
            ]
            for name, submit in paths:
                for c in CONCURRENCY:
                    n, secs, lat, err = closed_loop_async(submit, c, seconds)
                    points.append(_point(name, label, c, n, secs, lat, err))
                    progress.advance(task)
            if batching:  # whole studies, DICOM decoding included: bounded by the loader, not the model
                for c in (1, 2):
                    n, secs, lat, err = closed_loop(lambda i: client.encode_study(folders[i % len(folders)]), c,
                                                    seconds * 2, warmup_s=2.0)
                    points.append(_point("study", label, c, n, secs, lat, err))
                    progress.advance(task)
    finally:
        server.stop()
    return points, version


# --- results --------------------------------------------------------------------------------------------------

def _get(points: Sequence[Point], path: str, batching: str, c: int) -> Point:
    return next(p for p in points if p.path == path and p.batching == batching and p.concurrency == c)


def check_targets(points: Sequence[Point]) -> dict[str, dict[str, object]]:
    on, off = _get(points, "service", "on", 32), _get(points, "service", "off", 32)
    raw_best = max(p.studies_per_s for p in points if p.path == "raw")
    saturated = max(p.studies_per_s for p in points if p.path == "service" and p.batching == "on")
    gain = on.studies_per_s / off.studies_per_s if off.studies_per_s else float("inf")
    loss = 1 - saturated / raw_best
    return {
        "batching_gain_at_32": {"value": round(gain, 2), "target": ">= 2.0", "met": gain >= 2.0},
        "service_loss_vs_raw": {"value": round(loss, 3), "target": "<= 0.20", "met": loss <= 0.20},
    }


def plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {("service", "on"): ("C0", "-"), ("service", "off"): ("C0", "--"),
              ("triton", "on"): ("C1", "-"), ("triton", "off"): ("C1", "--")}
    for (path_name, batching), (color, ls) in styles.items():
        pts = [p for p in result.points if p.path == path_name and p.batching == batching]
        xs = [p.concurrency for p in pts]
        label = f"{path_name}, batching {batching}"
        ax1.plot(xs, [p.studies_per_s for p in pts], ls, color=color, marker="o", label=label)
        ax2.plot(xs, [p.p99_ms for p in pts], ls, color=color, marker="o", label=label)
    raw_best = max(p.studies_per_s for p in result.points if p.path == "raw")
    ax1.axhline(raw_best, color="k", lw=1, ls=":", label="raw in-process (best batch)")
    ax1.axhline(0.8 * raw_best, color="grey", lw=1, ls=":", label="80% of raw (target)")
    for ax, title in ((ax1, "throughput (exams/s)"), (ax2, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    fig.suptitle(f"CMR-CLIP encoder on Triton - {result.device}, {result.machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_markdown(r: BenchResult, png_name: str) -> str:
    rows = ["| path | dynamic batching | concurrency | studies/s | p50 ms | p99 ms | requests | errors |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in r.points:
        conc = f"batch {p.concurrency}" if p.path == "raw" else str(p.concurrency)
        rows.append(f"| {p.path} | {p.batching} | {conc} | {p.studies_per_s:.1f} | {p.p50_ms:.1f} | "
                    f"{p.p99_ms:.1f} | {p.requests} | {p.errors} |")
    targets = [f"- {name.replace('_', ' ')}: {t['value']} (target {t['target']}): "
               f"**{'met' if t['met'] else 'not met'}**" for name, t in r.targets.items()]
    return "\n".join([
        "# Encoder benchmark (Triton + EncoderService)", "",
        f"Run {r.date}{' (quick mode)' if r.quick else ''} on {r.machine}; model on {r.device}; "
        f"{r.model_version}; inputs: {r.inputs}; {r.seconds_per_point:.0f} s per point, closed-loop clients; "
        f"max batch {r.max_batch_size}, queue delay {r.queue_delay_us} us; 1-minute load average before the "
        f"run {r.load_average} on {os.cpu_count()} cores{' (other jobs were running: read these as lower bounds)' if r.load_average > 0.5 else ''}"
        f"{'; service calls: ' + r.security if r.security else ''}. Reproduce: `cmr bench encoder`.", "",
        "Paths: **service** = EncodeExam over gRPC through the encoder service to Triton (exam tensors, as the "
        "ingest worker sends them); **triton** = Triton's gRPC endpoint directly; **study** = EncodeStudy with "
        "the DICOM files uploaded and decoded (concurrency = clients; bounded by decoding); **raw** = the model "
        "in this process with no server (concurrency column = batch size). Servers run in their own process; "
        "clients share the same cores.", "",
        "## Targets", "", *targets, "",
        f"![throughput and p99 latency]({png_name})", "",
        "## All points", "", *rows, "",
    ])


def run(quick: bool = False, out_dir: Path | None = None, seconds: float | None = None,
        n_studies: int | None = None, security: bool = True) -> BenchResult:
    """security: the service as deployed (TLS + bearer tokens, keys made for this run), or off (stated)."""
    settings = get_settings()
    out_dir = out_dir or REPO / "docs" / "benchmarks"
    seconds = seconds or (4.0 if quick else 15.0)
    folders, inputs = study_folders(n_studies or (4 if quick else 16), settings)
    from cmr.model.checkpoint import load_model

    spec = load_model().spec
    tensors = exam_tensors(folders, spec)
    result = BenchResult(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                         machine=machine_description(), device=device_description(), model_version="",
                         quick=quick, seconds_per_point=seconds, max_batch_size=settings.triton_max_batch_size,
                         queue_delay_us=settings.triton_queue_delay_us, inputs=inputs,
                         load_average=round(os.getloadavg()[0], 2))
    with console.status("raw in-process model..."):
        result.points += measure_raw(tensors, sorted({1, settings.triton_max_batch_size}), seconds)
    with Progress(console=console) as progress, tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp:
        sec = Security.create(security, Path(tmp) / "security")
        result.security = sec.describe()
        for batching in (True, False):
            pts, version = measure_server(batching, tensors, folders, spec.spec_id, seconds, progress,
                                          settings.data_dir / "logs", sec)
            result.points += pts
            result.model_version = version
    result.targets = check_targets(result.points)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "encoder_quick" if quick else "encoder"
    plot(result, out_dir / f"{stem}.png")
    (out_dir / f"{stem}.md").write_text(to_markdown(result, f"{stem}.png"))
    (out_dir / f"{stem}.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    console.print(f"wrote {out_dir / stem}.md/.json/.png")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 studies, 4 s per point (about 2 minutes)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--out", type=Path, default=None, help="folder for the .md/.json/.png (docs/benchmarks)")
    ap.add_argument("--security", choices=("on", "off"), default="on")
    args = ap.parse_args(argv)
    result = run(quick=args.quick, out_dir=args.out, security=args.security == "on")
    if args.json:
        print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
