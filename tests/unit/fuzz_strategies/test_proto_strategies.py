"""The descriptor -> hypothesis strategy of bench.fuzz covers every kind of field the contracts use: each scalar
type with its extremes, enums with unknown values, repeated fields empty and long, nested messages, every oneof
member, maps; and what it builds serialises and parses back."""

from __future__ import annotations

import math
from collections import defaultdict

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.proto_strategies import HUGE_TEXT, MessageStrategies, integers
from cmr.v1 import encoder_pb2, events_pb2, generator_pb2, search_pb2

F = FieldDescriptor
REQUESTS = [s.methods_by_name[m].input_type for pb in (encoder_pb2, search_pb2, generator_pb2)
            for s in pb.DESCRIPTOR.services_by_name.values() for m in s.methods_by_name]
EVENTS = [events_pb2.NewExam.DESCRIPTOR, events_pb2.EmbeddingCreated.DESCRIPTOR, events_pb2.DeadLetter.DESCRIPTOR]


def _walk(msg: Message, seen: dict[str, set[object]], depth: int = 0) -> None:
    """Record what kinds of values `msg` holds, recursively."""
    seen["depth"].add(depth)
    for field, value in msg.ListFields():
        seen["types"].add(field.type)
        seen["fields"].add(field.full_name)
        if field.containing_oneof is not None:
            seen["oneof"].add(field.full_name)
        if field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            seen["map"].add(len(value))
            if len(value):  # the entry's key and value kinds count as drawn (EncodeExamRequest: string -> double)
                entry = field.message_type.fields_by_name
                seen["types"].update({entry["key"].type, entry["value"].type})
            continue
        values = list(value) if field.is_repeated else [value]
        if field.is_repeated:
            seen["repeated_len"].add(len(values))
        for v in values:
            if field.type == F.TYPE_MESSAGE:
                _walk(v, seen, depth + 1)
            elif field.type == F.TYPE_ENUM:
                seen["enum_unknown"].add(field.enum_type.values_by_number.get(v) is None)
            elif field.type in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
                seen["float"].add("nan" if math.isnan(v) else "inf" if math.isinf(v) else "finite")
            elif field.type == F.TYPE_STRING:
                seen["string"].add("huge" if len(v) >= HUGE_TEXT else "non_ascii" if not v.isascii() else "ascii")


def _collect(descriptors: list[Descriptor], n: int) -> dict[str, set[object]]:
    strategies = MessageStrategies(max_depth=3, max_repeated=12)
    seen: dict[str, set[object]] = defaultdict(set)

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(descriptors).flatmap(strategies.of))
    def draw(msg: Message) -> None:
        _walk(msg, seen)
        wire = msg.SerializeToString(deterministic=True)
        assert type(msg).FromString(wire).SerializeToString(deterministic=True) == wire

    draw()
    return seen


def _schema_types(descriptors: list[Descriptor]) -> set[int]:
    out: set[int] = set()
    todo, done = list(descriptors), set()
    while todo:
        d = todo.pop()
        if d.full_name in done:
            continue
        done.add(d.full_name)
        for f in d.fields:
            out.add(f.type)
            if f.type == F.TYPE_MESSAGE:
                todo.append(f.message_type)
    return out


def test_every_field_kind_is_generated() -> None:
    descriptors = REQUESTS + EVENTS
    seen = _collect(descriptors, 300)
    # Every scalar type, enums, bytes, messages: drawn per message type, so a type that occurs deep in one
    # message only (uint64: GenerateReportRequest.decoding.seed) is not left to the luck of a shared draw.
    types = set(seen["types"])
    for d in descriptors:
        types |= _collect([d], 25)["types"]
    assert _schema_types(descriptors) <= types
    assert {"nan", "inf", "finite"} <= seen["float"]
    assert {"huge", "non_ascii", "ascii"} <= seen["string"]
    assert {True, False} <= seen["enum_unknown"]
    assert max(seen["map"]) >= 2  # maps with several entries (NewExam.source_metadata)
    assert max(seen["depth"]) >= 2  # nested messages (StudyQuery -> StudyRef, UpsertRequest -> ExamUpsert -> Vector)
    assert max(seen["repeated_len"]) >= 5 and 1 in seen["repeated_len"]


def test_integers_reach_their_type_bounds() -> None:
    drawn: set[int] = set()

    @settings(max_examples=200, derandomize=True, database=None)
    @given(integers(-(2**63), 2**63 - 1))
    def draw(v: int) -> None:
        drawn.add(v)

    draw()
    assert {-(2**63), 2**63 - 1, 0} <= drawn


def test_every_oneof_member_is_drawn() -> None:
    descriptors = [search_pb2.SearchByStudyRequest.DESCRIPTOR, encoder_pb2.EncodeStudyRequest.DESCRIPTOR,
                   search_pb2.FewShotRequest.DESCRIPTOR]
    seen = _collect(descriptors, 120)
    members = {"cmr.v1.StudyQuery.study_key", "cmr.v1.StudyQuery.embedding", "cmr.v1.StudyQuery.ref",
               "cmr.v1.StudyRef.path", "cmr.v1.StudyRef.uri", "cmr.v1.EncodeStudyRequest.ref",
               "cmr.v1.EncodeStudyRequest.chunk", "cmr.v1.FewShotRequest.study", "cmr.v1.FewShotRequest.whole_index"}
    assert members <= seen["oneof"]
