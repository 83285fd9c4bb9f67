"""The gRPC GeneratorService: the impression of a study, drafted by retrieval (the nearest indexed study's
impression, or a consensus of the k nearest) or by CMR-TARGET, streamed sentence by sentence.

Retrieval asks the search service for the nearest reports (a study-key query never retrieves the study's own
report). CMR-TARGET needs the images: a StudyRef the server may read, or a study key the study locator finds
under CMR_STUDY_ROOTS; an embedding alone is refused for it (INVALID_ARGUMENT), and a study that cannot be
found is NOT_FOUND.

Every draft, in every mode, is grounded in the study's measurements (`cmr.generator.grounding`): it states the
measured LVEF, volumes and mass, never numbers the retrieved report or the decoder wrote. The measurements come
from the request when it carries them, else from the index (a study key: SearchService.Get), else from measuring
the study here when its images are reachable (a StudyRef, or a study key found under CMR_STUDY_ROOTS; in the
same decoder worker that reads the study for CMR-TARGET). Without any, the draft states no such numbers and says
so in its last sentence. Measuring never fails the RPC. What grounding did travels in the stream's own fields:
the first sentence carries the measurements and where they came from (`measurements`, `measurements_source`,
`measurements_note`), every sentence its `kind`, its number changes (`grounding`) and what the measurements
contradict in it (`review`), and the last sentence the numbers removed with whole sentences (`dropped`);
`GeneratorClient.stream(...).grounding` reads them.

Each sentence is sent as soon as the next one is known (one sentence of look-ahead), so the last carries
`last = true` and a client never waits for an end marker.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from cmr.dicom.locator import StudyLocator
from cmr.generator import Decoding
from cmr.generator.config import MAX_SENTENCES_LIMIT, MAX_TOKENS_LIMIT
from cmr.generator.decoding import MAX_BEAM_WIDTH, MAX_TEMPERATURE
from cmr.generator.grounding import GroundedSentence, NumberChange, ground_draft
from cmr.labels import FINDINGS
from cmr.quant.proto import from_proto as measurements_from_proto
from cmr.quant.proto import to_proto as measurements_to_proto
from cmr.quant.volumes import Measurements
from cmr.rpc.errors import DeadlineExceeded, InvalidArgument, NotFound, RemoteError, Unavailable, rpc_errors
from cmr.rpc.keys import is_study_key
from cmr.rpc.study_loading import StudyLoaderPool
from cmr.rpc.uploads import resolve_ref
from cmr.v1 import common_pb2, generator_pb2, generator_pb2_grpc, search_pb2
from generator_svc.retrieval import DraftSentence, Neighbour, consensus_draft, nearest_draft
from generator_svc.target import TargetDrafter
from search_svc.client import SearchClient

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_NEIGHBOURS = 50
_STRATEGIES = {
    generator_pb2.DECODING_STRATEGY_UNSPECIFIED: "greedy",
    generator_pb2.DECODING_STRATEGY_GREEDY: "greedy",
    generator_pb2.DECODING_STRATEGY_BEAM: "beam",
    generator_pb2.DECODING_STRATEGY_SAMPLE: "sample",
}
_MODES = {
    generator_pb2.DRAFT_MODE_UNSPECIFIED: "retrieval",
    generator_pb2.DRAFT_MODE_RETRIEVAL: "retrieval",
    generator_pb2.DRAFT_MODE_CONSENSUS: "consensus",
    generator_pb2.DRAFT_MODE_TARGET: "target",
}


@dataclass(frozen=True)
class Sentence:
    text: str
    findings: tuple[str, ...]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grounding:
    """What a draft is grounded in: the measurements and where they came from, or why there are none."""

    measurements: Measurements | None
    source: str  # "request" | "index" | "measured" | "none"
    reason: str = ""  # source "none": why

    def first_fields(self) -> dict[str, object]:
        """The first streamed sentence's own fields: the measurements, their source, why there are none."""
        out: dict[str, object] = {"measurements_source": self.source}
        if self.measurements is not None:
            out["measurements"] = measurements_to_proto(self.measurements)
        if self.source == "none":
            out["measurements_note"] = self.reason
        return out


def _changes(changes: Sequence[NumberChange]) -> list[generator_pb2.NumberChange]:
    return [generator_pb2.NumberChange(measure=c.measure, action=c.action, before=c.before, after=c.after,
                                       reason=c.reason) for c in changes]


def _findings(text: str) -> tuple[str, ...]:
    from cmr.reports import label_sentence

    stated = label_sentence(text).stated()
    return tuple(f for f in FINDINGS if f in stated and stated[f].state == "present")


