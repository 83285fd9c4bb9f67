"""The real services the RPC targets run against, and the checks after fuzzing: every service still SERVING,
every study indexed before fuzzing still there, unchanged.

`FuzzStack` (the benchmark) starts the encoder (Triton), the search service (Qdrant Edge in a temp folder) and
the generator (CMR-TARGET) in this process on free ports, indexes a few synthetic studies through the encoder,
and snapshots them. The tests build the same from the suite's shared fixtures and use `snapshot`/`problems`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fuzz.dicom_inputs import Seeds, load_seeds
from cmr.config import Settings
from cmr.labels import FINDINGS
from cmr.rpc.messages import to_vector
from cmr.rpc.ports import free_ports
from cmr.v1 import search_pb2, search_pb2_grpc
from encoder_svc.client import EncoderClient

SERVICES = ("cmr.v1.EncoderService", "cmr.v1.SearchService", "cmr.v1.GeneratorService")


def seed_upserts(encoder: EncoderClient, studies: Sequence[Path], synth_dir: Path) -> list[search_pb2.ExamUpsert]:
    """Each study encoded through the encoder service with its impression and labels (as the ingest worker
    sends them)."""
    rows = [json.loads(line) for line in (synth_dir / "reports.jsonl").read_text().splitlines() if line.strip()]
    records = {r["folder"].split("/")[-1]: r for r in rows}
    out = []
    for s in studies:
        rec = records[s.name]
        enc = encoder.encode_study(s)
        labels = [f for f in FINDINGS if rec["labels"].get(f)] + [f"disease:{rec['labels']['disease']}"]
        out.append(search_pb2.ExamUpsert(
            study_instance_uid=enc.study.study_instance_uid, image_embedding=to_vector(enc.embedding),
            report_embedding=to_vector(encoder.encode_texts([rec["impression"]])[0]), impression=rec["impression"],
            study_date=enc.study.study_date, vendor=enc.study.manufacturer, field_strength_t=enc.study.field_strength_t,
            views=list(enc.study.slots_present), labels=labels, model_version=enc.model.version))
    return out


def snapshot(channel: grpc.Channel, keys: Sequence[str]) -> dict[str, bytes]:
    """Each indexed study's record and vector, serialised, to compare after fuzzing."""
    stub = search_pb2_grpc.SearchServiceStub(channel)
    return {k: stub.Get(search_pb2.GetRequest(study_key=k, with_vector=True), timeout=30).SerializeToString(
        deterministic=True) for k in keys}


def serving(channel: grpc.Channel, service: str) -> str:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


def problems(channels: dict[str, grpc.Channel], search: grpc.Channel, before: dict[str, bytes]) -> list[str]:
    """What is wrong after fuzzing: a service not SERVING, a seeded study missing or changed."""
    out = [f"{name}: {status}" for name, ch in channels.items() if (status := serving(ch, name)) != "SERVING"]
    try:
        after = snapshot(search, list(before))
    except grpc.RpcError as exc:
        return [*out, f"seeded studies unreadable: {exc.code().name}: {exc.details()}"]
    out += [f"seeded study {k} changed" for k in before if after.get(k) != before[k]]
    return out


@dataclass
class FuzzStack:
    """Encoder + search + generator on free ports, with `n_studies` synthetic studies indexed."""

    work: Path
    realdata: Path | None
    n_studies: int = 6
    seed: int = 21
    settings: Settings | None = None
    seeded_keys: list[str] = field(default_factory=list)
    study_paths: list[Path] = field(default_factory=list)
    before: dict[str, bytes] = field(default_factory=dict)
    seeds: Seeds | None = None
    _servers: list = field(default_factory=list)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def __enter__(self) -> FuzzStack:
        from cmr.synth.generate import generate_dataset
        from encoder_svc.server import EncoderServer
        from generator_svc.server import GeneratorServer
        from search_svc.server import SearchServer

        data = self.work / "synth"
        if not (data / "reports.jsonl").is_file():
            generate_dataset(data, self.n_studies, self.seed, workers=2, scanner="training", phrasing="train",
                             progress=False)
        self.study_paths = sorted(p for p in (data / "studies").iterdir() if p.is_dir())
        grpc_port, http_port, metrics_port = free_ports(3)
        roots = [data] + ([self.realdata] if self.realdata else [])
        self.settings = Settings(data_dir=self.work / "state", triton_grpc_port=grpc_port, triton_http_port=http_port,
                                 triton_metrics_port=metrics_port, triton_exit_timeout_s=1, study_roots=roots,
                                 max_upload_bytes=48 * 1024**2, grpc_max_message_bytes=4 * 1024**2,
                                 max_texts_per_request=16, max_concurrent_studies=1, request_timeout_s=60,
                                 study_key_secret="fuzz-bench-secret", draft_neighbours=5,
                                 # the handlers are fuzzed behind the interceptor (tokens have their own tests),
                                 # whatever security the calling shell's CMR_* variables ask for
                                 tls=False, auth_mode="off")
        try:
            encoder = EncoderServer(self.settings, port=0).start()
            self._servers.append(encoder)
            search = SearchServer(self.settings, port=0, encoder_url=encoder.address).start()
            self._servers.append(search)
            generator = GeneratorServer(self.settings, port=0, search_url=search.address).start()
            self._servers.append(generator)
            self._channels = {name: grpc.insecure_channel(s.address) for name, s in zip(SERVICES, self._servers)}
            with EncoderClient(encoder.address, settings=self.settings) as client:
                client.wait_ready(120)
                upserts = seed_upserts(client, self.study_paths, data)
            stub = search_pb2_grpc.SearchServiceStub(self.channel("cmr.v1.SearchService"))
            self.seeded_keys = list(stub.Upsert(search_pb2.UpsertRequest(exams=upserts), timeout=60).study_keys)
            self.before = snapshot(self.channel("cmr.v1.SearchService"), self.seeded_keys)
            self.seeds = load_seeds(self.realdata, self.study_paths[:2])
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def servers(self) -> list:
        """The running servers: encoder, search, generator (the order of SERVICES)."""
        return list(self._servers)

    def channel(self, service: str) -> grpc.Channel:
        return self._channels[service]

    def problems(self) -> list[str]:
        return problems(self._channels, self.channel("cmr.v1.SearchService"), self.before)

    def __exit__(self, *exc: object) -> None:
        for ch in self._channels.values():
            ch.close()
        for server in reversed(self._servers):
            server.stop(1.0)
        self._servers.clear()


__all__ = ["FuzzStack", "SERVICES", "problems", "seed_upserts", "serving", "snapshot"]
