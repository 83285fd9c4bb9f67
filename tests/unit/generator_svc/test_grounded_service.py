"""GeneratorService grounds every draft in the study's measurements: over real gRPC (the servicer on a local
server), with the search service, CMR-TARGET and the study workers replaced by fakes, a draft states exactly
the measured numbers in every mode, wherever the measurements come from (the request, the index, measuring
the study here), states none when there are none, and never fails because measuring did. What grounding did
travels in the sentences' own fields (the measurements and their source with the first, each sentence's kind,
number changes and review notes, the numbers of dropped sentences with the last), which the client reads."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from cmr.generator.config import DecoderConfig
from cmr.generator.grounding import MISSING_PREFIX, SUMMARY_PREFIX, find_statements, format_value
from cmr.quant.proto import to_proto
from cmr.quant.volumes import Measurements
from cmr.rpc.errors import DeadlineExceeded
from cmr.rpc.measuring import MeasureOutcome, failed_measurement
from cmr.rpc.study_loading import LoadedStudy
from cmr.v1 import generator_pb2, generator_pb2_grpc, search_pb2
from generator_svc.client import GeneratorClient, generate_request
from generator_svc.service import GeneratorServicer
from generator_svc.target import TargetSentence

KEY = "a" * 32        # indexed, with measurements in the index
OLD_KEY = "b" * 32    # indexed before measuring existed: found on disk, measured here
GONE_KEY = "c" * 32   # indexed without measurements, images not on this server
NEIGHBOUR = "d" * 32

# Another patient's report, and what CMR-TARGET writes: numbers that must never reach the draft.
NEIGHBOUR_REPORT = ("1. Dilated LV (LVEDVi 130 mL/m2) with severely impaired systolic function (LVEF 23%).\n"
                    "2. Normal RV size and function (RVEF 55%).\n3. Subendocardial LGE with 25-50% transmurality.")
TARGET_REPORT = ["Normal biventricular size and systolic function (LVEF 63%, RVEF 61%).",
                 "LVEDV 150 ml (indexed 80 ml/m2), LV mass 120 g.", "No late gadolinium enhancement."]

INDEXED = Measurements(lvef_pct=31.4, lvedv_ml=245.2, lvesv_ml=168.2, lvsv_ml=77.0, lv_mass_g=150.4, rvef_pct=48.2,
                       rvedv_ml=170.0, rvesv_ml=88.1, lvedvi_ml_m2=118.3, lvesvi_ml_m2=81.2, lv_mass_index_g_m2=72.6,
                       rvedvi_ml_m2=82.0, rvesvi_ml_m2=42.5, bsa_m2=2.07, quality="ok", model="seg@index")
MEASURED = Measurements(lvef_pct=57.6, lvedv_ml=140.4, lvesv_ml=59.5, lvsv_ml=80.9, lv_mass_g=101.0, rvef_pct=52.0,
                        rvedv_ml=150.2, rvesv_ml=72.1, quality="check", quality_reasons=["low segmentation confidence"],
                        unavailable={k: "the study has no patient height and weight" for k in
                                     ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2",
                                      "rvesvi_ml_m2", "bsa_m2")}, model="seg@here")
GIVEN = Measurements(lvef_pct=44.0, lvedv_ml=199.0, lvesv_ml=111.4, lv_mass_g=131.0, rvef_pct=41.0, rvedv_ml=160.0,
                     quality="ok", model="seg@caller",
                     unavailable={"lvedvi_ml_m2": "no BSA", "rvedvi_ml_m2": "no BSA", "lv_mass_index_g_m2": "no BSA"})


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class FakeSearchStub:
    def __init__(self) -> None:
        self.gets: list[str] = []

    def SearchByStudy(self, request: search_pb2.SearchByStudyRequest, timeout: float) -> search_pb2.SearchByStudyResponse:
        return search_pb2.SearchByStudyResponse(nearest_reports=[
            search_pb2.ReportHit(study_key=NEIGHBOUR, impression=NEIGHBOUR_REPORT, score=0.9)] * request.top_k)

    def Get(self, request: search_pb2.GetRequest, timeout: float) -> search_pb2.GetResponse:
        self.gets.append(request.study_key)
        if request.study_key == KEY:
            return search_pb2.GetResponse(exam=search_pb2.ExamRecord(study_key=KEY, measurements=to_proto(INDEXED)))
        if request.study_key in (OLD_KEY, GONE_KEY):
            return search_pb2.GetResponse(exam=search_pb2.ExamRecord(study_key=request.study_key))
        raise _RpcError(grpc.StatusCode.NOT_FOUND)


@dataclass
class FakeSearch:
    stub: FakeSearchStub
    timeout_s: float = 5.0


class FakeDrafter:
    name, version = "cmr-target-small", "cmr-target-small@test"
    drafted: list[str] = []  # every sentence CMR-TARGET was asked for, across drafts
    measured: list[Any] = []  # the numbers each draft's image encoder was given (its measurement tokens)

    class generator:  # noqa: N801 - stands in for TargetGenerator
        class config:  # noqa: N801
            model = DecoderConfig()

    def draft(self, exam: Any, decoding: Any, measured: Any = None) -> Iterator[TargetSentence]:
        FakeDrafter.measured.append(measured)
        for s in TARGET_REPORT:
            FakeDrafter.drafted.append(s)
            yield TargetSentence(s, ())


class FakeLoader:
    """Studies under `root`; `outcome` what measuring them gives (None: this pool does not measure)."""

    def __init__(self, outcome: MeasureOutcome | None | Exception) -> None:
        self.outcome = outcome
        self.loaded: list[str] = []

    @property
    def measuring(self) -> bool:
        return self.outcome is not None

    def load(self, source: Path, timeout_s: float | None = None) -> str:
        self.loaded.append(f"load {source.name}")
        return "exam"

    def load_measured(self, source: Path, timeout_s: float | None = None) -> LoadedStudy:
        self.loaded.append(f"measure {source.name}")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return LoadedStudy("exam", self.outcome)  # type: ignore[arg-type]


class FakeLocator:
    def __init__(self, root: Path) -> None:
        self.root = root

    def locate(self, key: str) -> Path | None:
        return {KEY: self.root / "indexed_study", OLD_KEY: self.root / "old_study"}.get(key)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for name in ("indexed_study", "old_study", "new_study"):
        (tmp_path / name).mkdir()
    return tmp_path


def _serve(root: Path, loader: FakeLoader) -> tuple[grpc.Server, str, FakeSearchStub]:
    stub = FakeSearchStub()
    servicer = GeneratorServicer(FakeSearch(stub), FakeDrafter(), loader, FakeLocator(root), [root],  # type: ignore[arg-type]
                                 neighbours=3, load_timeout_s=10)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    generator_pb2_grpc.add_GeneratorServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}", stub


@pytest.fixture()
def service(root: Path) -> Iterator[tuple[GeneratorClient, FakeLoader, FakeSearchStub]]:
    loader = FakeLoader(MeasureOutcome(MEASURED))
    server, address, stub = _serve(root, loader)
    from cmr.config import Settings

    with GeneratorClient(address, settings=Settings(auth_mode="off"), timeout_s=20) as client:
        yield client, loader, stub
    server.stop(0)


def _states_exactly(text: str, m: Measurements) -> None:
    """Every measured-quantity number in the draft is the measured one, and the LVEF is stated."""
    statements = [s for sentence in text.split(". ") for s in find_statements(sentence)]
    assert any(s.measure == "lvef_pct" for s in statements), text
    for s in statements:
        v = getattr(m, s.measure)
        assert v is not None and s.value == float(format_value(s.measure, v)), (s, text)
    for wrong in ("23%", "55%", "63%", "61%", "130 mL", "80 ml", "150 ml", "120 g"):
        assert wrong not in text, (wrong, text)


def _sentences(client: GeneratorClient, mode: str, **kwargs: Any) -> list[generator_pb2.ReportSentence]:
    """The raw stream, checked for where the grounding fields belong: the measurements, their source and note
    only on the first sentence, the dropped numbers only on the last, a kind on every one, and every number a
    sentence's changes put in stated in its text, every one they took out gone from it."""
    out = list(client.stub.GenerateReport(generate_request(mode, **kwargs), timeout=20))  # type: ignore[arg-type]
    assert out and out[0].measurements_source in ("request", "index", "measured", "none")
    assert (out[0].measurements_source == "none") == bool(out[0].measurements_note)
    for s in out[1:]:
        assert not s.measurements_source and not s.measurements_note and not s.HasField("measurements")
    for s in out[:-1]:
        assert not s.dropped and not s.last
    assert out[-1].last
    for s in out:
        assert s.kind in ("draft", "measurements", "note")
        for c in s.grounding:
            assert c.action in ("replaced", "removed", "added") and c.measure, c
            if c.action == "removed":
                assert c.before and not c.after and c.reason, c
            else:
                assert c.after in s.text, (c, s.text)
        for c in s.dropped:
            assert c.action == "removed" and c.before and c.reason, c
    return out


