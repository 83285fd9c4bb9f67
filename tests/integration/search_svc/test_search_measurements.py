"""Measurements through the real SearchService (Qdrant Edge, the session's Triton encoder): exams upserted
with measurements read back with them (Get, search hits, digital twins, cohort members, the export), and
`lvef_pct < 35` narrows searches and cohorts to exactly the exams measured below 35 % - never one that was
not measured. Bad ranges are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pandas as pd
import pytest

from cmr.config import Settings
from cmr.quant.volumes import MEASUREMENT_FIELDS
from cmr.v1 import common_pb2, search_pb2
from measure_cases import EXACT_35, SEGMENTER, lvef_below, lvef_of, measured_upserts, measurement_of
from search_svc.client import SearchClient
from search_svc.server import SearchServer

PHRASES = ["late gadolinium enhancement", "dilated left ventricle", "normal study"]


@pytest.fixture(scope="module")
def exams(upserts: list[search_pb2.ExamUpsert]) -> list[search_pb2.ExamUpsert]:
    return measured_upserts(upserts)


@pytest.fixture(scope="module")
def client(encoder_settings: Settings, encoder_server, exams: list[search_pb2.ExamUpsert],  # noqa: ANN001
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SearchClient, list[str]]]:
    settings = encoder_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("measure_search"),
                                                   "study_key_secret": "test-secret"})
    with SearchServer(settings, port=0, encoder_url=encoder_server.address) as srv, \
            SearchClient(srv.address, settings=settings) as c:
        c.wait_ready(30)
        keys = list(c.upsert(exams).study_keys)
        yield c, keys


def _lvef(exam: search_pb2.ExamRecord) -> float | None:
    return exam.measurements.lvef_pct if exam.measurements.HasField("lvef_pct") else None


def test_get_returns_the_measurements_as_upserted(client: tuple[SearchClient, list[str]],
                                                 exams: list[search_pb2.ExamUpsert]) -> None:
    search, keys = client
    for i, key in enumerate(keys):
        got = search.get(key).exam
        sent = measurement_of(i)
        if sent is None:
            assert not got.HasField("measurements"), i  # never measured: absent, not zeros
            continue
        assert got.measurements == sent, i  # every value, the quality, its reasons, what is unavailable, why
        assert got.measurements.model == SEGMENTER
        for f in MEASUREMENT_FIELDS:  # each field is either measured or explained
            assert got.measurements.HasField(f) or f in got.measurements.unavailable, (i, f)


def test_text_search_with_lvef_below_35(client: tuple[SearchClient, list[str]],
                                        exams: list[search_pb2.ExamUpsert]) -> None:
    search, keys = client
    want = {keys[i] for i in lvef_below(exams, 35.0)}
    assert 3 <= len(want) < len(keys) // 2
    hits = search.search_text("dilated left ventricle", top_k=len(keys), where=["lvef_pct<35"])
    assert {h.exam.study_key for h in hits} == want
    assert all(_lvef(h.exam) is not None and _lvef(h.exam) < 35 for h in hits)
    assert keys[EXACT_35] not in want and lvef_of(EXACT_35) == 35.0
    inclusive = search.search_text("dilated left ventricle", top_k=len(keys), where=["lvef_pct<=35"])
    assert {h.exam.study_key for h in inclusive} == want | {keys[EXACT_35]}
    # ranges combine with each other and with the other filters
    both = search.search_text("normal study", top_k=len(keys), where=["lvef_pct=20..40", "bsa_m2>=1.5"])
    assert {h.exam.study_key for h in both} == {keys[i] for i in range(len(keys)) if (m := measurement_of(i))
                                                 and m.HasField("bsa_m2") and 20 <= m.lvef_pct <= 40}
    vendor = hits[0].exam.vendor
    narrowed = search.search_text("normal study", top_k=len(keys), vendors=[vendor], where=["lvef_pct<35"])
    assert {h.exam.study_key for h in narrowed} == {h.exam.study_key for h in hits if h.exam.vendor == vendor}


def test_digital_twins_honour_the_range(client: tuple[SearchClient, list[str]],
                                        exams: list[search_pb2.ExamUpsert]) -> None:
    search, keys = client
    r = search.similar(study_key=keys[-1], top_k=len(keys), filters={"where": ["lvef_pct<35"]})
    assert {h.exam.study_key for h in r.similar_exams} == {keys[i] for i in lvef_below(exams, 35.0)} - {keys[-1]}
    assert {h.study_key for h in r.nearest_reports} <= {keys[i] for i in lvef_below(exams, 35.0)}


def test_cohort_and_export_with_lvef_below_35(client: tuple[SearchClient, list[str]],
                                              exams: list[search_pb2.ExamUpsert]) -> None:
    search, keys = client
    want = {keys[i] for i in lvef_below(exams, 35.0)}
    everyone = search.cohort_members(any_of=PHRASES, threshold=1e-6)
    assert len(everyone) == len(keys)  # without the range: every exam, measured or not
    members = search.cohort_members(any_of=PHRASES, threshold=1e-6, where=["lvef_pct<35"], page_size=2)
    assert {m.exam.study_key for m in members} == want and len(members) == len(want)
    assert all(_lvef(m.exam) is not None and _lvef(m.exam) < 35 for m in members)
    name, data = search.export_cohort(any_of=PHRASES, threshold=1e-6, where=["lvef_pct<35"])
    table = pd.read_csv(io.BytesIO(data))
    assert name.endswith(".csv") and set(table["study_key"]) == want
    assert set(MEASUREMENT_FIELDS) <= set(table.columns) and (table["lvef_pct"] < 35).all()
    by_key = {keys[i]: i for i in range(len(keys))}
    assert all(row.lvef_pct == lvef_of(by_key[row.study_key]) for row in table.itertuples())
    _, parquet = search.export_cohort("parquet", any_of=PHRASES, threshold=1e-6)
    full = pd.read_parquet(io.BytesIO(parquet))
    unmeasured = {keys[i] for i in range(len(keys)) if measurement_of(i) is None}
    rows = full.set_index("study_key")
    assert rows.loc[sorted(unmeasured), "lvef_pct"].isna().all()
    assert (rows.loc[sorted(unmeasured), "measurement_quality"].fillna("") == "").all()


def _range(**kw: object) -> search_pb2.SearchFilter:
    return search_pb2.SearchFilter(measurements=[common_pb2.MeasurementRange(**kw)])  # type: ignore[arg-type]


def test_bad_ranges_are_invalid_argument(client: tuple[SearchClient, list[str]],
                                         exams: list[search_pb2.ExamUpsert]) -> None:
    search, keys = client
    cases = [
        (_range(measure="lvef", max=35), ["filter.measurements[0]", "unknown measurement 'lvef'", "lvef_pct",
                                          "rvesvi_ml_m2"]),
        (_range(measure="lvef_pct", min=50, max=35), ["lvef_pct", "min 50 is greater than max 35"]),
    ]
    for flt, words in cases:
        for call in (lambda f=flt: search.stub.SearchByText(search_pb2.SearchByTextRequest(query="x", filter=f),
                                                            timeout=30),
                     lambda f=flt: search.stub.BuildCohort(search_pb2.BuildCohortRequest(all_of=["x"], filter=f),
                                                           timeout=30)):
            with pytest.raises(grpc.RpcError) as exc:
                call()
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert all(w in exc.value.details() for w in words), exc.value.details()
    bad = search_pb2.ExamUpsert()
    bad.CopyFrom(exams[0])
    bad.measurements.unavailable["ejection"] = "?"
    with pytest.raises(grpc.RpcError) as exc:
        search.upsert([exams[1], bad])
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "exam 1: measurements" in exc.value.details()
    assert search.get(keys[0]).exam.measurements == measurement_of(0)  # nothing half-written


def test_cli_where_filters_and_shows_the_lvef(client: tuple[SearchClient, list[str]],
                                              exams: list[search_pb2.ExamUpsert], tmp_path) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from orchestration.cli.main import app

    search, keys = client
    want = {keys[i] for i in lvef_below(exams, 35.0)}
    runner = CliRunner()
    r = runner.invoke(app, ["search", "dilated left ventricle", "--top", "24", "--where", "lvef_pct<35", "--json",
                            "--url", search.url])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {h["study_key"] for h in rows} == want and all(h["measurements"]["lvef_pct"] < 35 for h in rows)
    r = runner.invoke(app, ["search", "dilated left ventricle", "--top", "24", "--where", "lvef_pct<35",
                            "--where", "lvedv_ml>=120", "--url", search.url])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 0 and lines and all("LVEF" in line for line in lines), r.output
    out = tmp_path / "low_ef.csv"
    r = runner.invoke(app, ["cohort", "--any-of", PHRASES[0], "--any-of", PHRASES[1], "--threshold", "0.000001",
                            "--where", "lvef_pct<35", "--export", str(out), "--url", search.url])
    assert r.exit_code == 0 and f"{len(want)} exams in the cohort" in r.output, r.output
    assert set(pd.read_csv(out)["study_key"]) == want
    r = runner.invoke(app, ["cohort", "--all-of", "x", "--where", "ef<35", "--url", search.url])
    assert r.exit_code == 2 and "unknown measurement 'ef'" in r.output and len(r.output.strip().splitlines()) == 1
