"""Shared fixtures of the service tests: synthetic studies with labels, and one real Triton + EncoderService
for the whole run (Triton takes ~15 s to start), on free ports, serving the shipped CMR-CLIP model.
Registered in tests/integration/conftest.py.

The shared encoder does not measure (CMR_MEASURE=false): segmenting a synthetic SAX stack costs seconds of
CPU per EncodeStudy, and most service tests encode dozens of studies. `measuring_encoder` is a second
EncoderService with measuring on, in front of the same Triton (the external-Triton deployment): no second
Triton to start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.labels import FINDINGS
from cmr.rpc.messages import to_vector
from cmr.rpc.ports import free_ports
from cmr.synth.generate import generate_dataset
from encoder_svc.client import EncoderClient
from cmr.v1 import search_pb2
from encoder_svc.server import EncoderServer
from realdata_paths import SUNNYBROOK_LOCALIZERS, SUNNYBROOK_MIDSLICE as SUNNYBROOK_CINE, TEST_REALDATA as REALDATA

MAX_UPLOAD = 48 * 1024**2
MAX_MESSAGE = 4 * 1024**2
N_STUDIES = 24  # enough for zero-shot to be judged against chance, small enough for CI


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("service_synth") / "data"
    generate_dataset(out, N_STUDIES, 21, workers=2, scanner="training", phrasing="train", progress=False)
    return out


@pytest.fixture(scope="session")
def studies(synth_dir: Path) -> list[Path]:
    return sorted(p for p in (synth_dir / "studies").iterdir() if p.is_dir())


@pytest.fixture(scope="session")
def encoder_settings(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    grpc_port, http_port, metrics_port = free_ports(3)
    return Settings(data_dir=tmp_path_factory.mktemp("encoder_data"), triton_grpc_port=grpc_port,
                    triton_http_port=http_port, triton_metrics_port=metrics_port, triton_exit_timeout_s=1,
                    study_roots=[synth_dir, REALDATA], max_upload_bytes=MAX_UPLOAD,
                    grpc_max_message_bytes=MAX_MESSAGE, max_texts_per_request=16, max_concurrent_studies=1,
                    request_timeout_s=60, measure=False)


@pytest.fixture(scope="session")
def encoder_server(encoder_settings: Settings) -> Iterator[EncoderServer]:
    with EncoderServer(encoder_settings, port=0) as server:
        yield server


@pytest.fixture(scope="session")
def encoder(encoder_server: EncoderServer, encoder_settings: Settings) -> Iterator[EncoderClient]:
    with EncoderClient(encoder_server.address, settings=encoder_settings) as client:
        client.wait_ready(60)
        yield client


@pytest.fixture(scope="session")
def measuring_encoder_server(encoder_server: EncoderServer, encoder_settings: Settings) -> Iterator[EncoderServer]:
    """An EncoderService that measures (the shipped segmenter), sharing the session's Triton."""
    # Two studies at a time, one segmenter thread each: on 2 cores that beats one study with two threads.
    settings = encoder_settings.model_copy(update={"measure": True, "triton_url": encoder_server.triton_config.url,
                                                   "request_timeout_s": 180, "max_concurrent_studies": 2})
    with EncoderServer(settings, port=0) as server:
        yield server


@pytest.fixture(scope="session")
def measuring_encoder(measuring_encoder_server: EncoderServer, encoder_settings: Settings) -> Iterator[EncoderClient]:
    settings = encoder_settings.model_copy(update={"request_timeout_s": 180})
    with EncoderClient(measuring_encoder_server.address, settings=settings) as client:
        client.wait_ready(60)
        yield client


def study_records(synth_dir: Path) -> dict[str, dict]:
    """reports.jsonl rows of the synthetic studies by folder name."""
    rows = [json.loads(line) for line in (synth_dir / "reports.jsonl").read_text().splitlines() if line.strip()]
    return {r["folder"].split("/")[-1]: r for r in rows}


@pytest.fixture(scope="session")
def upserts(encoder: EncoderClient, studies: list[Path], synth_dir: Path) -> list[search_pb2.ExamUpsert]:
    """Every study encoded through the (non-measuring) encoder service, with its impression vector and labels
    (what the ingest worker sends the search service)."""
    return _upserts(encoder, studies, synth_dir)


@pytest.fixture(scope="session")
def upserts_measured(measuring_encoder: EncoderClient, studies: list[Path],
                     synth_dir: Path) -> list[search_pb2.ExamUpsert]:
    """As `upserts`, through the measuring encoder: the vectors the ingest worker stores by default, where the
    shipped model reads the segmenter's numbers (what search quality is judged on)."""
    return _upserts(measuring_encoder, studies, synth_dir, concurrency=2)


def _upserts(encoder: EncoderClient, studies: list[Path], synth_dir: Path,
             concurrency: int = 1) -> list[search_pb2.ExamUpsert]:
    records = study_records(synth_dir)
    with ThreadPoolExecutor(concurrency) as pool:
        encoded = list(pool.map(encoder.encode_study, studies))
    out = []
    for s, enc in zip(studies, encoded):
        rec = records[s.name]
        labels = [f for f in FINDINGS if rec["labels"].get(f)] + [f"disease:{rec['labels']['disease']}"]
        out.append(search_pb2.ExamUpsert(
            study_instance_uid=enc.study.study_instance_uid, image_embedding=to_vector(enc.embedding),
            report_embedding=to_vector(encoder.encode_texts([rec["impression"]])[0]), impression=rec["impression"],
            study_date=enc.study.study_date, vendor=enc.study.manufacturer, field_strength_t=enc.study.field_strength_t,
            views=list(enc.study.slots_present), labels=labels, model_version=enc.model.version))
    return out