MODES = ("retrieval", "consensus", "target")


@pytest.mark.parametrize("mode", MODES)
def test_indexed_measurements_are_stated_in_every_mode(service, mode: str) -> None:  # noqa: ANN001
    client, loader, stub = service
    sentences, grounding = client.draft_grounded(mode, study_key=KEY, neighbours=3)
    text = " ".join(s.text for s in sentences)
    _states_exactly(text, INDEXED)
    assert "25-50% transmurality" in text or mode == "target"  # other numbers are left as written
    assert grounding is not None and grounding["source"] == "index" and grounding["segmenter"] == "seg@index"
    assert grounding["quality"] == "ok" and grounding["measurements"]["lvef_pct"] == 31.4
    if mode == "target":  # the numbers the draft states are the ones its encoder read
        assert FakeDrafter.measured[-1]["lvef_pct"] == 31.4
    assert stub.gets == [KEY]
    assert not any(x.startswith("measure") for x in loader.loaded)  # nothing measured again
    changes = [c for s in grounding["sentences"] for c in s["changes"]]
    assert {c["action"] for c in changes} <= {"replaced", "added"} and changes
    assert {c["after"] for c in changes if c["measure"] == "lvef_pct"} == {"31%"}
    assert [s.index for s in sentences] == list(range(1, len(sentences) + 1)) and sentences[-1].last
    # the client's report is the stream's fields, sentence for sentence
    assert [(s["index"], s["text"]) for s in grounding["sentences"]] == [(s.index, s.text) for s in sentences]
    assert [s["changes"] for s in grounding["sentences"]] == [list(s.changes) for s in sentences]
    raw = _sentences(client, mode, study_key=KEY, neighbours=3)
    assert [s.text for s in raw] == [s.text for s in sentences]
    assert raw[0].measurements == to_proto(INDEXED) and raw[0].measurements_source == "index"
    assert not raw[-1].dropped  # every measure of the draft is measured: no sentence lost its only number
    if mode != "target":  # the neighbour's first sentence: its numbers replaced, its severity word rewritten
        assert [(c.measure, c.action, c.before, c.after) for c in raw[0].grounding] == [
            ("lvedvi_ml_m2", "replaced", "130 mL/m2", "118 mL/m2"), ("lvef_pct", "replaced", "23%", "31%")]
        assert "moderately impaired" in raw[0].text and raw[0].kind == "draft" and not raw[0].review


