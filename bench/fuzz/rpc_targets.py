"""gRPC targets: every RPC of EncoderService, SearchService and GeneratorService, called through a real channel
with identity serialisers, so requests are raw bytes and deserialisation is fuzzed as well.

Each input is a list of request frames (one for unary requests, a stream for EncodeStudy), drawn from a mix of:
- generated: any message of the request type, from its descriptor (bench.fuzz.proto_strategies);
- valid: a plausible request built from what the server holds (indexed study keys, readable study folders,
  vectors of the right size, known findings), with one or two fields pushed out of range now and then;
- mutated: the serialised plausible request with bytes flipped, cut or spliced;
- wire: well-formed protobuf wire data with unknown field numbers and wire types;
- garbage: random bytes.
Expensive handlers (EncodeStudy, EncodeExam, GenerateReport's CMR-TARGET mode, studies by reference) draw
their plausible requests rarely, so most inputs are refused fast; `reached_model` counts those that ran a model.

Oracle: OK, or a status code the service documents, with a human-readable detail that is not a traceback.
UNKNOWN, INTERNAL, any other code, an empty detail or a deadline (the per-call watchdog) is a failure. Writes
never touch the studies indexed before fuzzing: Upsert uses UIDs under a fuzz-only root ("2.25.1999...") and
Delete names keys of those UIDs or random keys, never a seeded one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from bench.fuzz.dicom_inputs import Seeds, mutate_bytes
from bench.fuzz.harness import Outcome, Target, clear_message, pack_frames
from bench.fuzz.loader_targets import upload_stream
from bench.fuzz.proto_strategies import MessageStrategies, assign, floats, rarely, texts
from cmr.dicom import ExamSpec
from cmr.labels import DISEASES, FINDINGS
from cmr.rpc.keys import study_key
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc, generator_pb2, search_pb2
from search_svc.store.schema import VENDORS

C = grpc.StatusCode
FUZZ_UID_ROOT = "2.25.1999"  # Upsert UIDs of the fuzzer: no seeded study has one
ENCODER_CODES = frozenset({C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED, C.NOT_FOUND, C.PERMISSION_DENIED, C.UNAVAILABLE})
SEARCH_CODES = frozenset({C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED, C.NOT_FOUND, C.PERMISSION_DENIED})
GENERATOR_CODES = frozenset({C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED, C.NOT_FOUND, C.PERMISSION_DENIED,
                             C.UNAVAILABLE})
# RPCs whose plausible requests run the text model (tens of ms on CPU): fewer of them, most input fails fast
TEXT_MIX = ("generated", "valid", "mutated", "wire", "wire", "garbage", "garbage")
PHRASES = ("dilated left ventricle", "reduced ejection fraction", "late gadolinium enhancement",
           "normal cardiac MRI", "hypertrophic cardiomyopathy", "pericardial effusion", "RV dilation")


@dataclass(frozen=True)
class RpcContext:
    """What plausible requests are made of: the servers' state as the fuzzer set it up."""

    seeded_keys: tuple[str, ...]       # indexed before fuzzing; read-only for the fuzzer
    study_paths: tuple[str, ...]       # study folders the servers may read (CMR_STUDY_ROOTS)
    roots: tuple[Path, ...]
    embed_dim: int
    model_version: str
    spec_id: str
    exam_shape: tuple[int, int, int]   # frames, height, width of an ExamTensor
    secret: str                        # the search service's study-key secret (to name fuzz-upserted studies)
    seeds: Seeds                       # mini DICOM studies for uploads


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str
    request: Descriptor
    client_stream: bool
    server_stream: bool
    codes: frozenset[grpc.StatusCode]
    valid: Callable[[RpcContext], st.SearchStrategy[Any]]  # a message, or a list of messages for a stream
    mix: tuple[str, ...] = ("generated", "generated", "valid", "valid", "valid", "mutated", "wire", "garbage")
    timeout_s: float = 30.0
    model: Callable[[list[bytes]], bool] = lambda frames: False  # would an OK reply have run a model?

    @property
    def path(self) -> str:
        return f"/cmr.v1.{self.service}/{self.method}"

    @property
    def name(self) -> str:
        return f"{self.service.removesuffix('Service').lower()}.{self.method}"


