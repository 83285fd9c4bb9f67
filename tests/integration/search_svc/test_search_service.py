"""SearchService end to end: the real encoder (Triton) and the real Qdrant Edge store; 24 synthetic studies
with known labels indexed through the service."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cmr.config import Settings
from cmr.rpc.ports import free_ports
from cmr.v1 import search_pb2
from encoder_svc.client import EncoderClient
from search_svc.client import SearchClient
from search_svc.server import SearchServer


@pytest.fixture(scope="module")
def search_settings(encoder_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return encoder_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("search_data"),
                                               "study_key_secret": "test-secret"})


@pytest.fixture(scope="module")
def upserts(upserts_measured: list[search_pb2.ExamUpsert]) -> list[search_pb2.ExamUpsert]:
    """The studies as the ingest worker stores them by default: measured, so the shipped model reads their
    numbers (this module judges search quality)."""
    return upserts_measured


@pytest.fixture(scope="module")
def server(search_settings: Settings, measuring_encoder_server) -> Iterator[SearchServer]:  # noqa: ANN001
    # Server-side references are encoded as the index was: by the measuring encoder.
    with SearchServer(search_settings, port=0, encoder_url=measuring_encoder_server.address) as srv:
        yield srv


@pytest.fixture(scope="module")
def search(server: SearchServer, search_settings: Settings,
           upserts: list[search_pb2.ExamUpsert]) -> Iterator[SearchClient]:
    with SearchClient(server.address, settings=search_settings) as client:
        client.wait_ready(30)
        r = client.upsert(upserts)
        assert (r.created, r.updated) == (len(upserts), 0)
        yield client


@pytest.fixture(scope="module")
def keys(search: SearchClient, upserts: list[search_pb2.ExamUpsert]) -> list[str]:
    return list(search.upsert(upserts).study_keys)  # a second time: must not add anything


def _labels(search: SearchClient, keys: list[str]) -> dict[str, set[str]]:
    return {k: set(search.get(k).exam.labels) for k in keys}


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[no-any-return]


# --- index ----------------------------------------------------------------------------------------------------

def test_upsert_is_idempotent_and_stores_no_uid(search: SearchClient, keys: list[str],
                                                upserts: list[search_pb2.ExamUpsert]) -> None:
    again = search.upsert(upserts[:3])
    assert (again.created, again.updated) == (0, 3) and list(again.study_keys) == keys[:3]
    stats = search.stats()
    assert stats.exams == len(upserts) == stats.reports and stats.backend == "edge"
    assert sum(stats.by_vendor.values()) == len(upserts) and list(stats.model_versions) == [upserts[0].model_version]
    index = {i.collection: i for i in stats.index}  # the live index's view: every point is counted, none lost
    assert sum(i.points for i in index.values()) == 2 * len(upserts) and not any(i.last_error for i in index.values())
    got = search.get(keys[0], with_vector=True)
    assert upserts[0].study_instance_uid not in str(got)  # the UID never reaches the index
    assert got.exam.impression == upserts[0].impression and len(got.image_embedding.values) == 256


def test_text_search_ranks_and_filters(search: SearchClient, keys: list[str]) -> None:
    hits = search.search_text("severely dilated left ventricle with reduced ejection fraction", top_k=8)
    scores = [h.score for h in hits]
    assert len(hits) == 8 and scores == sorted(scores, reverse=True)
    vendor = hits[0].exam.vendor
    only = search.search_text("normal study", top_k=24, vendors=[vendor])
    assert only and {h.exam.vendor for h in only} == {vendor}
    with_lge = search.search_text("normal study", top_k=24, labels_all=["lge"])
    assert with_lge and all("lge" in h.exam.labels for h in with_lge)
    sax = search.search_text("normal study", top_k=24, views_all=["cine_sax", "lge_sax"])
    assert all({"cine_sax", "lge_sax"} <= set(h.exam.views) for h in sax)
    none = search.search_text("normal study", top_k=24, date_from="2999-01-01")
    assert none == []


def test_text_search_finds_the_finding(search: SearchClient, keys: list[str]) -> None:
    labels = _labels(search, keys)
    hits = search.search_text("hypertrophic cardiomyopathy with asymmetric septal hypertrophy", top_k=24)
    order = [h.exam.study_key for h in hits]
    y = [("disease:hcm" in labels[k]) or ("lv_hypertrophy" in labels[k]) for k in order]
    if 0 < sum(y) < len(y):
        assert roc_auc_score(y, [-i for i in range(len(y))]) > 0.6


def test_digital_twins_and_nearest_reports(search: SearchClient, keys: list[str]) -> None:
    r = search.similar(study_key=keys[0], top_k=5)
    assert keys[0] not in [h.exam.study_key for h in r.similar_exams] and len(r.similar_exams) == 5
    assert len(r.nearest_reports) == 5 and all(h.impression for h in r.nearest_reports)
    with_self = search.similar(study_key=keys[0], top_k=1, include_self=True)
    assert with_self.similar_exams[0].exam.study_key == keys[0] and with_self.similar_exams[0].score > 0.999
    vec = np.asarray(search.get(keys[1], with_vector=True).image_embedding.values, np.float32)
    by_vector = search.similar(embedding=vec, top_k=1)
    assert by_vector.similar_exams[0].exam.study_key == keys[1]


def test_similar_by_server_side_ref(search: SearchClient, keys: list[str], studies: list[Path]) -> None:
    r = search.similar(path=str(studies[0]), top_k=1)
    assert r.similar_exams[0].exam.study_key == keys[0] and r.similar_exams[0].score > 0.999


# --- classification -------------------------------------------------------------------------------------------

def test_zero_shot_beats_chance_on_known_labels(search: SearchClient, keys: list[str]) -> None:
    labels = _labels(search, keys)
    probs: dict[str, list[float]] = {}
    for k in keys:
        r = search.zero_shot(study_key=k)
        assert "Platt" in r.calibration and all(0 <= s.probability <= 1 for s in r.scores)
        for s in r.scores:
            probs.setdefault(s.finding if s.kind == "finding" else f"disease:{s.finding}", []).append(s.probability)
    aucs: dict[str, float] = {}
    for key, p in probs.items():
        y = [key in labels[k] for k in keys]
        if sum(y) >= 3 and len(y) - sum(y) >= 3:
            aucs[key] = float(roc_auc_score(y, p))
    # Well above chance on average, and the findings the measured numbers state are read well. (The shipped
    # model's synthetic zero-shot is 0.72 over the paper's seven findings; "normal" and myocarditis, told apart
    # by pixels only, are below chance: docs/model/README.md.)
    assert len(aucs) >= 4 and float(np.mean(list(aucs.values()))) > 0.62, aucs
    read = [aucs[f] for f in ("lv_dysfunction", "lv_dilation") if f in aucs]
    assert read and min(read) > 0.75, aucs
    subset = search.zero_shot(findings=["lge", "hcm"], study_key=keys[0])
    assert [s.finding for s in subset.scores] == ["lge", "hcm"]


def test_few_shot_from_examples(search: SearchClient, keys: list[str]) -> None:
    labels = _labels(search, keys)
    finding = next(f for f in ("lv_dilation", "lv_dysfunction", "lv_hypertrophy")
                   if 6 <= sum(f in labels[k] for k in keys) <= len(keys) - 6)
    pos = [k for k in keys if finding in labels[k]]
    neg = [k for k in keys if finding not in labels[k]]
    train_pos, train_neg = pos[:4], neg[:4]
    ranked = search.few_shot(train_pos, train_neg, whole_index=True, top_k=24)
    rest = [h for h in ranked.ranked]
    assert {h.exam.study_key for h in rest}.isdisjoint(train_pos + train_neg) and len(rest) == len(keys) - 8
    y = [finding in h.exam.labels for h in rest]
    assert roc_auc_score(y, [h.score for h in rest]) > 0.6
    one = search.few_shot(train_pos, train_neg, study_key=pos[-1], method="logistic")
    assert 0 <= one.probability <= 1 and one.method == "logistic"
    background = search.few_shot(train_pos, study_key=pos[-1])  # no negatives: the index stands in
    assert 0 <= background.probability <= 1


def test_cohort_logic_paging_and_export(search: SearchClient, keys: list[str]) -> None:
    a, b, c = "late gadolinium enhancement", "dilated left ventricle", "normal study"
    everyone = search.cohort_members(any_of=[a, b, c], threshold=1e-6)
    p = {m.exam.study_key: dict(m.phrase_scores) for m in everyone}
    assert len(p) == len(keys)
    t = 0.5
    want = {k for k, s in p.items() if s[a] >= t and (s[b] >= t or s[c] >= t) and not s[c] >= t}
    cohort = search.cohort_members(all_of=[a], any_of=[b, c], none_of=[c], threshold=t, page_size=3)
    got = [m.exam.study_key for m in cohort]
    assert set(got) == want and len(got) == len(set(got))
    assert [m.score for m in cohort] == sorted((m.score for m in cohort), reverse=True)
    first = search.cohort(any_of=[a, b, c], threshold=1e-6, page_size=5)
    assert first.total == len(keys) and len(first.members) == 5 and first.next_page_token
    name, csv = search.export_cohort(any_of=[a, b, c], threshold=1e-6)
    table = pd.read_csv(io.BytesIO(csv))
    assert name.endswith(".csv") and len(table) == len(keys) and list(table["rank"]) == list(range(1, len(keys) + 1))
    name, parquet = search.export_cohort("parquet", any_of=[a, b, c], threshold=1e-6)
    assert name.endswith(".parquet") and len(pd.read_parquet(io.BytesIO(parquet))) == len(keys)
    with pytest.raises(grpc.RpcError) as exc:
        search.cohort(all_of=[b], page_token=first.next_page_token)  # a token of another query
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT


# --- bad input ------------------------------------------------------------------------------------------------

def test_bad_requests(search: SearchClient, keys: list[str], upserts: list[search_pb2.ExamUpsert]) -> None:
    cases = [
        (lambda: search.search_text("   "), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (lambda: search.search_text("x" * 20_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
        (lambda: search.search_text("x", top_k=100_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "top_k"),
        (lambda: search.search_text("x", vendors=["acme"]), grpc.StatusCode.INVALID_ARGUMENT, "vendor"),
        (lambda: search.search_text("x", date_from="yesterday"), grpc.StatusCode.INVALID_ARGUMENT, "date"),
        (lambda: search.similar(study_key="0" * 32), grpc.StatusCode.NOT_FOUND, "no indexed study"),
        (lambda: search.similar(study_key="not-a-key"), grpc.StatusCode.INVALID_ARGUMENT, "study key"),
        (lambda: search.similar(embedding=np.ones(7)), grpc.StatusCode.INVALID_ARGUMENT, "expected 256"),
        (lambda: search.similar(path="/etc"), grpc.StatusCode.PERMISSION_DENIED, "outside"),
        (lambda: search.zero_shot(findings=["gills"], study_key=keys[0]), grpc.StatusCode.INVALID_ARGUMENT, "unknown"),
        (lambda: search.few_shot([], study_key=keys[0]), grpc.StatusCode.INVALID_ARGUMENT, "positive"),
        (lambda: search.few_shot([keys[0]], [keys[0]], study_key=keys[1]), grpc.StatusCode.INVALID_ARGUMENT, "both"),
        (lambda: search.few_shot(["f" * 32], study_key=keys[1]), grpc.StatusCode.NOT_FOUND, "no indexed"),
        (lambda: search.cohort(none_of=["normal"]), grpc.StatusCode.INVALID_ARGUMENT, "at least one phrase"),
        (lambda: search.cohort(all_of=["a"], threshold=1.5), grpc.StatusCode.INVALID_ARGUMENT, "threshold"),
        (lambda: search.cohort(all_of=["a"], page_token="garbage"), grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
        (lambda: search.get("0" * 32), grpc.StatusCode.NOT_FOUND, "no indexed"),
        (lambda: search.upsert([]), grpc.StatusCode.INVALID_ARGUMENT, "no exams"),
    ]
    wrong_version = search_pb2.ExamUpsert()
    wrong_version.CopyFrom(upserts[0])
    wrong_version.model_version = "other-model@000000000000"
    bad_dim = search_pb2.ExamUpsert()
    bad_dim.CopyFrom(upserts[0])
    bad_dim.image_embedding.values[:] = [1.0, 2.0]
    cases += [(lambda: search.upsert([upserts[1], wrong_version]), grpc.StatusCode.INVALID_ARGUMENT, "cannot join"),
              (lambda: search.upsert([bad_dim]), grpc.StatusCode.INVALID_ARGUMENT, "expected 256")]
    for call, code, words in cases:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert _code(exc) == code and words in exc.value.details(), (code, words, exc.value.details())
    assert search.stats().exams == len(upserts)  # nothing stored was lost, nothing half-written


def test_delete_removes_exam_and_report(search: SearchClient, keys: list[str],
                                        upserts: list[search_pb2.ExamUpsert]) -> None:
    assert search.delete([keys[-1]]) == 1
    stats = search.stats()
    assert stats.exams == stats.reports == len(keys) - 1
    with pytest.raises(grpc.RpcError) as exc:
        search.get(keys[-1])
    assert _code(exc) == grpc.StatusCode.NOT_FOUND
    assert search.upsert([upserts[-1]]).created == 1  # and back


# --- lifecycle ------------------------------------------------------------------------------------------------

def test_results_survive_a_restart(search: SearchClient, server: SearchServer, search_settings: Settings,
                                   measuring_encoder_server, keys: list[str]) -> None:  # noqa: ANN001
    before = [(h.exam.study_key, round(h.score, 5)) for h in search.search_text("dilated right ventricle", top_k=10)]
    server.stop()
    with SearchServer(search_settings, port=0, encoder_url=measuring_encoder_server.address) as again, \
            SearchClient(again.address, settings=search_settings) as client:
        after = [(h.exam.study_key, round(h.score, 5)) for h in client.search_text("dilated right ventricle", top_k=10)]
        assert after == before and client.stats().exams == len(keys)



def test_encoder_down_is_unavailable_unless_text_is_embedded_in_process(search_settings: Settings,
                                                                        tmp_path: Path) -> None:
    (dead,) = free_ports(1)
    local = search_settings.model_copy(update={"data_dir": tmp_path / "local"})
    with SearchServer(local, port=0, encoder_url=f"127.0.0.1:{dead}") as srv, \
            SearchClient(srv.address, settings=local) as client:
        assert client.search_text("dilated left ventricle") == []  # embedded in process: no encoder needed
        cache = client.stats().query_cache
        assert (cache.runtime, cache.misses) == (local.text_runtime, 1)
    remote = search_settings.model_copy(update={"data_dir": tmp_path / "remote", "search_embeds_text": False})
    with SearchServer(remote, port=0, encoder_url=f"127.0.0.1:{dead}") as srv, \
            SearchClient(srv.address, settings=remote) as client:
        with pytest.raises(grpc.RpcError) as exc:
            client.search_text("dilated left ventricle")
        assert _code(exc) == grpc.StatusCode.UNAVAILABLE and "encoder" in exc.value.details()
        assert client.stats().exams == 0 and not client.stats().HasField("query_cache")  # still answers