def decoding_of(options: generator_pb2.DecodingOptions) -> Decoding:
    """The request's decoding options (zero = default), checked against the limits: INVALID_ARGUMENT
    names the bad one."""
    if options.strategy not in _STRATEGIES:
        raise InvalidArgument(f"unknown decoding strategy {options.strategy}")
    if options.beam_width > MAX_BEAM_WIDTH:
        raise InvalidArgument(f"beam_width {options.beam_width}: at most {MAX_BEAM_WIDTH}")
    if options.max_sentences > MAX_SENTENCES_LIMIT:
        raise InvalidArgument(f"max_sentences {options.max_sentences}: at most {MAX_SENTENCES_LIMIT}")
    if options.max_tokens > MAX_TOKENS_LIMIT:
        raise InvalidArgument(f"max_tokens {options.max_tokens}: at most {MAX_TOKENS_LIMIT}")
    t = options.temperature
    if not math.isfinite(t) or t < 0 or t > MAX_TEMPERATURE:
        raise InvalidArgument(f"temperature {t}: must be in (0, {MAX_TEMPERATURE}] (0 = default 1.0)")
    try:
        return Decoding(strategy=_STRATEGIES[options.strategy], beam_width=options.beam_width or 4,
                        temperature=float(t) or 1.0, seed=int(options.seed),
                        max_sentences=options.max_sentences or None, max_tokens=options.max_tokens or None)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """`loader` reads studies for CMR-TARGET; when it measures (`loader.measuring`), the service measures the
    studies whose images it can reach and has no measurements for (`no_measuring_reason` says why it cannot
    otherwise)."""

    def __init__(self, search: SearchClient, drafter: TargetDrafter | None, loader: StudyLoaderPool | None,
                 locator: StudyLocator, roots: Sequence[Path], neighbours: int, load_timeout_s: float, *,
                 no_measuring_reason: str = "measuring is off on this server (CMR_MEASURE=false)") -> None:
        self.search = search
        self.drafter = drafter
        self.loader = loader
        self.locator = locator
        self.roots = list(roots)
        self.neighbours = neighbours
        self.load_timeout_s = load_timeout_s
        self.no_measuring_reason = no_measuring_reason
        self._measuring = ThreadPoolExecutor(max_workers=4, thread_name_prefix="draft-measure")

    @property
    def measures(self) -> bool:
        return self.loader is not None and self.loader.measuring

    def close(self) -> None:
        self._measuring.shutdown(wait=False, cancel_futures=True)

    # -- helpers ----------------------------------------------------------------------------------------

    def _remote(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as exc:
            raise RemoteError(what, exc) from exc

    @staticmethod
    def _check_study(study: common_pb2.StudyQuery) -> str:
        which = study.WhichOneof("study")
        if which is None:
            raise InvalidArgument("no study: set study.study_key, study.embedding or study.ref")
        if which == "study_key" and not is_study_key(study.study_key):
            raise InvalidArgument(f"study_key must be 32 lower-case hex characters, got {study.study_key[:40]!r}")
        return which

    def _neighbours(self, study: common_pb2.StudyQuery, k: int) -> list[Neighbour]:
        # include_self=False: drafting an indexed study must not hand back its own report.
        request = search_pb2.SearchByStudyRequest(study=study, top_k=k, include_self=False)
        response = self._remote("search service", lambda: self.search.stub.SearchByStudy(
            request, timeout=self.search.timeout_s))
        hits = [Neighbour(r.study_key, r.impression, r.score) for r in response.nearest_reports if r.impression]
        if not hits:
            raise NotFound("no indexed study with a report to draft from (index some studies with reports first)")
        return hits

    def _retrieval(self, study: common_pb2.StudyQuery, mode: str, k: int) -> tuple[Iterator[Sentence], common_pb2.ModelInfo]:
        neighbours = self._neighbours(study, 1 if mode == "retrieval" else k)
        draft: list[DraftSentence] = nearest_draft(neighbours) if mode == "retrieval" else consensus_draft(neighbours)
        model = common_pb2.ModelInfo(name=f"{mode}-draft", version=f"{mode}@k{len(neighbours)}")
        return iter([Sentence(s.text, s.findings, s.sources) for s in draft]), model

    def _study_source(self, study: common_pb2.StudyQuery) -> Path:
        which = study.WhichOneof("study")
        if which == "ref":
            return resolve_ref(study.ref, self.roots)
        if which == "study_key":
            path = self.locator.locate(study.study_key)
            if path is None:
                raise NotFound(f"study {study.study_key} is not under the study folders this service may read "
                               "(CMR_STUDY_ROOTS): CMR-TARGET needs its images; send a StudyRef instead")
            return path
        raise InvalidArgument("CMR-TARGET drafts from the images: give a study key or a study reference, not an "
                              "embedding (retrieval modes accept embeddings)")

    def _target(self, study: common_pb2.StudyQuery, decoding: Decoding, grounding: Grounding | None
                ) -> tuple[Iterator[Sentence], common_pb2.ModelInfo, Grounding | None]:
        if self.drafter is None or self.loader is None:
            raise Unavailable("CMR-TARGET is not loaded on this server (no checkpoint for the served CMR-CLIP "
                              "model); use mode RETRIEVAL or CONSENSUS")
        try:
            decoding = decoding.resolve(self.drafter.generator.config.model)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        source = self._study_source(study)
        if grounding is None and self.measures:
            # measured in the worker that reads the study: the pixels never cross processes twice
            try:
                loaded = self.loader.load_measured(source, timeout_s=self.load_timeout_s)
                exam = loaded.exam
                if loaded.measured is not None:
                    if loaded.measured.error is not None:
                        log.warning("measuring a study failed (%s); drafting without measurements",
                                    loaded.measured.error)
                    grounding = Grounding(loaded.measured.measurements, "measured")
            except DeadlineExceeded:
                log.warning("reading and measuring a study took longer than %.0f s; drafting without measurements",
                            self.load_timeout_s)
                exam = self.loader.load(source, timeout_s=self.load_timeout_s)
                grounding = Grounding(None, "none", "measuring took longer than this server allows")
            except Exception as exc:  # noqa: BLE001 - e.g. the worker died measuring: read it again, unmeasured
                log.warning("reading and measuring a study failed (%s); reading it without measuring",
                            type(exc).__name__)
                exam = self.loader.load(source, timeout_s=self.load_timeout_s)  # a study it cannot read raises here
                grounding = Grounding(None, "none", f"measuring failed on this server ({type(exc).__name__})")
        else:
            exam = self.loader.load(source, timeout_s=self.load_timeout_s)
        model = common_pb2.ModelInfo(name=self.drafter.name, version=self.drafter.version)
        measured = None if grounding is None or grounding.measurements is None else grounding.measurements.values()
        sentences = (Sentence(s.text, s.findings) for s in self.drafter.draft(exam, decoding, measured))
        return sentences, model, grounding

    # -- measurements -----------------------------------------------------------------------------------------

    def _indexed(self, study_key: str) -> Grounding | None:
        """The measurements the index stores for the study (None: not indexed, never measured, search down)."""
        try:
            response = self.search.stub.Get(search_pb2.GetRequest(study_key=study_key),
                                            timeout=min(10.0, self.search.timeout_s))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                log.info("no measurements from the index for a draft (%s)", exc.code().name)
            return None
        if not response.exam.HasField("measurements"):
            return None
        m = measurements_from_proto(response.exam.measurements)
        return None if m is None else Grounding(m, "index")

    def _reachable(self, study: common_pb2.StudyQuery) -> Path | None:
        """The study's images on this server's disks, if there are any (never raises)."""
        try:
            which = study.WhichOneof("study")
            if which == "ref":
                return resolve_ref(study.ref, self.roots)
            if which == "study_key":
                return self.locator.locate(study.study_key)
        except Exception as exc:  # noqa: BLE001 - measuring is optional; the draft goes on without it
            log.info("no images to measure for a draft (%s)", type(exc).__name__)
        return None

    def _measure(self, source: Path) -> Grounding:
        """Measure a study in a decoder worker; never raises."""
        assert self.loader is not None
        try:
            loaded = self.loader.load_measured(source, timeout_s=self.load_timeout_s)
        except DeadlineExceeded:
            return Grounding(None, "none", "measuring took longer than this server allows")
        except Exception as exc:  # noqa: BLE001 - e.g. a study the loader refuses: the draft goes on
            log.info("measuring a study for a draft failed (%s)", type(exc).__name__)
            return Grounding(None, "none", f"the study could not be measured ({type(exc).__name__})")
        if loaded.measured is None:
            return Grounding(None, "none", self.no_measuring_reason)
        return Grounding(loaded.measured.measurements, "measured")

    def _no_measurements(self, study: common_pb2.StudyQuery) -> Grounding:
        which = study.WhichOneof("study")
        if which == "embedding":
            return Grounding(None, "none", "the query is an embedding: no images to measure")
        if not self.measures:
            return Grounding(None, "none", self.no_measuring_reason)
        return Grounding(None, "none", "the study's images are not on this server (CMR_STUDY_ROOTS) and the "
                         "index has no measurements for it")

    def _given(self, request: generator_pb2.GenerateReportRequest) -> Grounding | None:
        if not request.HasField("measurements"):
            return None
        m = measurements_from_proto(request.measurements)
        if m is None:
            return None
        if m.quality not in ("ok", "check", "failed"):
            raise InvalidArgument(f"measurements.quality must be ok, check or failed, not {m.quality!r}")
        return Grounding(m, "request")

    def _grounded(self, sentences: Iterator[Sentence], grounding: Grounding
                  ) -> Iterator[tuple[Sentence | None, GroundedSentence]]:
        """The draft's sentences grounded in the measurements, each with what grounding did to it; sources
        carried over, findings read again. A dropped sentence (nothing left but a removed number) comes with
        None."""
        drafted: list[Sentence] = []

        def texts() -> Iterator[str]:
            for s in sentences:
                if s.text.strip():
                    drafted.append(s)
                    yield s.text

        for g in ground_draft(texts(), grounding.measurements, missing_reason=grounding.reason or
                              "no measurements for this study"):
            if g.dropped:
                yield None, g
                continue
            sources = drafted[g.input_index].sources if g.input_index is not None else ()
            yield Sentence(g.text, _findings(g.text), sources), g

    # -- RPC ----------------------------------------------------------------------------------------------

    @rpc_errors
    def GenerateReport(self, request: generator_pb2.GenerateReportRequest,
                       context: grpc.ServicerContext) -> Iterator[generator_pb2.ReportSentence]:
        if request.mode not in _MODES:
            raise InvalidArgument(f"unknown draft mode {request.mode}")
        mode = _MODES[request.mode]
        self._check_study(request.study)
        decoding = decoding_of(request.decoding)
        k = request.decoding.neighbours or self.neighbours
        if k > MAX_NEIGHBOURS:
            raise InvalidArgument(f"neighbours {k}: at most {MAX_NEIGHBOURS}")
        grounding = self._given(request)
        if grounding is None and request.study.WhichOneof("study") == "study_key":
            grounding = self._indexed(request.study.study_key)
        if mode == "target":
            sentences, model, grounding = self._target(request.study, decoding, grounding)
        else:
            pending: Future[Grounding] | None = None
            source = self._reachable(request.study) if grounding is None and self.measures else None
            if source is not None:
                pending = self._measuring.submit(self._measure, source)  # beside the search
            sentences, model = self._retrieval(request.study, mode, k)
            if pending is not None:
                remaining = context.time_remaining()
                try:
                    grounding = pending.result(timeout=None if remaining is None else max(remaining - 1.0, 0.1))
                except FutureTimeout:
                    grounding = Grounding(None, "none", "measuring took longer than the request's deadline")
        if grounding is None:
            grounding = self._no_measurements(request.study)
        # a limit the client set counts every sentence; the default one leaves room for grounding's own two
        limit = decoding.max_sentences or MAX_SENTENCES_LIMIT + 2
        index = 0
        dropped: list[NumberChange] = []  # the numbers of dropped sentences, so far

        def message(n: int, sentence: Sentence, g: GroundedSentence, last: bool) -> generator_pb2.ReportSentence:
            return generator_pb2.ReportSentence(
                index=n, text=sentence.text, findings=list(sentence.findings),
                source_study_keys=list(sentence.sources), last=last, model=model, grounding=_changes(g.changes),
                review=list(g.review), kind=g.kind, dropped=_changes(dropped) if last else (),
                **(grounding.first_fields() if n == 1 else {}))  # type: ignore[arg-type]

        held: tuple[Sentence, GroundedSentence] | None = None  # the look-ahead: sent once the next is known
        for sentence, g in self._grounded(sentences, grounding):
            if not context.is_active():
                return  # the client went away: stop drafting
            if sentence is None:
                dropped.extend(g.changes)
                continue
            if held is not None:
                index += 1
                yield message(index, *held, last=False)
            held = (sentence, g)
            if index + 1 >= limit:  # the last one the client gets: sent without drafting further
                yield message(index + 1, *held, last=True)
                return
        if held is not None:
            yield message(index + 1, *held, last=True)


__all__ = ["GeneratorServicer", "Grounding", "Sentence", "decoding_of"]