@pytest.mark.parametrize("mode", MODES)
def test_measurements_in_the_request_win(service, mode: str) -> None:  # noqa: ANN001
    client, loader, stub = service
    sentences, grounding = client.draft_grounded(mode, study_key=KEY, measurements=GIVEN)
    _states_exactly(" ".join(s.text for s in sentences), GIVEN)
    assert grounding["source"] == "request" and grounding["segmenter"] == "seg@caller" and not stub.gets
    raw = _sentences(client, mode, study_key=KEY, measurements=GIVEN)
    assert raw[0].measurements == to_proto(GIVEN) and raw[0].measurements_source == "request"
    # the indexed volume the draft stated has no measurement here (no BSA): removed, with the reason
    removed = [c for s in raw for c in s.grounding if c.action == "removed"]
    assert {(c.measure, c.reason) for c in removed} == {("lvedvi_ml_m2", "no BSA")}, removed


@pytest.mark.parametrize("mode", MODES)
def test_a_study_reference_is_measured_here(service, root: Path, mode: str) -> None:  # noqa: ANN001
    client, loader, _ = service
    sentences, grounding = client.draft_grounded(mode, path=str(root / "new_study"))
    text = " ".join(s.text for s in sentences)
    _states_exactly(text, MEASURED)
    assert grounding["source"] == "measured" and grounding["quality"] == "check"
    assert grounding["quality_reasons"] == ["low segmentation confidence"] and grounding["segmenter"] == "seg@here"
    assert loader.loaded == ["measure new_study"]  # read once: CMR-TARGET drafts from the same load
    # quality "check": the reader is told to review, and unavailable indexed numbers are gone
    assert "low segmentation confidence" in text and "mL/m2" not in text and "ml/m2" not in text
    assert sentences[-1].kind == "note" and grounding["sentences"][-1]["kind"] == "note"
    removed = [c for s in grounding["sentences"] for c in s["changes"] if c["action"] == "removed"]
    assert removed and all(c["reason"] == "the study has no patient height and weight" for c in removed)
    raw = _sentences(client, mode, path=str(root / "new_study"))
    assert raw[0].measurements == to_proto(MEASURED) and raw[0].measurements_source == "measured"


