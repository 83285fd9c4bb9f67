"""The broker (embedded Tansu, memory storage) SIGKILLed and restarted in the middle of an ingestion: it comes
back empty, the worker process rides it out (publishing retried with backoff, the consumer rejoins by itself),
and `cmr ingest --resume JOURNAL` re-publishes what the index never confirmed: no study lost, none duplicated.
`cmr bench crash`'s broker core on the test's services, with its own broker (the session's is shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_ingest import WorkerProcess, restart_broker_during_ingestion
from cmr.config import Settings
from ingest_cases import make_variants, worker_env
from ingest_svc.broker import TansuBroker
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow
N = 24


def test_broker_restart_mid_ingestion_then_resume_loses_nothing(ingest_env: Settings, ingest_search: SearchClient,
                                                                 synth_dir: Path, ingest_root: Path,
                                                                 tmp_path: Path) -> None:
    variants = make_variants(synth_dir, ingest_root / "broker_restart", N, start=3000)
    with TansuBroker(data_dir=tmp_path / "broker") as broker:
        s = ingest_env.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        worker = WorkerProcess(worker_env(s), tmp_path / "worker.log")
        result = restart_broker_during_ingestion(broker, worker, ingest_search, s, variants,
                                                 tmp_path / "journal.jsonl", worker_env(s), kill_at=N // 4,
                                                 timeout_s=240)

    assert result.problems == []
    assert N // 4 <= result.indexed_at_kill < N  # the restart landed mid-ingestion
    assert result.resume_exit == 0 and result.republished > 0  # what the broker lost was sent again
    assert result.lost == result.duplicated == 0
    assert result.worker_survived, worker.tail()
