"""The committed generated code matches the .proto files (run `make protos` when this fails)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = _generator().generate(tmp_path)
    assert len(fresh) == 3 * len(list((ROOT / "protos" / "cmr" / "v1").glob("*.proto")))
    committed = {p.name for p in (ROOT / "cmr" / "v1").glob("*_pb2*.py*")}
    assert committed == {p.name for p in fresh}, "generated modules added or removed: run `make protos`"
    stale = [p.name for p in fresh if p.read_bytes() != (ROOT / "cmr" / "v1" / p.name).read_bytes()]
    assert not stale, f"stale generated code {stale}: run `make protos`"


def test_services_and_events_are_importable() -> None:
    from cmr.v1 import encoder_pb2_grpc, events_pb2, generator_pb2_grpc, search_pb2_grpc

    assert {"EncodeStudy", "EncodeExam", "EncodeText", "GetModelInfo"} <= set(
        encoder_pb2_grpc.EncoderServiceServicer.__dict__)
    assert {"SearchByText", "SearchByStudy", "ZeroShot", "FewShot", "BuildCohort", "ExportCohort", "Upsert",
            "Delete", "Get", "Stats"} <= set(search_pb2_grpc.SearchServiceServicer.__dict__)
    assert "GenerateReport" in generator_pb2_grpc.GeneratorServiceServicer.__dict__
    for name in ("NewExam", "EmbeddingCreated", "DeadLetter"):
        assert name in events_pb2.DESCRIPTOR.message_types_by_name
