"""GeneratorService end to end: the real encoder (Triton), the real search service on Qdrant Edge with the 24
synthetic studies indexed, and the shipped CMR-TARGET checkpoint drafting in the generator process.

The shared settings do not measure (CMR_MEASURE=false: segmenting costs seconds per study), so these drafts are
grounded in no measurements: every LVEF / volume / mass number is removed and the draft says so last. One
generator with measuring on checks that a measured study's draft states exactly the segmenter's numbers in
every mode. What grounding did is read from the stream's own fields (the measurements and their source with the
first sentence, each sentence's kind and number changes, the numbers of dropped sentences with the last)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from cmr.config import Settings
from cmr.dicom import load_study
from cmr.generator import Decoding, load_generator
from cmr.generator.checkpoint import load_exam_encoder
from cmr.generator.grounding import MISSING_PREFIX, find_statements, format_value, ground_text
from cmr.labels import FINDINGS
from cmr.model.runtime import checkpoint_path
from cmr.reports import label_report, split_sentences
from cmr.rpc.keys import study_key
from cmr.v1 import generator_pb2, search_pb2
from generator_svc.client import GeneratorClient, generate_request
from generator_svc.server import GeneratorServer
from generator_svc.target import generator_path
from search_svc.client import SearchClient
from search_svc.server import SearchServer

pytestmark = pytest.mark.skipif(not generator_path(Settings()).is_file(),
                                reason="no shipped CMR-TARGET checkpoint (cmr/model/weights/cmr-target-small.pt)")


@pytest.fixture(scope="module")
def settings(encoder_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return encoder_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("generator_data"),
                                               "study_key_secret": "generator-test-secret", "draft_neighbours": 5})


@pytest.fixture(scope="module")
def search_server(settings: Settings, encoder_server) -> Iterator[SearchServer]:  # noqa: ANN001
    with SearchServer(settings, port=0, encoder_url=encoder_server.address) as srv:
        yield srv


@pytest.fixture(scope="module")
def keys(search_server: SearchServer, settings: Settings, upserts: list[search_pb2.ExamUpsert]) -> list[str]:
    with SearchClient(search_server.address, settings=settings) as client:
        client.wait_ready(30)
        return list(client.upsert(upserts).study_keys)


@pytest.fixture(scope="module")
def server(settings: Settings, search_server: SearchServer, keys: list[str]) -> Iterator[GeneratorServer]:
    with GeneratorServer(settings, port=0, search_url=search_server.address) as srv:
        yield srv


@pytest.fixture(scope="module")
def gen(server: GeneratorServer, settings: Settings) -> Iterator[GeneratorClient]:
    with GeneratorClient(server.address, settings=settings) as client:
        client.wait_ready(30)
        yield client


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[no-any-return]


def _check_stream(sentences: list) -> None:  # noqa: ANN001
    assert sentences, "no sentence drafted"
    assert [s.index for s in sentences] == list(range(1, len(sentences) + 1))
    assert [s.last for s in sentences] == [False] * (len(sentences) - 1) + [True]
    assert all(s.text.strip() and not s.text[0].isdigit() for s in sentences)  # unnumbered sentences


def _unmeasured(sentences: list[str]) -> list[str]:
    """A draft grounded in no measurements, without its last sentence (which says so)."""
    return ground_text(sentences, None).texts[:-1]


def _says_unmeasured(drafted: list) -> None:  # noqa: ANN001
    assert drafted[-1].text.startswith(MISSING_PREFIX) and "CMR_MEASURE=false" in drafted[-1].text
    assert drafted[-1].kind == "note" and all(s.kind == "draft" for s in drafted[:-1])
    assert not [st for s in drafted for st in find_statements(s.text)]  # no LVEF, volume or mass stated
    for c in (c for s in drafted for c in s.changes):  # every number the draft had is removed, saying why
        assert c["action"] == "removed" and c["before"] and "CMR_MEASURE=false" in c["reason"], c


def _unmeasured_grounding(grounding: dict | None) -> None:
    assert grounding is not None and grounding["source"] == "none" and "CMR_MEASURE=false" in grounding["reason"]
    assert grounding["measurements"] is None


def _number(text: str) -> float:
    return float(re.search(r"\d+(?:\.\d+)?", text).group())  # type: ignore[union-attr]


def test_retrieval_is_the_nearest_other_studys_report(gen: GeneratorClient, keys: list[str], settings: Settings,
                                                      search_server: SearchServer) -> None:
    with SearchClient(search_server.address, settings=settings) as search:
        for key in keys[:3]:
            nearest = search.similar(top_k=1, study_key=key).nearest_reports[0]
            drafted, grounding = gen.draft_grounded("retrieval", study_key=key)
            _check_stream(drafted)
            _unmeasured_grounding(grounding)
            assert nearest.study_key != key  # never the study's own report
            assert {s.sources for s in drafted[:-1]} == {(nearest.study_key,)}
            # the nearest report, numbering dropped, grounded: its (another patient's) numbers removed
            expected = _unmeasured(split_sentences(nearest.impression))
            assert [s.text for s in drafted[:-1]] == expected
            _says_unmeasured(drafted)
            # each sentence carries what the labeller reads in it
            stated = label_report(" ".join(expected))
            assert {f for s in drafted for f in s.findings} == {f for f in FINDINGS if stated.state(f) == "present"}


def test_consensus_keeps_what_neighbours_agree_on(gen: GeneratorClient, keys: list[str], settings: Settings,
                                                  search_server: SearchServer) -> None:
    with SearchClient(search_server.address, settings=settings) as search:
        near = {r.study_key for r in search.similar(top_k=5, study_key=keys[0]).nearest_reports}
    drafted = gen.draft("consensus", study_key=keys[0], neighbours=5)
    _check_stream(drafted)
    assert all(set(s.sources) <= near for s in drafted)
    _says_unmeasured(drafted)


def test_target_drafts_as_the_model_does_in_process(gen: GeneratorClient, keys: list[str], studies: list[Path],
                                                    settings: Settings, upserts: list[search_pb2.ExamUpsert]) -> None:
    """The service's CMR-TARGET draft of an indexed study (found on disk from its key alone) is the in-process
    model's greedy draft of the same study, sentence for sentence (grounded: no measurements here)."""
    model = load_generator(generator_path(settings), checkpoint_path(settings))
    encoder = load_exam_encoder(checkpoint_path(settings))
    for study in studies[:2]:
        exam = load_study(study).to_exam(encoder.spec)
        px = torch.from_numpy(exam.pixels_uint8().astype("float32") / 255.0)[None]
        with torch.no_grad():
            tokens, pad = encoder.forward_tokens(px, torch.from_numpy(exam.mask)[None])
        expected = _unmeasured(list(model.generate(tokens, pad, Decoding(numbered=False))))
        key = study_key(exam.study.study_instance_uid, settings.study_key_secret)
        assert key in keys
        by_key, grounding = gen.draft_grounded("target", study_key=key)
        _check_stream(by_key)
        assert [s.text for s in by_key[:-1]] == expected
        _says_unmeasured(by_key)
        _unmeasured_grounding(grounding)
        assert by_key[0].model_version.startswith("cmr-target-small@")
        by_path = gen.draft("target", path=str(study))
        assert [s.text for s in by_path[:-1]] == expected