# --- plausible requests -------------------------------------------------------------------------------------

def hex_keys(ctx: RpcContext, *, seeded: bool = True) -> st.SearchStrategy[str]:
    """Study keys: seeded ones (reads only), keys of fuzz UIDs, random hex, and malformed."""
    options = [st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
               fuzz_uids().map(lambda u: study_key(u, ctx.secret)),
               st.sampled_from(["", "0" * 32, "G" * 32, "ABCDEF" * 6, "0" * 31, "0" * 33, "../" * 11, "*"])]
    if seeded and ctx.seeded_keys:
        options = [st.sampled_from(ctx.seeded_keys)] * 2 + options
    return st.one_of(*options)


def fuzz_uids() -> st.SearchStrategy[str]:
    return st.integers(0, 10**30).map(lambda n: f"{FUZZ_UID_ROOT}.{n}")


def vectors(dim: int) -> st.SearchStrategy[common_pb2.Vector]:
    """Unit vectors of the right size mostly; wrong sizes, zeros, NaN and inf now and then."""
    def unit(seed: int) -> list[float]:
        v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
        return (v / np.linalg.norm(v)).tolist()

    good = st.integers(0, 2**32 - 1).map(unit)
    bad = st.one_of(st.lists(floats(32), max_size=dim + 2), st.just([0.0] * dim),
                    good.map(lambda v: [float("nan")] + v[1:]), good.map(lambda v: [float("inf")] + v[1:]),
                    good.map(lambda v: v[:-1]), good.map(lambda v: [x * 1e30 for x in v]))
    return rarely(good, bad, 3).map(lambda values: common_pb2.Vector(values=values))


def study_refs(ctx: RpcContext, readable_one_in: int) -> st.SearchStrategy[common_pb2.StudyRef]:
    """References: rarely a readable study (it gets loaded and encoded), mostly missing or forbidden."""
    root = str(ctx.roots[0]) if ctx.roots else "/tmp"
    bad = st.sampled_from([common_pb2.StudyRef(path=p) for p in
                           ["", "/etc", f"{root}/../../etc", f"{root}/no-such-study", "relative/path"]] +
                          [common_pb2.StudyRef(uri=u) for u in
                           ["http://example.invalid/studies/1", "file:///etc/passwd", f"file://{root}/nope", "::"]] +
                          [common_pb2.StudyRef()])
    if not ctx.study_paths:
        return bad
    good = st.sampled_from(ctx.study_paths).map(lambda p: common_pb2.StudyRef(path=p))
    return rarely(bad, good, readable_one_in)


def study_queries(ctx: RpcContext, readable_one_in: int = 40) -> st.SearchStrategy[common_pb2.StudyQuery]:
    return st.one_of(
        hex_keys(ctx).map(lambda k: common_pb2.StudyQuery(study_key=k)),
        vectors(ctx.embed_dim).map(lambda v: common_pb2.StudyQuery(embedding=v)),
        study_refs(ctx, readable_one_in).map(lambda r: common_pb2.StudyQuery(ref=r)),
        st.just(common_pb2.StudyQuery()),
    )


def phrases() -> st.SearchStrategy[str]:
    return rarely(st.sampled_from(PHRASES), texts(), 4)


def filters() -> st.SearchStrategy[search_pb2.SearchFilter]:
    tokens = st.sampled_from(["cine_sax", "cine_4ch", "lge_sax", *FINDINGS[:4], "disease:hcm", "Bad Token", ""])
    dates = st.sampled_from(["", "2020-01-01", "2024-12-31", "2019-02-30", "yesterday", "0000-00-00", "9999-12-31"])
    return rarely(st.just(search_pb2.SearchFilter()), st.builds(
        search_pb2.SearchFilter,
        vendors=st.lists(st.sampled_from([*VENDORS, "Siemens", "acme", ""]), max_size=3),
        field_strengths_t=st.lists(st.sampled_from([1.5, 3.0, 0.0, -1.0, float("nan"), 1e9]), max_size=2),
        date_from=dates, date_to=dates, views_all=st.lists(tokens, max_size=2),
        labels_all=st.lists(tokens, max_size=2), labels_none=st.lists(tokens, max_size=2)), 2)