@pytest.mark.parametrize("mode", MODES)
def test_an_old_index_entry_is_measured_from_its_images(service, mode: str) -> None:  # noqa: ANN001
    client, loader, stub = service
    sentences, grounding = client.draft_grounded(mode, study_key=OLD_KEY)
    _states_exactly(" ".join(s.text for s in sentences), MEASURED)
    assert grounding["source"] == "measured" and stub.gets == [OLD_KEY]
    assert grounding["measurements"] == {k: v for k, v in MEASURED.values().items()}


@pytest.mark.parametrize("mode", ("retrieval", "consensus"))
def test_without_measurements_no_number_is_stated_and_the_draft_says_so(service, mode: str) -> None:  # noqa: ANN001
    client, _, _ = service
    sentences, grounding = client.draft_grounded(mode, study_key=GONE_KEY)
    text = " ".join(s.text for s in sentences)
    assert not [st for s in sentences for st in find_statements(s.text)]
    assert sentences[-1].text.startswith(MISSING_PREFIX) and "CMR_STUDY_ROOTS" in sentences[-1].text
    assert "severely impaired systolic function" in text  # the words stay, the numbers go
    assert grounding["source"] == "none" and "CMR_STUDY_ROOTS" in grounding["reason"]
    assert grounding["measurements"] is None and grounding["quality"] == ""
    removed = [c for s in grounding["sentences"] for c in s["changes"]]
    assert removed and all(c["action"] == "removed" for c in removed)
    assert {c["before"] for c in removed} >= {"23%", "55%"}
    raw = _sentences(client, mode, study_key=GONE_KEY)
    assert not raw[0].HasField("measurements") and raw[0].measurements_note == grounding["reason"]
    assert raw[-1].kind == "note"
    embedding = __import__("numpy").ones(256, "float32")
    sentences = client.draft(mode, embedding=embedding)
    assert "embedding" in sentences[-1].text
    assert "embedding" in _sentences(client, mode, embedding=embedding)[0].measurements_note


@pytest.mark.parametrize("outcome", [MeasureOutcome(failed_measurement("ValueError", "seg@here"), "ValueError"),
                                     RuntimeError("the decoder worker died"), DeadlineExceeded("too slow"), None])
@pytest.mark.parametrize("mode", MODES)
def test_measuring_that_fails_never_fails_the_draft(root: Path, outcome: Any, mode: str) -> None:
    loader = FakeLoader(outcome)
    server, address, _ = _serve(root, loader)
    try:
        with GeneratorClient(address, timeout_s=20) as client:
            sentences, grounding = client.draft_grounded(mode, path=str(root / "new_study"))
    finally:
        server.stop(0)
    assert sentences and sentences[-1].text.startswith(MISSING_PREFIX)
    assert not [st for s in sentences for st in find_statements(s.text)]
    assert grounding["source"] in ("measured", "none")
    if grounding["source"] == "measured":  # measured, and failed: the measurements say why
        assert grounding["quality"] == "failed" and "ValueError" in grounding["quality_reasons"][0]
    else:
        assert grounding["reason"] and grounding["measurements"] is None
    if outcome is None:
        assert "measuring is off" in sentences[-1].text and "measuring is off" in grounding["reason"]
    # CMR-TARGET's sentence of nothing but numbers is dropped: its numbers come with the last sentence
    dropped = {(c["measure"], c["before"]) for c in grounding["dropped"]}
    if mode == "target":
        assert dropped == {("lvedv_ml", "150 ml"), ("lvedvi_ml_m2", "80 ml/m2"), ("lv_mass_g", "120 g")}
        assert "LVEDV" not in " ".join(s.text for s in sentences)
    else:
        assert not dropped


def test_the_measurement_sentence_comes_first_when_the_draft_has_no_lvef(root: Path) -> None:
    global TARGET_REPORT
    saved = TARGET_REPORT
    TARGET_REPORT = ["Normal cardiac MRI.", "No late gadolinium enhancement."]
    loader = FakeLoader(MeasureOutcome(MEASURED))
    server, address, _ = _serve(root, loader)
    try:
        with GeneratorClient(address, timeout_s=20) as client:
            sentences, grounding = client.draft_grounded("target", study_key=KEY)
            one = client.draft("target", study_key=KEY, max_sentences=1)
    finally:
        server.stop(0)
        TARGET_REPORT = saved
    assert sentences[0].text.startswith(f"{SUMMARY_PREFIX} LVEF 31 %, LVEDV 245 ml (118 ml/m²)")
    assert "lv_dysfunction" in sentences[0].findings  # the labeller reads the measured LVEF 31 %
    assert [s.text for s in sentences[1:]] == ["Normal cardiac MRI (review: measured LVEF 31 %, "
                                               "LVEDVi 118 ml/m²).", "No late gadolinium enhancement."]
    assert grounding["sentences"][0]["kind"] == "measurements" and sentences[0].kind == "measurements"
    added = sentences[0].changes
    assert added and {c["action"] for c in added} == {"added"}
    assert [c["after"] for c in added if c["measure"] == "lvef_pct"] == ["31 %"]
    assert sentences[1].review and "LVEF 31 %" in sentences[1].review[0]  # flagged, and said so in the field
    assert [s.kind for s in sentences[1:]] == ["draft", "draft"]
    assert len(one) == 1 and one[0].last  # a limit the client sets counts every sentence