def test_target_decoding_options(gen: GeneratorClient, studies: list[Path]) -> None:
    path = str(studies[3])
    one = gen.draft("target", path=path, max_sentences=1)
    assert len(one) == 1 and one[0].last
    beam = gen.draft("target", path=path, strategy="beam", beam_width=3)
    _check_stream(beam)
    a = gen.draft("target", path=path, strategy="sample", temperature=0.9, seed=11)
    b = gen.draft("target", path=path, strategy="sample", temperature=0.9, seed=11)
    assert [s.text for s in a] == [s.text for s in b]  # the same seed, the same draft


def test_bad_requests_get_clear_codes(gen: GeneratorClient, keys: list[str], synth_dir: Path) -> None:
    not_dicom = synth_dir / "generator_test_not_dicom"  # under a root the server may read
    not_dicom.mkdir(exist_ok=True)
    (not_dicom / "a.dcm").write_bytes(b"this is not a DICOM file" * 10)
    stub = gen.stub
    cases = [
        (generator_pb2.GenerateReportRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no study"),
        (generate_request("target", embedding=np.ones(256, "float32")),
         grpc.StatusCode.INVALID_ARGUMENT, "images"),
        (generate_request("target", study_key="0" * 32), grpc.StatusCode.NOT_FOUND, "CMR_STUDY_ROOTS"),
        (generate_request("retrieval", study_key="XYZ"), grpc.StatusCode.INVALID_ARGUMENT, "study_key"),
        (generate_request("target", study_key=keys[0], beam_width=9, strategy="beam"),
         grpc.StatusCode.INVALID_ARGUMENT, "beam_width"),
        (generate_request("target", study_key=keys[0], strategy="sample", temperature=3.0),
         grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        (generate_request("target", study_key=keys[0], max_sentences=13), grpc.StatusCode.INVALID_ARGUMENT,
         "max_sentences"),
        (generate_request("consensus", study_key=keys[0], neighbours=51), grpc.StatusCode.INVALID_ARGUMENT,
         "neighbours"),
        (generate_request("target", path="/etc"), grpc.StatusCode.PERMISSION_DENIED, "CMR_STUDY_ROOTS"),
        (generate_request("target", path=str(not_dicom)), grpc.StatusCode.INVALID_ARGUMENT, ""),
        (generator_pb2.GenerateReportRequest(study=generate_request(study_key=keys[0]).study, mode=9),
         grpc.StatusCode.INVALID_ARGUMENT, "mode"),
    ]
    for request, code, words in cases:
        with pytest.raises(grpc.RpcError) as exc:
            list(stub.GenerateReport(request, timeout=60))
        assert _code(exc) == code, (request, exc.value.details())
        assert words in exc.value.details()
    assert gen.draft("retrieval", study_key=keys[0])  # still serving


def test_cli_draft_streams_json(server: GeneratorServer, keys: list[str], settings: Settings) -> None:
    out = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "draft", keys[1], "--mode", "retrieval", "--json",
                          "--url", server.address], capture_output=True, text=True, timeout=120, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows and rows[-1]["last"] and all(len(r["sources"]) == 1 for r in rows[:-1])
    assert rows[-1]["text"].startswith(MISSING_PREFIX) and rows[-1]["sources"] == []  # grounding's own sentence
    assert rows[-1]["kind"] == "note" and all(r["kind"] == "draft" for r in rows[:-1])
    bad = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "draft", "0" * 32, "--mode", "target",
                          "--url", server.address], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "NOT_FOUND" in bad.stderr


