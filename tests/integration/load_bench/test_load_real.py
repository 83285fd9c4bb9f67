"""The load benchmark end to end in miniature, against real services: the session's Triton + EncoderService and
a SearchService on Qdrant Edge, an index built through them (4 studies + padding to 200), two short steps
of the real query mix from several simulated users, one of SearchByText alone at its target rate, and the report. Auth is off here (tests/conftest.py); the
benchmark itself runs with TLS and tokens. No timing is asserted: speed is the benchmark's business."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from bench.load import TEXT_ONLY, TEXT_RATE, Plan, index_builds, measure, text_plan
from bench.load_gen import MIX, UserPool, Workload, cache_missing
from bench.load_index import build_index
from bench.load_report import LoadBench, best_summary, to_markdown
from bench.load_stats import ALL, best_step
from cmr.config import Settings
from encoder_svc.client import EncoderClient
from encoder_svc.server import EncoderServer
from search_svc.client import SearchClient
from search_svc.server import SearchServer


def test_two_short_steps_against_real_services(encoder: EncoderClient, encoder_server: EncoderServer,
                                               encoder_settings: Settings, synth_dir: Path, tmp_path: Path) -> None:
    s = encoder_settings.model_copy(update={"data_dir": tmp_path / "search", "encoder_url": encoder_server.address})
    plan = Plan(concurrency=(1,), rates=(5.0,), warmup_s=0.5, step_s=2.0, users=3, real=4, total=200, ingest_studies=0)
    with SearchServer(s, port=0, encoder_url=encoder_server.address) as srv, \
            SearchClient(srv.address, settings=s, timeout_s=120) as search:
        search.wait_ready(60)
        index = build_index(encoder, search, synth_dir, plan.real, plan.total)
        assert (index.real, index.total) == (4, 200) and len(index.study_keys) == 4 and index.texts
        pool = UserPool(srv.address, [s] * plan.users)
        try:
            pool.warm(index.study_keys[0])
            reads: list[int] = []

            def builds() -> int:  # the service's own count, through Stats; each step reads it twice
                reads.append(index_builds(srv.address, s))
                return reads[-1]

            steps = measure("idle", pool, Workload(index.texts, index.study_keys, MIX), plan,
                            pids=lambda: {"loadgen": os.getpid()}, builds=builds)
            text_steps = measure("text-idle", pool, Workload(cache_missing(index.texts, 500), index.study_keys,
                                                             TEXT_ONLY), text_plan(plan),
                                 pids=lambda: {"loadgen": os.getpid()}, builds=builds)
        finally:
            pool.close()
    assert [(st.mode, st.concurrency, st.offered_qps) for st in steps] == [("closed", 1, 0.0), ("open", 0, 5.0)]
    # the clinician's call alone, open loop at its target rate: only SearchByText, every call answered
    assert [(st.phase, st.mode, st.offered_qps) for st in text_steps] == [("text-idle", "open", TEXT_RATE)]
    assert set(text_steps[0].rpcs) == {"SearchByText", ALL} and text_steps[0].rpcs[ALL].errors == {}
    assert text_steps[0].rpcs["SearchByText"].ok > 0
    steps += text_steps
    # 200 points stay under the live index's build threshold: no build, and the count came from Stats per step
    assert len(reads) == 2 * len(steps) and [st.index_builds for st in steps] == [0] * len(steps)
    for st in steps:
        assert st.rpcs[ALL].ok > 0 and st.rpcs[ALL].errors == {}
        assert "SearchByText" in st.rpcs and st.cpu_cores["loadgen"] >= 0
    result = LoadBench(when="now", machine="test", load_avg_before=[0, 0, 0], load_avg_after=[0, 0, 0], quick=True,
                       security="off", identities=plan.users, rate_limit="off", index={"total": index.total},
                       mix=list(MIX), warmup_s=plan.warmup_s, step_s=plan.step_s, limit_ms=1e9, max_error_rate=0.01,
                       nice=0, steps=steps, best={"idle": best_summary(best_step(steps, 1e9)), "ingest": None})
    # the writer and its figure are unit-tested; here: real steps go through the JSON and the markdown
    data = json.loads(json.dumps(asdict(result), default=str))
    md = to_markdown(result, "x.png")
    assert data["best"]["idle"]["qps"] > 0 and "| 1 clients | SearchByText |" in md
    assert "| SearchByText alone, without ingestion | 10/s offered |" in md
