"""The gRPC GeneratorService: the impression of a study, drafted by retrieval (the nearest indexed study's
impression, or a consensus of the k nearest) or by CMR-TARGET, streamed sentence by sentence.

Retrieval asks the search service for the nearest reports (a study-key query never retrieves the study's own
report). CMR-TARGET needs the images: a StudyRef the server may read, or a study key the study locator finds
under CMR_STUDY_ROOTS; an embedding alone is refused for it (INVALID_ARGUMENT), and a study that cannot be
found is NOT_FOUND.

Each sentence is sent as soon as the next one is known (one sentence of look-ahead), so the last carries
`last = true` and a client never waits for an end marker.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from cmr.dicom.locator import StudyLocator
from cmr.generator import Decoding
from cmr.generator.config import MAX_SENTENCES_LIMIT, MAX_TOKENS_LIMIT
from cmr.generator.decoding import MAX_BEAM_WIDTH, MAX_TEMPERATURE
from cmr.rpc.errors import InvalidArgument, NotFound, RemoteError, Unavailable, rpc_errors
from cmr.v1 import common_pb2, generator_pb2, generator_pb2_grpc, search_pb2
from encoder_svc.study_loading import StudyLoaderPool
from encoder_svc.uploads import resolve_ref
from generator_svc.retrieval import DraftSentence, Neighbour, consensus_draft, nearest_draft
from generator_svc.target import TargetDrafter
from search_svc.client import SearchClient

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_NEIGHBOURS = 50
_STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")
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


def _with_last(sentences: Iterator[T]) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is the last, one item of look-ahead."""
    it = iter(sentences)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, search: SearchClient, drafter: TargetDrafter | None, loader: StudyLoaderPool | None,
                 locator: StudyLocator, roots: Sequence[Path], neighbours: int, load_timeout_s: float) -> None:
        self.search = search
        self.drafter = drafter
        self.loader = loader
        self.locator = locator
        self.roots = list(roots)
        self.neighbours = neighbours
        self.load_timeout_s = load_timeout_s

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
        if which == "study_key" and not _STUDY_KEY.match(study.study_key):
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

    def _target(self, study: common_pb2.StudyQuery, decoding: Decoding) -> tuple[Iterator[Sentence], common_pb2.ModelInfo]:
        if self.drafter is None or self.loader is None:
            raise Unavailable("CMR-TARGET is not loaded on this server (no checkpoint for the served CMR-CLIP "
                              "model); use mode RETRIEVAL or CONSENSUS")
        try:
            decoding = decoding.resolve(self.drafter.generator.config.model)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        source = self._study_source(study)
        exam = self.loader.load(source, timeout_s=self.load_timeout_s)
        model = common_pb2.ModelInfo(name=self.drafter.name, version=self.drafter.version)
        sentences = (Sentence(s.text, s.findings) for s in self.drafter.draft(exam, decoding))
        return sentences, model

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
        if mode == "target":
            sentences, model = self._target(request.study, decoding)
        else:
            sentences, model = self._retrieval(request.study, mode, k)
        limit = decoding.max_sentences or MAX_SENTENCES_LIMIT
        index = 0
        for sentence, last in _with_last(sentences):
            if not context.is_active():
                return  # the client went away: stop drafting
            index += 1
            last = last or index >= limit
            yield generator_pb2.ReportSentence(index=index, text=sentence.text, findings=list(sentence.findings),
                                               source_study_keys=list(sentence.sources), last=last, model=model)
            if last:
                return


__all__ = ["GeneratorServicer", "Sentence", "decoding_of"]