def small(limit: int) -> st.SearchStrategy[int]:
    return rarely(st.integers(0, 20), st.sampled_from([limit, limit + 1, 2**32 - 1]), 5)


def cohort_requests() -> st.SearchStrategy[search_pb2.BuildCohortRequest]:
    return st.builds(search_pb2.BuildCohortRequest, all_of=st.lists(phrases(), max_size=3),
                     any_of=st.lists(phrases(), max_size=2), none_of=st.lists(phrases(), max_size=2),
                     filter=filters(), threshold=rarely(st.sampled_from([0.0, 0.3, 0.5, 0.9]), floats(32), 4),
                     page_size=small(1000), page_token=rarely(st.just(""), texts(), 4))


def upserts(ctx: RpcContext) -> st.SearchStrategy[search_pb2.UpsertRequest]:
    """Mostly well-formed exams (they get indexed under fuzz UIDs); every other one has one field broken."""
    good = st.builds(
        search_pb2.ExamUpsert, study_instance_uid=fuzz_uids(),
        image_embedding=vectors(ctx.embed_dim).filter(lambda v: len(v.values) == ctx.embed_dim),
        impression=rarely(st.sampled_from(PHRASES), texts(), 3),
        study_date=st.sampled_from(["", "2021-05-04", "1999-12-31"]), vendor=st.sampled_from(["siemens", "GE", ""]),
        field_strength_t=st.sampled_from([0.0, 1.5, 3.0]),
        views=st.lists(st.sampled_from(["cine_sax", "lge_sax", "cine_4ch"]), max_size=3, unique=True),
        labels=st.lists(st.sampled_from([*FINDINGS[:3], "disease:normal"]), max_size=3, unique=True),
        model_version=st.just(ctx.model_version))
    broken = {
        "study_instance_uid": st.sampled_from(["", " ", "abc", "1." * 40, "1.2.\x00"]),
        "image_embedding": vectors(ctx.embed_dim), "report_embedding": vectors(ctx.embed_dim),
        "study_date": st.sampled_from(["2021-13-01", "20210504", "x", "2021-02-30"]),
        "field_strength_t": st.sampled_from([-3.0, float("nan"), float("inf"), 1e9]),
        "views": st.lists(st.sampled_from(["BAD VIEW", "", "x" * 80]), min_size=1, max_size=2),
        "labels": st.lists(st.sampled_from(["Bad Label", "", "é"]), min_size=1, max_size=2),
        "model_version": st.sampled_from(["", "other@0", "x" * 100]),
        "impression": st.just("x" * 20_000)}

    def break_one(exam: search_pb2.ExamUpsert) -> st.SearchStrategy[search_pb2.ExamUpsert]:
        def apply(item: tuple[str, Any]) -> search_pb2.ExamUpsert:
            out = search_pb2.ExamUpsert()
            out.CopyFrom(exam)
            out.ClearField(item[0])
            assign(out, *item)
            return out
        return st.sampled_from(sorted(broken)).flatmap(lambda f: broken[f].map(lambda v: (f, v))).map(apply)

    exam = rarely(good, good.flatmap(break_one), 2)
    return rarely(st.lists(exam, min_size=1, max_size=4), st.just([]), 20).map(
        lambda es: search_pb2.UpsertRequest(exams=es))


def deletes(ctx: RpcContext) -> st.SearchStrategy[search_pb2.DeleteRequest]:
    keys = hex_keys(ctx, seeded=False).filter(lambda k: k not in ctx.seeded_keys)
    return st.lists(keys, max_size=4).map(lambda ks: search_pb2.DeleteRequest(study_keys=ks))


