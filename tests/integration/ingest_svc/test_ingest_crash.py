"""Crash safety of the ingestion, `cmr bench crash --quick`'s ingest-worker core on the test's services: the
worker is a real process (`python -m ingest_svc`), SIGKILLed 3 times at random moments while it ingests
studies and restarted each time (the benchmark: 5 or 20 times). Nothing is lost, nothing is duplicated in the index, every study has its
embedding event under one event_id (delivered at least once: repeats carry the same deterministic event_id),
nothing is dead-lettered, and a final SIGTERM stops it cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import worker_studies
from bench.crash_ingest import WorkerProcess, kill_worker_during_ingestion
from cmr.config import Settings
from cmr.rpc.keys import study_key
from ingest_cases import make_variants, worker_env
from ingest_svc.producer import ExamPublisher, Report
from search_svc.client import SearchClient

pytestmark = pytest.mark.slow

KILLS = 3  # each restart of the worker costs seconds on 2 cores; `cmr bench crash` does 5 or 20


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(ingest_env: Settings, ingest_search: SearchClient,
                                                                 synth_dir: Path, ingest_root: Path,
                                                                 tmp_path: Path) -> None:
    s = ingest_env
    variants = make_variants(synth_dir, ingest_root / "crash", worker_studies(KILLS), start=1000)
    keys = [study_key(v.uid, s.study_key_secret) for v in variants]
    with ExamPublisher(s) as pub:
        for v in variants:
            pub.publish_path(v.path, report=Report(v.impression, v.labels))
    worker = WorkerProcess(worker_env(s), tmp_path / "worker.log")

    result = kill_worker_during_ingestion(worker, ingest_search, s, keys, KILLS, seed=7)

    assert result.problems == []
    assert len(result.kills) == KILLS and worker.starts == KILLS + 1
    assert result.indexed == len(keys) and result.lost == result.duplicated == 0
    assert result.several_event_ids == result.missing_events == result.dead_letters == 0
    assert result.events >= len(keys) and result.clean_stop
    # the kills landed while the worker was ingesting, not only before or after
    assert any(0 < k.indexed < len(keys) for k in result.kills)
    text = worker.log.read_text()
    assert "ingest worker stopped" in text
    for v in variants:  # logs name studies by key only
        assert v.patient_id not in text and v.patient_name.split("^")[0] not in text
