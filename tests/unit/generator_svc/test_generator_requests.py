"""How GeneratorService reads a request's decoding options, and how the client reads what grounding did from the
streamed sentences' fields."""

from __future__ import annotations

import pytest

from cmr.quant.proto import to_proto
from cmr.quant.volumes import Measurements
from cmr.rpc.errors import InvalidArgument
from cmr.v1 import generator_pb2
from generator_svc.client import DraftStream, drafted_sentence, generate_request, grounding_of, measurements_of
from generator_svc.service import decoding_of


def test_zero_values_mean_defaults() -> None:
    d = decoding_of(generator_pb2.DecodingOptions())
    assert (d.strategy, d.beam_width, d.temperature, d.max_sentences, d.max_tokens) == ("greedy", 4, 1.0, None, None)


def test_options_map_one_to_one() -> None:
    d = decoding_of(generator_pb2.DecodingOptions(strategy=generator_pb2.DECODING_STRATEGY_SAMPLE, temperature=0.5,
                                                  seed=7, max_sentences=3, max_tokens=20))
    assert (d.strategy, d.temperature, d.seed, d.max_sentences, d.max_tokens) == ("sample", 0.5, 7, 3, 20)
    assert decoding_of(generator_pb2.DecodingOptions(strategy=generator_pb2.DECODING_STRATEGY_BEAM,
                                                     beam_width=8)).beam_width == 8


@pytest.mark.parametrize("options, words", [
    (dict(beam_width=9), "beam_width"),
    (dict(temperature=2.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(max_sentences=13), "max_sentences"),
    (dict(max_tokens=65), "max_tokens"),
    (dict(strategy=42), "strategy"),
])
def test_out_of_limit_options_are_refused(options: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        decoding_of(generator_pb2.DecodingOptions(**options))


def _change(measure: str, action: str, before: str = "", after: str = "", reason: str = "") -> generator_pb2.NumberChange:
    return generator_pb2.NumberChange(measure=measure, action=action, before=before, after=after, reason=reason)


M = Measurements(lvef_pct=31.4, lvedv_ml=245.2, quality="check", quality_reasons=["low confidence"], model="seg@1")
STREAM = [
    generator_pb2.ReportSentence(index=1, text="Automated quantification: LVEF 31 %, LVEDV 245 ml.", kind="measurements",
                                 grounding=[_change("lvef_pct", "added", after="31 %"),
                                            _change("lvedv_ml", "added", after="245 ml")],
                                 measurements=to_proto(M), measurements_source="measured"),
    generator_pb2.ReportSentence(index=2, text="Normal cardiac MRI (review: measured LVEF 31 %).", kind="draft",
                                 review=["LV systolic function: measured LVEF 31 %"]),
    generator_pb2.ReportSentence(index=3, text="Automated measurements to be reviewed: low confidence.", kind="note",
                                 last=True, dropped=[_change("rvef_pct", "removed", "55%", "", "not measured")]),
]


def test_the_client_reads_grounding_from_the_sentences() -> None:
    g = grounding_of(STREAM)
    assert g is not None
    assert (g["source"], g["reason"], g["quality"], g["segmenter"], g["quality_reasons"]) == (
        "measured", "", "check", "seg@1", ["low confidence"])
    assert g["measurements"]["lvef_pct"] == 31.4 and g["measurements"]["rvef_pct"] is None
    assert [s["index"] for s in g["sentences"]] == [1, 2, 3]
    assert [s["kind"] for s in g["sentences"]] == ["measurements", "draft", "note"]
    assert g["sentences"][0]["changes"] == [
        {"measure": "lvef_pct", "action": "added", "before": "", "after": "31 %", "reason": ""},
        {"measure": "lvedv_ml", "action": "added", "before": "", "after": "245 ml", "reason": ""}]
    assert g["sentences"][1]["review"] == ["LV systolic function: measured LVEF 31 %"]
    assert g["dropped"] == [{"measure": "rvef_pct", "action": "removed", "before": "55%", "after": "",
                             "reason": "not measured"}]
    m = measurements_of(STREAM)
    assert m is not None and m.lvef_pct == 31.4 and m.model == "seg@1"
    s = drafted_sentence(STREAM[1])
    assert (s.index, s.kind, s.changes, s.review, s.last) == (2, "draft", (), ("LV systolic function: measured "
                                                                                "LVEF 31 %",), False)
    assert drafted_sentence(STREAM[0]).changes[0]["after"] == "31 %"


def test_no_measurements_and_older_servers() -> None:
    none = [generator_pb2.ReportSentence(index=1, text="No automated measurements (measuring is off): LVEF, volumes "
                                         "and mass are not stated.", kind="note", last=True,
                                         measurements_source="none", measurements_note="measuring is off")]
    g = grounding_of(none)
    assert g is not None and g["source"] == "none" and g["reason"] == "measuring is off"
    assert g["measurements"] is None and g["quality"] == "" and measurements_of(none) is None
    # a server without the fields: no grounding to report, the sentences read as before
    old = [generator_pb2.ReportSentence(index=1, text="Normal.", last=True)]
    assert grounding_of(old) is None and grounding_of([]) is None
    assert drafted_sentence(old[0]).kind == "draft"


def test_the_stream_reports_what_has_arrived() -> None:
    stream = DraftStream(iter(STREAM))
    assert stream.grounding is None and stream.measurements is None
    sentences = list(stream)
    assert [s.index for s in sentences] == [1, 2, 3] and sentences[-1].last
    assert stream.grounding == grounding_of(STREAM) and stream.measurements is not None


def test_client_request_builder_checks_names() -> None:
    r = generate_request("target", study_key="a" * 32, strategy="beam", beam_width=2)
    assert r.mode == generator_pb2.DRAFT_MODE_TARGET and r.decoding.beam_width == 2 and r.study.study_key == "a" * 32
    with pytest.raises(ValueError, match="mode"):
        generate_request("poetry", study_key="a" * 32)
    with pytest.raises(ValueError, match="strategy"):
        generate_request("target", study_key="a" * 32, strategy="nucleus")