def exam_tensors(ctx: RpcContext) -> st.SearchStrategy[common_pb2.ExamTensor]:
    t, h, w = ctx.exam_shape

    def tensor(seed: int, frames: int, height: int, width: int, spec_id: str, mask_kind: str) -> common_pb2.ExamTensor:
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, max(frames * height * width, 0), dtype=np.uint8).tobytes()
        mask = {"all": b"\x01" * frames, "none": b"\x00" * frames, "short": b"\x01" * max(frames - 1, 0),
                "odd": bytes([7]) * frames}[mask_kind]
        return common_pb2.ExamTensor(frames=frames, height=height, width=width, pixels=pixels, mask=mask,
                                     spec_id=spec_id)

    right = st.builds(tensor, st.integers(0, 2**32 - 1), st.just(t), st.just(h), st.just(w), st.just(ctx.spec_id),
                      st.sampled_from(["all", "all", "odd", "none", "short"]))
    wrong = st.builds(tensor, st.integers(0, 2**32 - 1), st.sampled_from([0, 1, t - 1, t + 1]),
                      st.sampled_from([0, 1, h, h * 2]), st.sampled_from([0, w, w + 1]),
                      st.sampled_from(["", ctx.spec_id, "other-spec"]), st.sampled_from(["all", "none"]))
    return rarely(wrong, right, 3)


def encode_study_streams(ctx: RpcContext) -> st.SearchStrategy[list[encoder_pb2.EncodeStudyRequest]]:
    return upload_stream(ctx.seeds, ctx.roots)


def generate_requests(ctx: RpcContext) -> st.SearchStrategy[generator_pb2.GenerateReportRequest]:
    odd = st.builds(generator_pb2.DecodingOptions, strategy=st.sampled_from([0, 1, 2, 3, 7]),
                    beam_width=small(8), temperature=st.sampled_from([0.0, 0.7, 1.0, -1.0, float("nan"), 1e9]),
                    max_sentences=st.sampled_from([0, 1, 2, 1000]), max_tokens=st.sampled_from([0, 8, 16, 10**6]),
                    seed=st.integers(0, 2**64 - 1), neighbours=small(50))
    plain = st.builds(generator_pb2.DecodingOptions, strategy=st.sampled_from([0, 1, 2, 3]),
                      beam_width=st.integers(0, 4), temperature=st.sampled_from([0.0, 0.7, 1.0]),
                      max_sentences=st.integers(0, 3), neighbours=st.integers(0, 10))
    decoding = rarely(plain, odd, 3)
    cheap = st.builds(generator_pb2.GenerateReportRequest, study=study_queries(ctx, 80),
                      mode=st.sampled_from([0, 1, 2, 9]), decoding=decoding)
    # CMR-TARGET on a readable study drafts for seconds: rare; it also runs with broken studies and options
    target = st.builds(generator_pb2.GenerateReportRequest,
                       study=st.one_of(hex_keys(ctx).map(lambda k: common_pb2.StudyQuery(study_key=k)),
                                       study_refs(ctx, 4).map(lambda r: common_pb2.StudyQuery(ref=r))),
                       mode=st.just(3), decoding=decoding.map(_short))
    return rarely(cheap, target, 30)


def _short(d: generator_pb2.DecodingOptions) -> generator_pb2.DecodingOptions:
    if d.max_sentences in (0, 1000):
        d.max_sentences = 2  # bound the time of the drafts that do run
    return d


def _target_draft(frames: list[bytes]) -> bool:
    try:
        return generator_pb2.GenerateReportRequest.FromString(frames[0]).mode == generator_pb2.DRAFT_MODE_TARGET
    except Exception:  # noqa: BLE001
        return False