def test_cli_prints_the_grounded_draft_and_what_changed(service) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from orchestration.cli.main import app

    client, _, _ = service
    out = CliRunner().invoke(app, ["draft", KEY, "--mode", "retrieval", "--url", client.url, "--show-grounding"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "1. Dilated LV (LVEDVi 118 mL/m2) with moderately impaired systolic function (LVEF 31%)."
    assert "measurements: from the index, quality ok, segmenter seg@index" in out.output
    assert "  1. lvedvi_ml_m2 130 mL/m2 -> 118 mL/m2; lvef_pct 23% -> 31%" in lines
    assert any(line.startswith("  2. rvef_pct 55% -> 48%") for line in lines)
    out = CliRunner().invoke(app, ["draft", GONE_KEY, "--mode", "retrieval", "--url", client.url, "--json",
                                   "--show-grounding"])
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert rows[-1]["grounding"]["source"] == "none" and rows[-2]["last"]
    assert rows[0]["kind"] == "draft" and {c["action"] for c in rows[0]["changes"]} == {"removed"}
    assert rows[-2]["kind"] == "note" and rows[-1]["grounding"]["sentences"][0]["changes"] == rows[0]["changes"]
    assert "rvef_pct 55% removed" in "\n".join(__import__("orchestration.cli.draft_cmd", fromlist=["x"]).grounding_lines(
        rows[-1]["grounding"]))


def test_the_report_indexes_only_what_was_streamed(service) -> None:  # noqa: ANN001
    client, _, _ = service
    FakeDrafter.drafted.clear()
    sentences, grounding = client.draft_grounded("target", study_key=KEY, max_sentences=2)
    assert len(sentences) == 2 and sentences[-1].last
    assert [s["index"] for s in grounding["sentences"]] == [1, 2]
    assert FakeDrafter.drafted == TARGET_REPORT[:2]  # the last sentence is sent without drafting a third
    assert grounding["source"] == "index" and grounding["dropped"] == []


def test_numbers_of_dropped_sentences_come_with_the_last_sentence(root: Path) -> None:
    """A sentence of nothing but numbers that cannot be stated is dropped; the last sentence says which numbers
    went with it, also when a limit cuts the draft (then only those before the cut)."""
    global TARGET_REPORT
    saved = TARGET_REPORT
    TARGET_REPORT = ["Normal LV systolic function (LVEF 63%).", "LVEDVi 80 ml/m2.", "Normal RV.", "RVEDVi 70 ml/m2.",
                     "No late gadolinium enhancement."]
    server, address, _ = _serve(root, FakeLoader(MeasureOutcome(MEASURED)))  # measured: no BSA, no indexed values
    try:
        with GeneratorClient(address, timeout_s=20) as client:
            whole = _sentences(client, "target", path=str(root / "new_study"))
            cut = _sentences(client, "target", path=str(root / "new_study"), max_sentences=2)
    finally:
        server.stop(0)
        TARGET_REPORT = saved
    assert [s.text for s in whole] == ["Normal LV systolic function (LVEF 58%).", "Normal RV.",
                                       "No late gadolinium enhancement.",
                                       "Automated measurements to be reviewed: low segmentation confidence."]
    assert [s.kind for s in whole] == ["draft", "draft", "draft", "note"]
    reason = "the study has no patient height and weight"
    assert [(c.measure, c.before, c.reason) for c in whole[-1].dropped] == [
        ("lvedvi_ml_m2", "80 ml/m2", reason), ("rvedvi_ml_m2", "70 ml/m2", reason)]
    assert [s.text for s in cut] == [s.text for s in whole[:2]]
    assert [(c.measure, c.before) for c in cut[-1].dropped] == [("lvedvi_ml_m2", "80 ml/m2")]
