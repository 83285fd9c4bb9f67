"""The real stack the load benchmark drives, each part its own process as deployed: Triton + EncoderService
(bench.encoder.EncoderProcess), SearchService on Qdrant Edge (`cmr serve search`), the Tansu broker and one ingest
worker (`python -m ingest_svc`, as bench/ingest.py runs it), plus a feeder that keeps the worker busy with new
studies. Security is either the deployed configuration (TLS + JWT bearer tokens from `cmr security init-dev`'s
code, in the run's temporary folder) or off (plaintext, CMR_AUTH_MODE=off: development and the tests)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.dev_security import Security
from bench.encoder import EncoderProcess
from bench.ingest import LoggedProcess
from cmr.config import Settings
from cmr.rpc.ports import free_ports


def cmr_exe() -> str:
    return str(Path(sys.executable).parent / "cmr")


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus endpoint (0 when absent or unreachable)."""
    try:
        text = requests.get(url, timeout=5).text
    except requests.RequestException:
        return 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


class LoadStack:
    """Start and stop the parts; `pids` names each part's root process for the CPU accounting."""

    def __init__(self, work: Path, security: Security, study_roots: Sequence[Path]) -> None:
        self.work, self.security = work, security
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.roots = json.dumps([str(p) for p in study_roots])
        self.encoder: EncoderProcess | None = None
        self.search: LoggedProcess | None = None
        self.search_port = free_ports(1)[0]
        self.broker: Any = None
        self.worker: LoggedProcess | None = None
        self.metrics_url = ""

    @property
    def search_url(self) -> str:
        return f"127.0.0.1:{self.search_port}"

    def start_encoder(self) -> str:
        self.encoder = EncoderProcess(True, self.logs, env={**self.security.env("encoder"),
                                                            "CMR_STUDY_ROOTS": self.roots})
        return self.encoder.address

    def start_search(self) -> None:
        """(Re)start on the same port; a restart folds everything upserted so far into the HNSW graph."""
        assert self.encoder is not None
        env = {**os.environ, **self.security.env("search"), "CMR_DATA_DIR": str(self.work / "search"),
               "CMR_ENCODER_URL": self.encoder.address, "CMR_STUDY_ROOTS": self.roots}
        self.search = LoggedProcess([cmr_exe(), "serve", "search", "--port", str(self.search_port), "--encoder-url",
                             self.encoder.address], env, self.logs / f"search_{int(time.time())}.log")

    def stop_search(self) -> None:
        if self.search is not None:
            self.search.stop()
            self.search = None

    def start_ingest(self) -> str:
        """The broker and one worker; returns the bootstrap address."""
        from ingest_svc.broker import TansuBroker

        assert self.encoder is not None
        self.broker = TansuBroker(data_dir=self.work / "broker").start()
        port = free_ports(1)[0]
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        env = {**os.environ, **self.security.env("ingest"), "CMR_KAFKA_BOOTSTRAP": self.broker.bootstrap,
               "CMR_ENCODER_URL": self.encoder.address, "CMR_SEARCH_URL": self.search_url,
               "CMR_DATA_DIR": str(self.work / "ingest"), "CMR_STUDY_ROOTS": self.roots,
               "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "30000", "CMR_INGEST_METRICS_PORT": str(port)}
        self.worker = LoggedProcess([sys.executable, "-m", "ingest_svc"], env, self.logs / "worker.log")
        return self.broker.bootstrap

    def indexed(self) -> float:
        """Studies the worker has indexed so far (its Prometheus counter)."""
        return metric(self.metrics_url, "cmr_ingest_messages_total", outcome="indexed") if self.metrics_url else 0.0

    def stop_ingest(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.metrics_url = ""

    def pids(self) -> dict[str, int]:
        out = {"loadgen": os.getpid()}
        if self.encoder is not None:
            out["encoder+triton"] = self.encoder.proc.pid
        if self.search is not None:
            out["search"] = self.search.proc.pid
        if self.worker is not None:
            out["ingest worker"] = self.worker.proc.pid
        proc = getattr(self.broker, "_proc", None)
        if proc is not None:
            out["broker"] = proc.pid
        return out

    def check_alive(self) -> None:
        for name, p in (("search", self.search), ("ingest worker", self.worker)):
            if p is not None and p.proc.poll() is not None:
                raise RuntimeError(f"the {name} process exited (rc {p.proc.returncode}); logs in {self.logs}")
        if self.encoder is not None and self.encoder.proc.poll() is not None:
            raise RuntimeError(f"the encoder process exited; logs in {self.logs}")

    def stop(self) -> None:
        self.stop_ingest()
        self.stop_search()
        if self.encoder is not None:
            self.encoder.stop()
            self.encoder = None


class Feeder(threading.Thread):
    """Keeps `backlog` new studies queued ahead of the worker (so it ingests flat out throughout the measurement,
    the heaviest ingestion this machine can carry) until told to stop or out of studies."""

    def __init__(self, settings: Settings, studies: Sequence[Path], reports: dict[Path, Any], stack: LoadStack,
                 backlog: int = 6) -> None:
        super().__init__(daemon=True, name="ingest-feeder")
        self.settings, self.studies, self.reports, self.stack, self.backlog = settings, list(studies), reports, stack, backlog
        self.published = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        from ingest_svc.producer import ExamPublisher

        try:
            with ExamPublisher(self.settings) as pub:
                while not self._halt.is_set() and self.published < len(self.studies):
                    if self.published - self.stack.indexed() < self.backlog:
                        s = self.studies[self.published]
                        pub.publish_path(s, report=self.reports.get(s.resolve()), source="load-bench")
                        self.published += 1
                    else:
                        self._halt.wait(1.0)
        except BaseException as exc:  # noqa: BLE001 - reported by the benchmark, which then stops
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(15)