def test_a_measured_study_states_the_segmenters_numbers_in_every_mode(settings: Settings, search_server: SearchServer,
                                                                       keys: list[str], studies: list[Path]) -> None:
    """With measuring on, a study reference is measured in the generator's study workers (the shipped
    segmenter) and every mode's draft states exactly those numbers: the same as measure_study in process."""
    from cmr.quant.measure import measure_study
    from cmr.quant.segmenter import load_segmenter

    study = studies[5]
    m = measure_study(load_study(study), load_segmenter()).measurements
    measuring = settings.model_copy(update={"measure": True, "request_timeout_s": 180})
    with GeneratorServer(measuring, port=0, search_url=search_server.address) as srv, \
            GeneratorClient(srv.address, settings=measuring, timeout_s=180) as client:
        client.wait_ready(60)
        for mode in ("retrieval", "consensus", "target"):
            stream = client.stream(mode, path=str(study))
            drafted = list(stream)
            grounding, streamed = stream.grounding, stream.measurements
            _check_stream(drafted)
            assert grounding is not None and grounding["source"] == "measured", grounding
            assert grounding["quality"] == m.quality and grounding["segmenter"] == m.model
            assert grounding["quality_reasons"] == list(m.quality_reasons) and not grounding["reason"]
            # the first sentence carries the measurements: those measure_study gives in process
            assert streamed is not None and streamed.quality == m.quality and streamed.unavailable == m.unavailable
            for f, v in m.values().items():
                got = getattr(streamed, f)
                assert (got is None) == (v is None) and (v is None or got == pytest.approx(v, abs=0.011)), (f, got, v)
            statements = [st for s in drafted for st in find_statements(s.text)]
            if m.quality in ("ok", "check"):
                assert any(st.measure == "lvef_pct" for st in statements), drafted
            for st in statements:  # every stated number is the measured one: in process, and as streamed
                v = getattr(m, st.measure)
                assert v is not None and st.value == float(format_value(st.measure, v)), (mode, st)
                assert st.value == float(format_value(st.measure, getattr(streamed, st.measure))), (mode, st)
            # each sentence's changes say what it states: every number put in is the measured one
            for s in drafted:
                for c in s.changes:
                    if c["action"] == "removed":
                        assert c["before"] and c["reason"], c
                    else:
                        assert c["after"] in s.text, (c, s.text)
                        assert _number(c["after"]) == float(format_value(c["measure"], getattr(m, c["measure"])))
            if m.quality in ("ok", "check"):
                assert {c["measure"] for s in drafted for c in s.changes if c["action"] != "removed"} >= {"lvef_pct"}
            for c in grounding["dropped"]:  # sentences of nothing but numbers that cannot be stated
                assert c["action"] == "removed" and c["before"] and c["reason"], c
            # the study's measurements given with the request: the same draft, nothing measured
            given, g2 = client.draft_grounded(mode, path=str(study), measurements=m)
            assert g2 is not None and g2["source"] == "request"
            assert [s.text for s in given] == [s.text for s in drafted]
            assert [s.changes for s in given] == [s.changes for s in drafted]
            assert [s.kind for s in given] == [s.kind for s in drafted] and g2["dropped"] == grounding["dropped"]


def test_search_down_is_unavailable_for_retrieval_only(settings: Settings, studies: list[Path]) -> None:
    from cmr.rpc.ports import free_ports

    (dead,) = free_ports(1)
    with GeneratorServer(settings, port=0, search_url=f"127.0.0.1:{dead}") as srv, \
            GeneratorClient(srv.address, settings=settings, timeout_s=10) as client:
        with pytest.raises(grpc.RpcError) as exc:
            client.draft("retrieval", path=str(studies[0]))
        assert _code(exc) == grpc.StatusCode.UNAVAILABLE
        assert client.draft("target", path=str(studies[0]))  # CMR-TARGET does not need the search service
