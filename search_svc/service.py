"""The gRPC SearchService: text to scan, scan to scan and to report, zero-shot, few-shot, cohorts, and index
maintenance, over the exam index and the encoder service."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
from numpy.typing import NDArray

from cmr.findings import Calibration, ZeroShotClassifier
from cmr.model.inference import MAX_TEXT_CHARS
from cmr.rpc.errors import InvalidArgument, NotFound, RemoteError, ResourceExhausted, ServiceError, rpc_errors
from cmr.rpc.messages import from_vector, to_vector
from cmr.v1 import common_pb2, search_pb2, search_pb2_grpc
from encoder_svc.client import EncoderClient
from encoder_svc.runtime import ModelIdentity
from search_svc import cohort as cohorts
from search_svc.few_shot import LOGISTIC, PROTOTYPE, FewShotClassifier
from search_svc.index import ExamEntry, ExamIndex
from search_svc.store import ExamFilter, ExamPayload, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TOP_K = 10
MAX_TOP_K = 200
MAX_UPSERT = 512
MAX_EXAMPLES = 1000
DEFAULT_PAGE = 50
MAX_PAGE = 1000
EXPORT_CHUNK = 1024 * 1024
BACKGROUND_NEGATIVES = 200
_STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")  # few-shot with positives only: a sample of the index stands in as negatives


@dataclass(frozen=True)
class SearchLimits:
    max_top_k: int = MAX_TOP_K
    max_upsert: int = MAX_UPSERT
    max_examples: int = MAX_EXAMPLES
    max_page: int = MAX_PAGE
    max_text_chars: int = MAX_TEXT_CHARS


def exam_record(p: ExamPayload) -> search_pb2.ExamRecord:
    return search_pb2.ExamRecord(study_key=p.study_key, study_date=p.study_date or "", study_year=p.study_year or 0,
                                 vendor=p.vendor, field_strength_t=p.field_strength_t or 0.0, views=list(p.views),
                                 impression=p.impression, labels=list(p.labels), model_version=p.model_version)


def exam_filter(f: search_pb2.SearchFilter, exclude: Sequence[str] = ()) -> ExamFilter:
    try:
        return ExamFilter(vendors=tuple(v.lower() for v in f.vendors), field_strengths_t=tuple(f.field_strengths_t),
                          date_from=f.date_from or None, date_to=f.date_to or None, views_all=tuple(f.views_all),
                          labels_all=tuple(f.labels_all), labels_none=tuple(f.labels_none),
                          study_keys_none=tuple(exclude))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"filter: {exc}") from exc


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, index: ExamIndex, encoder: EncoderClient, identity: ModelIdentity,
                 calibration: Calibration | None, limits: SearchLimits | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.identity = identity
        self.calibration = calibration
        self.limits = limits or SearchLimits()
        self._classifier: ZeroShotClassifier | None = None
        self._classifier_lock = threading.Lock()
        self._cohorts = cohorts.CohortCache()
        self._generation = 0  # bumped by every write, so cached cohorts never outlive the data they saw
        self._model_info = common_pb2.ModelInfo(name=identity.name, version=identity.version,
                                                embed_dim=identity.embed_dim)

    # --- helpers -------------------------------------------------------------------------------------------
    def _remote(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as exc:
            raise RemoteError(what, exc) from exc

    def _text(self, text: str, what: str = "query") -> str:
        text = text.strip()
        if not text:
            raise InvalidArgument(f"empty {what}: give a phrase such as 'dilated left ventricle'")
        if len(text) > self.limits.max_text_chars:
            raise ResourceExhausted(f"{what} of {len(text)} characters; the limit is {self.limits.max_text_chars}")
        return text

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        return self._remote("encoder service", lambda: self.encoder.encode_texts(texts))

    def classifier(self) -> ZeroShotClassifier:
        """Prompt ensembles embedded once through the encoder service (on first use: the encoder may start
        after this service)."""
        with self._classifier_lock:
            if self._classifier is None:
                self._classifier = ZeroShotClassifier.build(self._embed_texts, self.calibration)
            return self._classifier

    def _top_k(self, requested: int) -> int:
        if requested > self.limits.max_top_k:
            raise ResourceExhausted(f"top_k {requested} is over the limit of {self.limits.max_top_k}")
        return requested or DEFAULT_TOP_K

    def _study_vector(self, q: common_pb2.StudyQuery) -> tuple[NDArray[np.float32], str | None]:
        """The vector of a StudyQuery and, for an indexed study, its key."""
        which = q.WhichOneof("study")
        if which == "study_key":
            self._keys([q.study_key], "study_key")
            record = self.index.get(q.study_key, with_vector=True)
            if record is None or record.vector is None:
                raise NotFound(f"no indexed study with key {q.study_key!r}")
            return record.vector, q.study_key
        if which == "embedding":
            try:
                v = from_vector(q.embedding, self.identity.embed_dim)
            except ValueError as exc:
                raise InvalidArgument(f"embedding: {exc}") from exc
            if not np.all(np.isfinite(v)) or not np.any(v):
                raise InvalidArgument("embedding must be finite and not all zeros")
            return v, None
        if which == "ref":
            ref = q.ref
            enc = self._remote("encoder service", lambda: self.encoder.encode_study_ref(
                path=ref.path if ref.WhichOneof("location") == "path" else None,
                uri=ref.uri if ref.WhichOneof("location") == "uri" else None))
            if enc.model.version != self.identity.version:
                raise ServiceError(f"the encoder serves {enc.model.version}, the index holds "
                                   f"{self.identity.version}: vectors would not be comparable")
            return enc.embedding, None
        raise InvalidArgument("study: set study_key, embedding or ref")

    @staticmethod
    def _keys(keys: Sequence[str], what: str) -> list[str]:
        bad = [k for k in keys if not _STUDY_KEY.match(k)]
        if bad:
            raise InvalidArgument(f"{what}: {bad[:3]} are not study keys (32 lower-case hex characters)")
        return list(keys)

    def _bump(self) -> None:
        self._generation += 1

    # --- search --------------------------------------------------------------------------------------------
    @rpc_errors
    def SearchByText(self, request: search_pb2.SearchByTextRequest,
                     context: grpc.ServicerContext) -> search_pb2.SearchByTextResponse:
        query = self._text(request.query)
        top_k = self._top_k(request.top_k)
        flt = exam_filter(request.filter)
        vec = self._embed_texts([query])[0]
        hits = self.index.search_exams(vec, top_k, flt, offset=min(request.offset, 10_000))
        return search_pb2.SearchByTextResponse(
            hits=[search_pb2.ExamHit(exam=exam_record(h.payload), score=h.score) for h in hits], model=self._model_info)

    @rpc_errors
    def SearchByStudy(self, request: search_pb2.SearchByStudyRequest,
                      context: grpc.ServicerContext) -> search_pb2.SearchByStudyResponse:
        top_k = self._top_k(request.top_k)
        vec, own = self._study_vector(request.study)
        exclude = [own] if own and not request.include_self else []
        flt = exam_filter(request.filter, exclude)
        exams = self.index.search_exams(vec, top_k, flt)
        reports = self.index.search_reports(vec, top_k, flt)
        return search_pb2.SearchByStudyResponse(
            similar_exams=[search_pb2.ExamHit(exam=exam_record(h.payload), score=h.score) for h in exams],
            nearest_reports=[search_pb2.ReportHit(study_key=h.payload.study_key, impression=h.payload.impression,
                                                  score=h.score) for h in reports],
            model=self._model_info)

    # --- classification ------------------------------------------------------------------------------------
    @rpc_errors
    def ZeroShot(self, request: search_pb2.ZeroShotRequest,
                 context: grpc.ServicerContext) -> search_pb2.ZeroShotResponse:
        vec, _ = self._study_vector(request.study)
        clf = self.classifier()
        wanted = list(dict.fromkeys(request.findings)) or clf.keys
        unknown = [f for f in wanted if f not in clf.keys and f"disease:{f}" not in clf.keys]
        if unknown:
            raise InvalidArgument(f"unknown findings {unknown}; known: {clf.keys}")
        probs, raw = clf.probabilities(vec)[0], clf.raw_scores(vec)[0]
        scores = []
        for key in wanted:
            j = clf.keys.index(key if key in clf.keys else f"disease:{key}")
            s = clf.sets[j]
            scores.append(common_pb2.FindingScore(finding=s.name, display=s.display, kind=s.kind,
                                                  probability=float(probs[j]), raw_score=float(raw[j])))
        return search_pb2.ZeroShotResponse(scores=scores, calibration=clf.calibration_note(), model=self._model_info)

    def _example_vectors(self, keys: Sequence[str], what: str) -> NDArray[np.float32]:
        self._keys(keys, what)
        records = self.index.get_many(list(dict.fromkeys(keys)))
        found = {r.payload.study_key for r in records}
        missing = [k for k in keys if k not in found]
        if missing:
            raise NotFound(f"{what}: no indexed study with key(s) {missing[:5]}")
        return np.stack([r.vector for r in records if r.vector is not None])

    def _background(self, exclude: set[str]) -> NDArray[np.float32]:
        vecs: list[NDArray[np.float32]] = []
        for page in self.index.iter_exams():
            vecs += [r.vector for r in page if r.vector is not None and r.payload.study_key not in exclude]
            if len(vecs) >= BACKGROUND_NEGATIVES:
                break
        if not vecs:
            raise InvalidArgument("no negative examples given and the index has no other exams to contrast with")
        return np.stack(vecs[:BACKGROUND_NEGATIVES])

    @rpc_errors
    def FewShot(self, request: search_pb2.FewShotRequest,
                context: grpc.ServicerContext) -> search_pb2.FewShotResponse:
        if not request.positive_keys:
            raise InvalidArgument("few-shot needs at least one positive example (positive_keys)")
        if len(request.positive_keys) + len(request.negative_keys) > self.limits.max_examples:
            raise ResourceExhausted(f"more than {self.limits.max_examples} examples")
        both = set(request.positive_keys) & set(request.negative_keys)
        if both:
            raise InvalidArgument(f"studies {sorted(both)[:5]} are both positive and negative examples")
        pos = self._example_vectors(request.positive_keys, "positive_keys")
        neg = (self._example_vectors(request.negative_keys, "negative_keys") if request.negative_keys
               else self._background(set(request.positive_keys)))
        method = LOGISTIC if request.method == search_pb2.FEW_SHOT_METHOD_LOGISTIC else PROTOTYPE
        clf = FewShotClassifier(pos, neg, method)
        target = request.WhichOneof("target")
        if target == "study":
            vec, _ = self._study_vector(request.study)
            return search_pb2.FewShotResponse(probability=float(clf.probabilities(vec)[0]), method=method,
                                              model=self._model_info)
        if target != "whole_index" or not request.whole_index:
            raise InvalidArgument("target: set study, or whole_index = true")
        top_k = self._top_k(request.top_k)
        examples = set(request.positive_keys) | set(request.negative_keys)
        flt = exam_filter(request.filter, sorted(examples))
        ranked: list[tuple[float, ExamPayload]] = []
        for page in self.index.iter_exams(flt):
            p = clf.probabilities(np.stack([r.vector for r in page]))
            ranked += [(float(pi), r.payload) for pi, r in zip(p, page)]
            ranked = sorted(ranked, key=lambda t: (-t[0], t[1].study_key))[:top_k]
        return search_pb2.FewShotResponse(
            ranked=[search_pb2.ExamHit(exam=exam_record(pl), score=pr) for pr, pl in ranked], method=method,
            model=self._model_info)

    # --- cohorts -------------------------------------------------------------------------------------------
    def _cohort(self, request: search_pb2.BuildCohortRequest) -> cohorts.Cohort:
        try:
            query = cohorts.CohortQuery(
                all_of=cohorts.phrases_of(request.all_of, "all_of", self.limits.max_text_chars),
                any_of=cohorts.phrases_of(request.any_of, "any_of", self.limits.max_text_chars),
                none_of=cohorts.phrases_of(request.none_of, "none_of", self.limits.max_text_chars),
                filter=exam_filter(request.filter), threshold=request.threshold or 0.5)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        if len(query.phrases) > 16:
            raise ResourceExhausted("more than 16 phrases in one cohort")

        def build() -> cohorts.Cohort:
            clf = self.classifier()
            vectors = dict(zip(query.phrases, self._embed_texts(list(query.phrases))))
            return cohorts.evaluate(query, self.index, lambda exams, ph: clf.phrase_probabilities(exams, vectors[ph]))

        return self._cohorts.get_or_build(query, build, self._generation)

    @rpc_errors
    def BuildCohort(self, request: search_pb2.BuildCohortRequest,
                    context: grpc.ServicerContext) -> search_pb2.CohortPage:
        if request.page_size > self.limits.max_page:
            raise ResourceExhausted(f"page_size {request.page_size} is over the limit of {self.limits.max_page}")
        size = request.page_size or DEFAULT_PAGE
        cohort = self._cohort(request)
        try:
            offset = cohorts.parse_page_token(request.page_token, cohort.query)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        page = cohort.members[offset : offset + size]
        nxt = offset + size
        return search_pb2.CohortPage(
            members=[search_pb2.CohortMember(exam=exam_record(m.payload), score=m.score, phrase_scores=m.phrase_scores)
                     for m in page],
            total=len(cohort.members),
            next_page_token=cohorts.page_token(cohort.query, nxt) if nxt < len(cohort.members) else "",
            model=self._model_info)

    @rpc_errors
    def ExportCohort(self, request: search_pb2.ExportCohortRequest,
                     context: grpc.ServicerContext) -> Iterator[search_pb2.ExportChunk]:
        fmt = "parquet" if request.format == search_pb2.EXPORT_FORMAT_PARQUET else "csv"
        data, name, content_type = cohorts.export_bytes(self._cohort(request.cohort), fmt)
        for off in range(0, max(len(data), 1), EXPORT_CHUNK):
            first = off == 0
            yield search_pb2.ExportChunk(data=data[off : off + EXPORT_CHUNK], file_name=name if first else "",
                                         content_type=content_type if first else "")

    # --- maintenance ---------------------------------------------------------------------------------------
    def _entry(self, i: int, e: search_pb2.ExamUpsert) -> ExamEntry:
        if not e.study_instance_uid.strip():
            raise InvalidArgument(f"exam {i}: study_instance_uid is empty")
        if e.model_version != self.identity.version:
            raise InvalidArgument(f"exam {i}: vectors of model {e.model_version or '(none)'} cannot join an index of "
                                  f"{self.identity.version}")
        try:
            image = from_vector(e.image_embedding, self.identity.embed_dim)
            report = from_vector(e.report_embedding, self.identity.embed_dim) if e.report_embedding.values else None
        except ValueError as exc:
            raise InvalidArgument(f"exam {i}: {exc}") from exc
        return ExamEntry(study_instance_uid=e.study_instance_uid.strip(), image_embedding=image,
                         model_version=e.model_version, report_embedding=report, impression=e.impression,
                         study_date=e.study_date or None, manufacturer=e.vendor,
                         field_strength_t=e.field_strength_t or None, views=tuple(e.views), labels=tuple(e.labels))

    @rpc_errors
    def Upsert(self, request: search_pb2.UpsertRequest, context: grpc.ServicerContext) -> search_pb2.UpsertResponse:
        if not request.exams:
            raise InvalidArgument("no exams to upsert")
        if len(request.exams) > self.limits.max_upsert:
            raise ResourceExhausted(f"{len(request.exams)} exams in one request; the limit is {self.limits.max_upsert}")
        entries = [self._entry(i, e) for i, e in enumerate(request.exams)]  # all checked before any is written
        try:
            keys, created, updated = self.index.upsert(entries)
        except (ValueError, TypeError) as exc:  # payload validation (dates, views, labels, vectors)
            raise InvalidArgument(str(exc)) from exc
        self._bump()
        return search_pb2.UpsertResponse(study_keys=keys, created=created, updated=updated)

    @rpc_errors
    def Delete(self, request: search_pb2.DeleteRequest, context: grpc.ServicerContext) -> search_pb2.DeleteResponse:
        if not request.study_keys:
            raise InvalidArgument("no study keys to delete")
        deleted = self.index.delete(self._keys(request.study_keys, "study_keys"))
        self._bump()
        return search_pb2.DeleteResponse(deleted=deleted)

    @rpc_errors
    def Get(self, request: search_pb2.GetRequest, context: grpc.ServicerContext) -> search_pb2.GetResponse:
        self._keys([request.study_key], "study_key")
        record = self.index.get(request.study_key, with_vector=request.with_vector)
        if record is None:
            raise NotFound(f"no indexed study with key {request.study_key!r}")
        vec = to_vector(record.vector) if request.with_vector and record.vector is not None else None
        return search_pb2.GetResponse(exam=exam_record(record.payload), image_embedding=vec)

    @rpc_errors
    def Stats(self, request: search_pb2.StatsRequest, context: grpc.ServicerContext) -> search_pb2.StatsResponse:
        exams, reports, vendors, versions = self.index.stats()
        return search_pb2.StatsResponse(exams=exams, reports=reports, backend=self.index.store.backend,
                                        by_vendor=vendors, model_versions=versions, model=self._model_info)


__all__ = ["SearchServicer", "SearchLimits", "StoreError", "exam_filter", "exam_record"]
