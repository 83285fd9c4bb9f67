"""Why a match, end to end with a model that explains: a tiny attention-pooling CMR-CLIP with measurement tokens
(saved here, served by its own Triton + EncoderService) behind a real SearchService on Qdrant Edge.

The ingest worker's pipeline indexes studies with the parts EncodeExam returned; SearchByText explains each of
those hits by its stored parts (the contributions sum to the hit's score), while exams indexed without parts get
no why; SearchByStudy by an indexed study's key explains by its stored parts; malformed parts are
INVALID_ARGUMENT and the service goes on; the UI's text-search and twin cards show the why line; and a model
upgrade re-embeds the parts with the new model (they sum to the new vectors)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cmr.config import Settings
from cmr.model.checkpoint import create_model, save_checkpoint
from cmr.model.config import Config
from cmr.rpc.messages import from_vector, to_vector
from cmr.rpc.ports import free_ports
from cmr.v1 import search_pb2
from encoder_svc.client import EncoderClient
from encoder_svc.server import EncoderServer
from ingest_svc.messages import new_exam, study_ref
from ingest_svc.pipeline import StudyPipeline
from search_svc.admin.client import AdminClient
from search_svc.admin.reembed import reembed
from search_svc.client import SearchClient
from search_svc.server import SearchServer
from search_svc.store.schema import PARTS_SUM_TOLERANCE
from service_fixtures import study_records
from tiny_config import TINY

NAMES = ("lvef_pct", "lvedvi_ml_m2")
N_INGESTED = 4  # through the ingest pipeline, with parts
N_PLAIN = 2  # upserted without parts (as before parts were stored)
QUERY = "dilated left ventricle with reduced ejection fraction"
VIEWS = Path(__file__).resolve().parents[3] / "ui" / "views"

pytestmark = [pytest.mark.slow, pytest.mark.own_triton]  # its own Triton: see tests/integration/conftest.py


def tiny_checkpoint(path: Path, seed: int) -> Path:
    d: dict[str, Any] = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": "attention"})
    save_checkpoint(path, create_model(Config.from_dict(d), seed=seed).eval())
    return path


@pytest.fixture(scope="module")
def why_settings(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("why")
    grpc_port, http_port, metrics_port = free_ports(3)
    return Settings(data_dir=root / "data", checkpoint=tiny_checkpoint(root / "tiny-why.pt", seed=5),
                    triton_grpc_port=grpc_port, triton_http_port=http_port, triton_metrics_port=metrics_port,
                    triton_exit_timeout_s=1, study_roots=[synth_dir], max_concurrent_studies=1,
                    request_timeout_s=180, measure=False, device="cpu", study_key_secret="why-secret",
                    max_texts_per_request=16)


@pytest.fixture(scope="module")
def stack(why_settings: Settings) -> Iterator[tuple[Settings, EncoderClient, SearchClient]]:
    with EncoderServer(why_settings, port=0) as enc_srv, \
            EncoderClient(enc_srv.address, settings=why_settings) as encoder:
        encoder.wait_ready(60)
        with SearchServer(why_settings, port=0, encoder_url=enc_srv.address) as srv:
            s = why_settings.model_copy(update={"search_url": srv.address, "encoder_url": enc_srv.address})
            with SearchClient(srv.address, settings=s) as search:
                search.wait_ready(60)
                yield s, encoder, search


@pytest.fixture(scope="module")
def indexed(stack: tuple[Settings, EncoderClient, SearchClient], studies: list[Path],
            synth_dir: Path) -> dict[str, list[str]]:
    """Study keys indexed with parts (the ingest pipeline) and without (a plain upsert of the same model)."""
    settings, encoder, search = stack
    records = study_records(synth_dir)
    pipeline = StudyPipeline(settings, encoder, search)
    with_parts = [pipeline.process(new_exam(study_ref(path=str(s)), report_text=records[s.name]["impression"]))
                  .study_key for s in studies[:N_INGESTED]]
    plain = []
    for s in studies[N_INGESTED:N_INGESTED + N_PLAIN]:
        enc = encoder.encode_study(s)
        assert enc.parts, "the tiny model pools by attention: EncodeStudy answers parts"
        plain.append(search_pb2.ExamUpsert(
            study_instance_uid=enc.study.study_instance_uid, image_embedding=to_vector(enc.embedding),
            impression=records[s.name]["impression"], views=list(enc.study.slots_present),
            model_version=enc.model.version))
    return {"parts": with_parts, "plain": list(search.upsert(plain).study_keys)}


def _explained(hit: search_pb2.ExamHit) -> None:
    """A hit's why: contributions summing to its score, largest first, of the model's part kinds."""
    assert hit.why
    assert sum(w.contribution for w in hit.why) == pytest.approx(hit.score, abs=PARTS_SUM_TOLERANCE)
    sizes = [abs(w.contribution) for w in hit.why]
    assert sizes == sorted(sizes, reverse=True)
    assert {w.kind for w in hit.why} <= {"view", "measurement", "exam"}
    assert {w.part for w in hit.why} <= {"cine_sax", "cine_4ch", "lge_sax", *NAMES, "exam"}


def test_text_search_explains_hits_indexed_with_parts(stack: Any, indexed: dict[str, list[str]]) -> None:
    _, _, search = stack
    hits = search.search_text(QUERY, top_k=N_INGESTED + N_PLAIN)
    assert {h.exam.study_key for h in hits} == set(indexed["parts"]) | set(indexed["plain"])
    for h in hits:
        if h.exam.study_key in indexed["parts"]:
            _explained(h)
            assert any(w.kind == "view" for w in h.why)
        else:
            assert not h.why, "an exam indexed without parts has nothing to explain with"


def test_twins_of_an_indexed_study_are_explained_by_its_stored_parts(stack: Any,
                                                                     indexed: dict[str, list[str]]) -> None:
    _, _, search = stack
    r = search.similar(study_key=indexed["parts"][0], top_k=N_INGESTED + N_PLAIN - 1)
    assert len(r.similar_exams) == N_INGESTED + N_PLAIN - 1
    for h in r.similar_exams:  # every hit, with or without parts of its own: the query's parts split the cosine
        _explained(h)
    r = search.similar(study_key=indexed["plain"][0], top_k=3)
    assert r.similar_exams and all(not h.why for h in r.similar_exams)  # the query exam has no parts


def test_malformed_parts_are_refused_and_the_service_goes_on(stack: Any, studies: list[Path],
                                                             indexed: dict[str, list[str]]) -> None:
    _, encoder, search = stack
    enc = encoder.encode_study(studies[N_INGESTED + N_PLAIN])
    good = search_pb2.ExamUpsert(study_instance_uid=enc.study.study_instance_uid,
                                 image_embedding=to_vector(enc.embedding), model_version=enc.model.version,
                                 parts=enc.parts)
    wrong = copy.deepcopy(good)
    for p in wrong.parts:  # the parts of another vector (this one's opposite; an untrained model's exams
        p.vector.CopyFrom(to_vector(-from_vector(p.vector)))  # all lie too close together to tell apart)
    with pytest.raises(grpc.RpcError) as refused:
        search.upsert([good, wrong])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exam 1: parts: parts do not sum to the exam's unit vector" in refused.value.details()
    assert search.stats().exams == N_INGESTED + N_PLAIN  # nothing of the request was written
    assert len(search.search_text(QUERY, top_k=2)) == 2  # a bad request never takes the service down


def _page(name: str, settings: Settings):  # noqa: ANN202
    from streamlit.testing.v1 import AppTest

    from ui.services import Services

    class NoPreviews:
        def gif(self, study_key: str) -> None:
            return None

    at = AppTest.from_file(str(VIEWS / name), default_timeout=120)
    at.session_state["cmr_services"] = Services(settings)
    at.session_state["cmr_previews"] = NoPreviews()
    return at.run()


def _why_lines(at) -> list[str]:  # noqa: ANN001
    return [str(c.value) for c in at.caption if str(c.value).startswith("why: ")]


def test_ui_cards_show_why_lines(stack: Any, indexed: dict[str, list[str]]) -> None:
    settings, _, search = stack
    at = _page("text_search.py", settings)
    at.text_input(key="ts_phrase").input(QUERY)
    at.slider(key="ts_top").set_value(N_INGESTED + N_PLAIN)
    at = next(b for b in at.button if b.label == "Search").click().run()
    assert not at.exception and not at.error
    explained = [h for h in search.search_text(QUERY, top_k=N_INGESTED + N_PLAIN) if h.why]
    assert len(_why_lines(at)) == len(explained) == N_INGESTED  # one line per hit stored with parts
    at = _page("scan.py", settings)
    at.text_input(key="scan_key").input(indexed["parts"][0])
    at = at.run()
    assert not at.exception and not at.error
    assert len(_why_lines(at)) == 5  # the default five twins, each explained by the query's stored parts


def test_an_upgrade_re_embeds_the_parts_with_the_new_model(stack: Any, indexed: dict[str, list[str]],
                                                           tmp_path: Path) -> None:
    """Last in the module: it switches the active generation."""
    settings, _, search = stack
    with AdminClient(settings.search_url, settings=settings) as admin:
        report = reembed(admin, tiny_checkpoint(tmp_path / "tiny-why-v2.pt", seed=6), settings, workers=1)
        assert (report.written, report.not_found, report.failed) == (N_INGESTED + N_PLAIN, [], [])
        admin.switch(report.generation)
    # every study, including those first indexed without parts, now has the new model's parts
    for key in (indexed["parts"][0], indexed["plain"][0]):
        r = search.similar(study_key=key, top_k=N_INGESTED + N_PLAIN - 1)
        assert r.model.version == report.model_version
        for h in r.similar_exams:
            _explained(h)
