"""Fixtures of the ingestion tests: a real Tansu broker, a real SearchService (Qdrant Edge in a temp folder)
in front of the session's real encoder, and settings that point the worker at them. Each test takes its own
topics and consumer group (`ingest_env`), so tests never read each other's records."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmr.config import Settings
from encoder_svc.server import EncoderServer
from ingest_svc.broker import TansuBroker
from search_svc.client import SearchClient
from search_svc.server import SearchServer

_COUNTER = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


@pytest.fixture(scope="session")
def ingest_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ingest_studies")


@pytest.fixture(scope="session")
def ingest_base_settings(encoder_settings: Settings, encoder_server: EncoderServer, broker: TansuBroker,
                         ingest_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return encoder_settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("ingest_search_data"), "study_key_secret": "ingest-test-secret",
        "kafka_bootstrap": broker.bootstrap, "encoder_url": encoder_server.address,
        "study_roots": [ingest_root], "ingest_max_attempts": 3, "ingest_backoff_s": 0.1,
        "ingest_backoff_max_s": 0.5, "kafka_max_poll_interval_ms": 20_000, "kafka_session_timeout_ms": 6_000,
        "ingest_metrics_port": 0, "kafka_partitions": 4,
        "measure": True})  # the worker measures in its own process (the shared encoder does not)


@pytest.fixture(scope="session")
def search_server(ingest_base_settings: Settings, encoder_server: EncoderServer) -> Iterator[SearchServer]:
    with SearchServer(ingest_base_settings, port=0, encoder_url=encoder_server.address) as srv:
        yield srv


@pytest.fixture(scope="session")
def ingest_search(search_server: SearchServer, ingest_base_settings: Settings) -> Iterator[SearchClient]:
    with SearchClient(search_server.address, settings=ingest_base_settings) as client:
        client.wait_ready(60)
        yield client


@pytest.fixture
def ingest_env(ingest_base_settings: Settings, search_server: SearchServer) -> Settings:
    """Settings of one test: its own topics and group on the shared broker, the shared services."""
    n = next(_COUNTER)
    return ingest_base_settings.model_copy(update={
        "search_url": search_server.address, "kafka_topic_new": f"t{n}.exams.new",
        "kafka_topic_embedded": f"t{n}.exams.embedded", "kafka_topic_dead_letter": f"t{n}.exams.dead-letter",
        "kafka_group_id": f"t{n}-ingest"})
