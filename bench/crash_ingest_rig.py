"""The processes `cmr bench crash`'s ingestion phases run against, as deployed and each its own process: Triton
behind `cmr serve encoder`, `cmr serve search` (Qdrant Edge), the embedded Tansu broker on a fixed port (so a
restarted broker is found again), TLS and JWT tokens on. Studies: cheap copies (two small series each,
cmr/synth/study_copies.py) of a few generated studies. Measuring is off in the encoder and the worker: the
phases are about delivery, not about the segmenter's seconds per study."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.crash_ingest import WorkerProcess
from cmr.config import Settings
from cmr.synth.study_copies import Variant, make_variants

SECRET = "crash-bench-ingest-secret"
SOURCE_STUDIES = 6  # generated once; every ingested study is a copy of one of these with a new identity


class IngestRig:
    """`with IngestRig(work) as rig:` starts everything; `rig.phase(name)` gives a phase its own topics,
    consumer group and worker; `rig.studies(n, start)` makes n distinct studies."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._stack: list[Any] = []

    def __enter__(self) -> IngestRig:
        from bench.dev_security import Security
        from bench.encoder import EncoderProcess
        from bench.ingest import LoggedProcess
        from cmr.rpc.ports import free_ports
        from cmr.synth.generate import generate_dataset
        from encoder_svc.client import EncoderClient
        from ingest_svc.broker import TansuBroker
        from search_svc.client import SearchClient

        try:
            self.synth = self.work / "synth"
            generate_dataset(self.synth, SOURCE_STUDIES, 20, workers=2, scanner="training", progress=False)
            self.security = Security.create(True, self.work / "security")
            self.broker = TansuBroker(data_dir=self.work / "broker").start()
            self._stack.append(self.broker)
            off = {"CMR_MEASURE": "false", "CMR_STUDY_KEY_SECRET": SECRET, "CMR_TORCH_THREADS": "1"}
            self.encoder = EncoderProcess(True, self.work, env={**self.security.env("encoder"), **off})
            self._stack.append(self.encoder)
            self.search_port = free_ports(1)[0]
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
            self.search = LoggedProcess(
                [str(Path(sys.executable).parent / "cmr"), "serve", "search", "--port", str(self.search_port),
                 "--encoder-url", self.encoder.address],
                {**base_env, **self.security.env("search"), **off, "CMR_DATA_DIR": str(self.work / "search"),
                 "CMR_RATE_LIMIT_PER_S": "100000", "CMR_RATE_LIMIT_BURST": "100000"}, self.work / "search.log")
            self._stack.append(self.search)
            self.base_env = {**base_env, **self.security.env("ingest"), **off,
                             "CMR_ENCODER_URL": self.encoder.address, "CMR_SEARCH_URL": self.search_url,
                             "CMR_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                             "CMR_STUDY_ROOTS": json.dumps([str(self.work / "studies")]),
                             "CMR_INGEST_METRICS_PORT": "0", "CMR_KAFKA_PARTITIONS": "4",
                             "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "10000", "CMR_KAFKA_SESSION_TIMEOUT_MS": "6000",
                             "CMR_DATA_DIR": str(self.work / "worker")}
            with EncoderClient(self.encoder.address, settings=self.settings("warmup")) as c:
                self.encoder.wait_ready(c, 300)
            self.client = SearchClient(self.search_url, settings=self.settings("warmup"))
            self._stack.append(self.client)
            self.search.wait_ready(self.client, 180)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def search_url(self) -> str:
        return f"127.0.0.1:{self.search_port}"

    def env(self, phase: str) -> dict[str, str]:
        """A phase's worker (and `cmr ingest`) environment: its own topics and consumer group."""
        return {**self.base_env, "CMR_KAFKA_TOPIC_NEW": f"{phase}.exams.new",
                "CMR_KAFKA_TOPIC_EMBEDDED": f"{phase}.exams.embedded",
                "CMR_KAFKA_TOPIC_DEAD_LETTER": f"{phase}.exams.dead-letter", "CMR_KAFKA_GROUP_ID": f"{phase}-ingest"}

    def settings(self, phase: str) -> Settings:
        """The harness's own client settings for a phase (publishing, reading topics, the search service)."""
        base = Settings(kafka_bootstrap=self.broker.bootstrap, study_key_secret=SECRET, kafka_partitions=4,
                        kafka_topic_new=f"{phase}.exams.new", kafka_topic_embedded=f"{phase}.exams.embedded",
                        kafka_topic_dead_letter=f"{phase}.exams.dead-letter", kafka_group_id=f"{phase}-ingest")
        return self.security.service_settings(base, "ingest")

    def worker(self, phase: str) -> WorkerProcess:
        return WorkerProcess(self.env(phase), self.work / f"worker_{phase}.log")

    def studies(self, n: int, start: int) -> list[Variant]:
        return make_variants(self.synth, self.work / "studies", n, start=start)

    def close(self) -> None:
        while self._stack:
            part = self._stack.pop()
            try:
                part.close() if hasattr(part, "close") else part.stop()
            except Exception:  # noqa: BLE001 - stop the rest whatever one part does
                pass

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["IngestRig", "SECRET"]
