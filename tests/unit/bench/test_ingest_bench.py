"""The ingest benchmark's bookkeeping: a pass ends when the workers have finished every study (events published),
a study read again after a rebalance is counted once, and the report states the security and the slowest stage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from bench.ingest import STAGES, IngestBench, Pass, _handled, to_markdown
from cmr.rpc.ports import free_ports


@pytest.fixture
def worker_endpoints() -> Iterator[tuple[list[str], list[Counter]]]:
    """Two fake workers' /metrics with the worker's messages counter."""
    servers, urls, counters = [], [], []
    for port in free_ports(2):
        registry = CollectorRegistry()
        counters.append(Counter("cmr_ingest_messages", "by outcome", ["outcome"], registry=registry))
        server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
        servers.append(server)
        urls.append(f"http://127.0.0.1:{port}/metrics")
    yield urls, counters
    for server in servers:
        server.shutdown()


def test_handled_counts_finished_studies_once(worker_endpoints: tuple[list[str], list[Counter]]) -> None:
    urls, (first, second) = worker_endpoints
    assert _handled(urls) == 0
    first.labels("indexed").inc(2)
    first.labels("duplicate").inc()  # the same study again after a rebalance
    second.labels("indexed").inc()
    second.labels("dead_letter").inc()
    assert _handled(urls) == 4
    closed = f"http://127.0.0.1:{free_ports(1)[0]}/metrics"
    assert _handled([*urls, closed]) == 4  # a worker not listening yet adds nothing


def test_report_states_security_and_the_slowest_stage() -> None:
    seconds = {stage: 0.1 for stage in STAGES} | {"measure": 3.0}
    r = IngestBench(when="now", machine="test", load_avg_before=[0.1, 0.1, 0.1], security="TLS on, tokens on",
                    quick=True, studies=2, files_per_study=300, mb_per_study=15.0,
                    passes=[Pass(1, 2, 60.0, 20.0, 3.0, 2.0, seconds, 0)], target_per_min=30.0,
                    meets_target=False, note="")
    text = to_markdown(r, "ingest.png")
    assert "Between\nthe services: TLS on, tokens on." in text
    assert "| measure | 3.000 |" in text and "slowest stage here is **measure**" in text