RPCS: tuple[Rpc, ...] = (
    Rpc("EncoderService", "EncodeStudy", encoder_pb2.EncodeStudyRequest.DESCRIPTOR, True, False, ENCODER_CODES,
        encode_study_streams, ("generated",) * 4 + ("valid", "mutated", "wire", "wire", "garbage", "garbage"),
        60.0, lambda frames: True),
    Rpc("EncoderService", "EncodeExam", encoder_pb2.EncodeExamRequest.DESCRIPTOR, False, False, ENCODER_CODES,
        lambda ctx: exam_tensors(ctx).map(lambda e: encoder_pb2.EncodeExamRequest(exam=e)),
        model=lambda frames: True),
    Rpc("EncoderService", "EncodeText", encoder_pb2.EncodeTextRequest.DESCRIPTOR, False, False, ENCODER_CODES,
        lambda ctx: rarely(st.lists(phrases(), max_size=3), st.lists(phrases(), max_size=20), 10).map(
            lambda ts: encoder_pb2.EncodeTextRequest(texts=ts)), TEXT_MIX, model=lambda frames: True),
    Rpc("EncoderService", "GetModelInfo", encoder_pb2.GetModelInfoRequest.DESCRIPTOR, False, False, ENCODER_CODES,
        lambda ctx: st.just(encoder_pb2.GetModelInfoRequest())),
    Rpc("SearchService", "SearchByText", search_pb2.SearchByTextRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.builds(search_pb2.SearchByTextRequest, query=phrases(), top_k=small(200),
                              offset=small(10_000), filter=filters()), TEXT_MIX),
    Rpc("SearchService", "SearchByStudy", search_pb2.SearchByStudyRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.builds(search_pb2.SearchByStudyRequest, study=study_queries(ctx), top_k=small(200),
                              filter=filters(), include_self=st.booleans())),
    Rpc("SearchService", "ZeroShot", search_pb2.ZeroShotRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.builds(search_pb2.ZeroShotRequest, study=study_queries(ctx),
                              findings=st.lists(st.sampled_from([*FINDINGS, *DISEASES, *(f"disease:{d}" for d in
                                                                 DISEASES), "unknown", ""]), max_size=4))),
    Rpc("SearchService", "FewShot", search_pb2.FewShotRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.builds(lambda pos, neg, method, study, whole, top_k, flt: search_pb2.FewShotRequest(
            positive_keys=pos, negative_keys=neg, method=method, top_k=top_k, filter=flt,
            **({"study": study} if study is not None else {"whole_index": whole})),
            st.lists(hex_keys(ctx), max_size=4), st.lists(hex_keys(ctx), max_size=3), st.sampled_from([0, 1, 2, 5]),
            st.one_of(st.none(), study_queries(ctx)), st.booleans(), small(200), filters())),
    Rpc("SearchService", "BuildCohort", search_pb2.BuildCohortRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: cohort_requests(), TEXT_MIX),
    Rpc("SearchService", "ExportCohort", search_pb2.ExportCohortRequest.DESCRIPTOR, False, True, SEARCH_CODES,
        lambda ctx: st.builds(search_pb2.ExportCohortRequest, cohort=cohort_requests(),
                              format=st.sampled_from([0, 1, 2, 3])), TEXT_MIX),
    Rpc("SearchService", "Get", search_pb2.GetRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.builds(search_pb2.GetRequest, study_key=hex_keys(ctx), with_vector=st.booleans())),
    Rpc("SearchService", "Stats", search_pb2.StatsRequest.DESCRIPTOR, False, False, SEARCH_CODES,
        lambda ctx: st.just(search_pb2.StatsRequest())),
    Rpc("GeneratorService", "GenerateReport", generator_pb2.GenerateReportRequest.DESCRIPTOR, False, True,
        GENERATOR_CODES, generate_requests, timeout_s=120.0, model=_target_draft),
    # writes last: the index they grow is what Stats, FewShot and cohorts scan
    Rpc("SearchService", "Upsert", search_pb2.UpsertRequest.DESCRIPTOR, False, False, SEARCH_CODES, upserts),
    Rpc("SearchService", "Delete", search_pb2.DeleteRequest.DESCRIPTOR, False, False, SEARCH_CODES, deletes),
)


# --- wire-level inputs ----------------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def wire_fields(draw: st.DrawFn) -> bytes:
    """Well-formed protobuf wire data: fields with any number (known or not) and any wire type."""
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        number = draw(st.one_of(st.integers(1, 12), st.integers(1, 2**29 - 1)))
        wt = draw(st.sampled_from([0, 1, 2, 5]))
        out += _varint(number << 3 | wt)
        if wt == 0:
            out += _varint(draw(st.integers(0, 2**64 - 1)))
        elif wt == 1:
            out += struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
        elif wt == 5:
            out += struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
        else:
            payload = draw(st.binary(max_size=48))
            out += _varint(len(payload)) + payload
    return out


def _frames(value: Message | Sequence[Message]) -> list[bytes]:
    if isinstance(value, Message):
        return [value.SerializeToString()]
    return [m.SerializeToString() for m in value]


