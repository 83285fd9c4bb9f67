"""Model upgrade and rollback while searches run: the archive is re-embedded with a "new model" (the shipped
checkpoint with perturbed projections under a new version - never trained here) into a new generation while
the old one serves, the active generation is switched, the encoder is rolled to the new model, and rolled
back. A thread searches all along: zero failures; answers before the switch come from the old generation,
after it from the new one, and the rollback gives back the old answers exactly.

The encoder here is a small in-process EncoderService (text only) whose model can be swapped, standing in for
a rolling restart of `cmr serve encoder` behind one address; the indexed vectors come from the real one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from typer.testing import CliRunner

from cmr.config import Settings, get_settings
from cmr.model.checkpoint import DEFAULT_CHECKPOINT
from cmr.model.runtime import EncoderRuntime
from cmr.rpc.messages import to_vector
from cmr.rpc.server import GrpcServer, ServiceBinding
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc, search_pb2
from orchestration.cli.main import app
from search_svc.admin.client import AdminClient
from search_svc.admin.reembed import reembed
from measure_cases import measured_upserts
from search_svc.client import SearchClient
from search_svc.server import SearchServer

N_ARCHIVED = 6  # studies re-embedded (each is read from DICOM again: a second or two apiece)
QUERY = "severely dilated left ventricle with reduced ejection fraction"


class SwappableEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, runtime: EncoderRuntime) -> None:
        self.runtime = runtime

    def _info(self) -> common_pb2.ModelInfo:
        i = self.runtime.identity
        return common_pb2.ModelInfo(name=i.name, version=i.version, embed_dim=i.embed_dim)

    def EncodeText(self, request: Any, context: grpc.ServicerContext) -> encoder_pb2.EncodeTextResponse:
        rt = self.runtime  # one model per call, as one encoder process serves one
        vecs = rt.encode_texts(list(request.texts))
        return encoder_pb2.EncodeTextResponse(embeddings=[to_vector(v) for v in vecs],
                                              model=common_pb2.ModelInfo(name=rt.identity.name,
                                                                         version=rt.identity.version,
                                                                         embed_dim=rt.identity.embed_dim))

    def GetModelInfo(self, request: Any, context: grpc.ServicerContext) -> encoder_pb2.GetModelInfoResponse:
        return encoder_pb2.GetModelInfoResponse(model=self._info(), max_texts_per_request=64)


def perturbed_checkpoint(dest: Path) -> Path:
    """The shipped weights with both projections nudged, saved as another version (a stand-in new model)."""
    payload = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    gen = torch.Generator().manual_seed(3)
    for k in ("image_proj.weight", "text_proj.weight"):
        w = payload["state"][k].float()
        payload["state"][k] = w + 0.5 * w.std() * torch.randn(w.shape, generator=gen)
    path = dest / "cmr-clip-small-v2.pt"
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def case(encoder_settings: Settings, synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("upgrade_case")
    # search_embeds_text off: text queries follow the encoder's model here, as the rolling upgrade needs (a
    # search service embedding text itself stays on its own checkpoint's generation until that is dropped)
    settings = encoder_settings.model_copy(update={"data_dir": root / "data", "study_key_secret": "test-secret",
                                                   "study_roots": [synth_dir], "device": "cpu",
                                                   "search_embeds_text": False})
    return {"settings": settings, "new_ckpt": perturbed_checkpoint(root)}


@pytest.fixture(scope="module")
def swappable(case: dict[str, Any]) -> Iterator[tuple[SwappableEncoder, GrpcServer, EncoderRuntime, EncoderRuntime]]:
    s = case["settings"]
    old, new = EncoderRuntime(s), EncoderRuntime(s, checkpoint=case["new_ckpt"])
    servicer = SwappableEncoder(old)
    with GrpcServer([ServiceBinding(encoder_pb2_grpc.add_EncoderServiceServicer_to_server, "cmr.v1.EncoderService",
                                    servicer)], port=0, settings=s) as server:
        yield servicer, server, old, new


def _answer(c: SearchClient, kind: str, key: str) -> tuple[str, list[tuple[str, float]]]:
    if kind == "text":
        r = c.stub.SearchByText(search_pb2.SearchByTextRequest(query=QUERY, top_k=5), timeout=30)
        return r.model.version, [(h.exam.study_key, h.score) for h in r.hits]
    r = c.similar(study_key=key, top_k=5)
    return r.model.version, [(h.exam.study_key, h.score) for h in r.similar_exams]


def test_upgrade_switch_and_rollback_while_searching(case: dict[str, Any], swappable: Any,
                                                     upserts: list[search_pb2.ExamUpsert],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    servicer, enc_server, old_rt, new_rt = swappable
    settings: Settings = case["settings"]
    old_v, new_v = old_rt.identity.version, new_rt.identity.version
    assert old_v != new_v and upserts[0].model_version == old_v
    with SearchServer(settings, port=0, encoder_url=f"127.0.0.1:{enc_server.port}") as srv, \
            SearchClient(srv.address, settings=settings) as search, AdminClient(srv.address, settings=settings) as admin:
        search.wait_ready(30)
        archived = measured_upserts(upserts)[:N_ARCHIVED]  # measurements on most, none on one
        keys = list(search.upsert(archived).study_keys)
        old_answers = {kind: _answer(search, kind, keys[0]) for kind in ("text", "study")}
        assert {v for v, _ in old_answers.values()} == {old_v}
        zero_old = search.zero_shot(study_key=keys[1])

        phase = [0]  # bumped by the main thread around each change; a search seen in one phase is judged by it
        log: list[tuple[int, int, str, str, list[tuple[str, float]]]] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def searcher() -> None:
            with SearchClient(srv.address, settings=settings) as c:
                i = 0
                while not stop.is_set():
                    kind = ("text", "study")[i % 2]
                    i += 1
                    p0 = phase[0]
                    try:
                        version, hits = _answer(c, kind, keys[0])
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        failures.append(exc)
                        continue
                    log.append((p0, phase[0], kind, version, hits))
                    stop.wait(0.02)  # a steady trickle, not a load test: leave the cores to the upgrade

        t = threading.Thread(target=searcher)
        t.start()
        try:
            report = reembed(admin, case["new_ckpt"], settings, workers=2)  # phase 0: old generation serves meanwhile
            assert (report.written, report.skipped, report.not_found, report.failed) == (N_ARCHIVED, 0, [], [])
            print(f"re-embedded {report.written} studies in {report.seconds:.1f} s while searching")
            # Resumable, and the operator's command: a second run finds nothing left to do.
            for name, value in (("STUDY_ROOTS", json.dumps([str(r) for r in settings.study_roots])),
                                ("STUDY_KEY_SECRET", settings.study_key_secret)):
                monkeypatch.setenv(f"CMR_{name}", value)
            get_settings.cache_clear()
            cli = CliRunner()
            again = cli.invoke(app, ["index", "upgrade", "--checkpoint", str(case["new_ckpt"]), "--url", srv.address])
            assert again.exit_code == 0 and f"0 studies written, {N_ARCHIVED} already there" in again.output, again.output
            gens = admin.generations()
            new_gen = next(g for g in gens.generations if g.model_version == new_v)
            assert (new_gen.exams, new_gen.reports, gens.active != new_gen.name) == (N_ARCHIVED, N_ARCHIVED, True)

            phase[0] = 1  # switching
            switched = cli.invoke(app, ["index", "switch", new_gen.name, "--url", srv.address])
            assert switched.exit_code == 0 and f"active: {new_gen.name}" in switched.output, switched.output
            phase[0] = 2  # new generation active, encoder still on the old model
            new_study = _answer(search, "study", keys[0])
            assert new_study[0] == new_v and new_study != old_answers["study"]
            # the new generation's payloads were copied from the old one: the measurements came along
            assert [search.get(k).exam.measurements for k in keys] == [u.measurements for u in archived]
            assert any(not u.HasField("measurements") for u in archived) and archived[0].measurements.quality
            assert _answer(search, "text", keys[0]) == old_answers["text"]  # text follows the encoder's model
            phase[0] = 3
            servicer.runtime = new_rt  # the encoder is rolled to the new checkpoint
            phase[0] = 4
            new_text = _answer(search, "text", keys[0])
            assert new_text[0] == new_v and new_text != old_answers["text"]
            assert search.zero_shot(study_key=keys[1]).model.version == new_v

            phase[0] = 5  # rolling back
            assert cli.invoke(app, ["index", "rollback", "--url", srv.address]).exit_code == 0
            servicer.runtime = old_rt
            phase[0] = 6
            assert {kind: _answer(search, kind, keys[0]) for kind in ("text", "study")} == old_answers
            assert search.zero_shot(study_key=keys[1]) == zero_old
        finally:
            stop.set()
            t.join()
            get_settings.cache_clear()
        assert not failures, failures[:3]
        seen = {(p0, kind) for p0, p1, kind, _, _ in log if p0 == p1}
        assert {(0, "text"), (0, "study")} <= seen
        for p0, p1, kind, version, hits in log:
            if p0 != p1:
                continue  # overlapped a change: either answer is right
            if p0 == 0 or p0 == 6 or (kind == "text" and p0 == 2):
                assert (version, hits) == old_answers[kind], (p0, kind)
            if (kind == "study" and p0 in (2, 4)) or (kind == "text" and p0 == 4):
                assert version == new_v, (p0, kind)

        with pytest.raises(grpc.RpcError) as refused:
            admin.drop(new_gen.name)  # the rollback target is kept unless forced
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert admin.drop(new_gen.name, force=True)
        assert [g.model_version for g in admin.generations().generations] == [old_v]
