"""Every RPC of EncoderService, SearchService and GeneratorService fuzzed through real servers (bench.fuzz):
the encoder on Triton (the suite's shared one), the search service on Qdrant Edge in a temp folder with the 24
synthetic studies indexed, and the generator with CMR-TARGET. The corpus in tests/fuzz_corpus replays and a
short derandomized hypothesis run per RPC finds no UNKNOWN/INTERNAL, no unclear detail, no deadline; afterwards
every service is SERVING and every study indexed before fuzzing is still there, unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench.fuzz.corpus import corpus_files, replay
from bench.fuzz.dicom_inputs import load_seeds
from bench.fuzz.harness import Target, fuzz
from bench.fuzz.rpc_targets import RPCS, RpcContext, rpc_context, rpc_target
from bench.fuzz.stack import SERVICES, problems, snapshot
from cmr.config import Settings
from cmr.v1 import search_pb2
from generator_svc.server import GeneratorServer
from search_svc.client import SearchClient
from search_svc.server import SearchServer
from service_fixtures import REALDATA

CORPUS = Path(__file__).resolve().parents[2] / "fuzz_corpus"
EXAMPLES = 30  # per RPC; the benchmark (cmr bench fuzz) runs 10,000


@pytest.fixture(scope="module")
def settings(encoder_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return encoder_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("fuzz_data"),
                                               "study_key_secret": "fuzz-test-secret", "draft_neighbours": 5})


@pytest.fixture(scope="module")
def servers(settings: Settings, encoder_server) -> Iterator[dict[str, str]]:  # noqa: ANN001
    with SearchServer(settings, port=0, encoder_url=encoder_server.address) as search, \
            GeneratorServer(settings, port=0, search_url=search.address) as generator:
        yield dict(zip(SERVICES, (encoder_server.address, search.address, generator.address)))


@pytest.fixture(scope="module")
def channels(servers: dict[str, str]) -> Iterator[dict[str, grpc.Channel]]:
    chans = {name: grpc.insecure_channel(address) for name, address in servers.items()}
    yield chans
    for ch in chans.values():
        ch.close()


@pytest.fixture(scope="module")
def seeded(channels: dict[str, grpc.Channel], servers: dict[str, str], settings: Settings,
           upserts: list[search_pb2.ExamUpsert]) -> dict[str, bytes]:
    """The studies indexed before fuzzing, as Get returns them."""
    with SearchClient(servers["cmr.v1.SearchService"], settings=settings) as client:
        client.wait_ready(30)
        keys = list(client.upsert(upserts).study_keys)
    return snapshot(channels["cmr.v1.SearchService"], keys)


@pytest.fixture(scope="module")
def context(channels: dict[str, grpc.Channel], seeded: dict[str, bytes], settings: Settings,
            studies: list[Path]) -> RpcContext:
    return rpc_context(channels["cmr.v1.EncoderService"], list(seeded), studies[:3], settings.study_roots,
                       settings.study_key_secret, load_seeds(REALDATA, studies[:1]))


@pytest.fixture(scope="module")
def targets(channels: dict[str, grpc.Channel], context: RpcContext) -> dict[str, Target]:
    return {r.name: rpc_target(r, channels[f"cmr.v1.{r.service}"], context) for r in RPCS}


@pytest.mark.parametrize("name", [r.name for r in RPCS])
def test_corpus_replays_without_failures(targets: dict[str, Target], name: str) -> None:
    assert corpus_files(CORPUS, name), f"no corpus for {name} in {CORPUS}"
    bad = [f"{path.name}: {o.status} {o.code}: {o.detail[:200]}" for path, o in replay(targets[name], CORPUS)
           if o.status not in ("accepted", "rejected")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", [r.name for r in RPCS])
def test_short_fuzz_run_finds_nothing(targets: dict[str, Target], name: str) -> None:
    stats = fuzz(targets[name], EXAMPLES, seed_value=11)
    assert stats.inputs == EXAMPLES
    assert stats.failed == 0, stats.failure_kinds
    assert stats.rejected, "every RPC refuses garbage with a status"


def test_services_alive_and_seeded_studies_intact(targets: dict[str, Target], channels: dict[str, grpc.Channel],
                                                  seeded: dict[str, bytes]) -> None:
    """Runs after the fuzzing above (pytest keeps file order): nothing it did broke a service or lost data."""
    assert len(seeded) >= 20
    assert problems(channels, channels["cmr.v1.SearchService"], seeded) == []