def request_frames(rpc: Rpc, ctx: RpcContext, gen: MessageStrategies) -> st.SearchStrategy[list[bytes]]:
    """The input mix of one RPC (see the module doc)."""
    generated: st.SearchStrategy[Any] = gen.of(rpc.request)
    if rpc.client_stream:
        generated = st.lists(generated, max_size=4)
    valid = rpc.valid(ctx).map(_frames)

    def mutate(frames: list[bytes]) -> st.SearchStrategy[list[bytes]]:
        """One frame of the request (or stream) mutated at the byte level."""
        if not frames:
            return st.just(frames)
        return st.integers(0, len(frames) - 1).flatmap(
            lambda i: mutate_bytes(frames[i]).map(lambda m: [*frames[:i], m, *frames[i + 1:]]))

    single = {"generated": generated.map(_frames), "valid": valid, "mutated": valid.flatmap(mutate),
              "wire": wire_fields().map(lambda b: [b]),
              "garbage": st.binary(max_size=256).map(lambda b: [b])}
    if rpc.client_stream:
        single["wire"] = st.lists(wire_fields(), max_size=3)
        single["garbage"] = st.lists(st.binary(max_size=256), max_size=3)
    return st.sampled_from(rpc.mix).flatmap(lambda kind: single[kind])


def rpc_context(encoder: grpc.Channel, seeded_keys: Sequence[str], study_paths: Sequence[Path],
                roots: Sequence[Path], secret: str, seeds: Seeds) -> RpcContext:
    """The context of plausible requests, with the model's dimensions asked of the running encoder."""
    info = encoder_pb2_grpc.EncoderServiceStub(encoder).GetModelInfo(encoder_pb2.GetModelInfoRequest(), timeout=30)
    spec = ExamSpec.from_dict(json.loads(info.exam_spec_json))
    frames = spec.length
    return RpcContext(tuple(seeded_keys), tuple(str(p) for p in study_paths), tuple(roots), info.model.embed_dim,
                      info.model.version, info.spec_id, (frames, spec.image_size, spec.image_size),
                      secret, seeds)


# --- calling and judging -----------------------------------------------------------------------------------------

def call(channel: grpc.Channel, rpc: Rpc, frames: list[bytes]) -> int:
    """Send the frames as one call; the number of response messages (raises grpc.RpcError)."""
    if rpc.client_stream:
        channel.stream_unary(rpc.path)(iter(frames), timeout=rpc.timeout_s)
        return 1
    request = frames[0] if frames else b""
    if rpc.server_stream:
        return sum(1 for _ in channel.unary_stream(rpc.path)(request, timeout=rpc.timeout_s))
    channel.unary_unary(rpc.path)(request, timeout=rpc.timeout_s)
    return 1


def judge(channel: grpc.Channel, rpc: Rpc, frames: list[bytes]) -> Outcome:
    try:
        call(channel, rpc, frames)
    except grpc.RpcError as exc:
        code, detail = exc.code(), exc.details() or ""
        if code == C.DEADLINE_EXCEEDED:
            return Outcome("hang", code.name, f"no reply within {rpc.timeout_s:.0f} s: {detail}")
        if code not in rpc.codes:
            return Outcome("crash", code.name, detail)
        if not clear_message(detail):
            return Outcome("crash", f"unclear {code.name}", detail)
        return Outcome("rejected", code.name, detail)
    return Outcome("accepted", reached_model=rpc.model(frames))


def rpc_target(rpc: Rpc, channel: grpc.Channel, ctx: RpcContext, gen: MessageStrategies | None = None) -> Target:
    gen = gen or MessageStrategies(max_depth=3, max_repeated=12)
    codes = ", ".join(sorted(c.name for c in rpc.codes))
    return Target(rpc.name, rpc.service.removesuffix("Service").lower(), request_frames(rpc, ctx, gen),
                  lambda frames: judge(channel, rpc, frames), pack_frames, rpc.timeout_s + 15,
                  f"OK or {codes} with a clear detail")


__all__ = ["FUZZ_UID_ROOT", "RPCS", "Rpc", "RpcContext", "call", "judge", "request_frames", "rpc_context", "rpc_target",
           "wire_fields"]
