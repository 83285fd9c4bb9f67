"""The gRPC SearchService: text to scan, scan to scan and to report, zero-shot, few-shot, cohorts, and index
maintenance, over the exam index and the encoder service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
from numpy.typing import NDArray

from cmr.findings import Calibration, ZeroShotClassifier
from cmr.model.inference import MAX_TEXT_CHARS
from cmr.model.runtime import ModelIdentity
from cmr.model.text_runtime import TextEmbedder
from cmr.quant.proto import from_proto as measurements_from_proto
from cmr.quant.proto import to_proto as measurements_to_proto
from cmr.rpc.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RemoteError,
    ResourceExhausted,
    Unavailable,
    rpc_errors,
)
from cmr.rpc.keys import is_study_key
from cmr.rpc.messages import from_vector, to_vector
from cmr.v1 import common_pb2, search_pb2, search_pb2_grpc
from encoder_svc.client import EncoderClient
from search_svc import cohort as cohorts
from search_svc.few_shot import LOGISTIC, PROTOTYPE, FewShotClassifier
from search_svc.admin.router import IndexRouter, Served
from search_svc.index import ExamEntry, ExamIndex
from search_svc.query_text import QueryText
from search_svc.store import ExamFilter, ExamMeasurements, ExamPayload, MeasureRange, StoreError
from search_svc.store.live_index import IndexState
from search_svc.why import QueryParts, stored_parts, text_why

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TOP_K = 10
MAX_TOP_K = 200
MAX_UPSERT = 512
MAX_EXAMPLES = 1000
DEFAULT_PAGE = 50
MAX_PAGE = 1000
EXPORT_CHUNK = 1024 * 1024
BACKGROUND_NEGATIVES = 200  # few-shot with positives only: a sample of the index stands in as negatives


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
                                 impression=p.impression, labels=list(p.labels), model_version=p.model_version,
                                 measurements=measurements_message(p.measurements))


def measurements_message(m: ExamMeasurements | None) -> common_pb2.CardiacMeasurements | None:
    """The stored measurements as the contract's message; None (field unset) for an exam never measured."""
    return None if m is None else measurements_to_proto(m.to_measurements())


def stored_measurements(msg: common_pb2.CardiacMeasurements) -> ExamMeasurements | None:
    """An upsert's measurements as stored; None for an empty message (the sender did not measure).
    ValueError for values the payload refuses (unknown names, NaN, bad quality)."""
    m = measurements_from_proto(msg)
    if m is None:
        if msg.ByteSize():
            raise ValueError("values without a quality: set quality ('ok', 'check' or 'failed') and model, as "
                             "cmr.quant.proto.to_proto does")
        return None
    return ExamMeasurements.from_measurements(m)


def _f32(value: float) -> float:
    """A proto float (32-bit) bound as the decimal it was written as: 35.3 arrives as 35.29999923706055 and
    would exclude a stored 35.3 from `<= 35.3`."""
    return float(str(np.float32(value)))


def measure_ranges(ranges: Sequence[common_pb2.MeasurementRange]) -> tuple[MeasureRange, ...]:
    out = []
    for i, r in enumerate(ranges):
        try:
            out.append(MeasureRange(r.measure.strip(), _f32(r.min) if r.HasField("min") else None,
                                    _f32(r.max) if r.HasField("max") else None))
        except ValueError as exc:
            raise InvalidArgument(f"filter.measurements[{i}]: {exc}") from exc
    return tuple(out)


def exam_filter(f: search_pb2.SearchFilter, exclude: Sequence[str] = ()) -> ExamFilter:
    ranges = measure_ranges(f.measurements)
    try:
        return ExamFilter(vendors=tuple(v.lower() for v in f.vendors), field_strengths_t=tuple(f.field_strengths_t),
                          date_from=f.date_from or None, date_to=f.date_to or None, views_all=tuple(f.views_all),
                          labels_all=tuple(f.labels_all), labels_none=tuple(f.labels_none), measurements=ranges,
                          study_keys_none=tuple(exclude))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"filter: {exc}") from exc


def model_info(served: Served) -> common_pb2.ModelInfo:
    """The model whose vectors answered: the generation searched (not necessarily the one the service loads)."""
    g = served.generation
    return common_pb2.ModelInfo(name=g.model_version.split("@")[0], version=g.model_version, embed_dim=g.dim)


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    # The live index's report (SearchServer sets it where a LiveIndexer runs): Stats carries it.
    index_states: Callable[[], list[IndexState]] = staticmethod(list)

    def __init__(self, router: IndexRouter, encoder: EncoderClient, identity: ModelIdentity,
                 calibration: Calibration | None, limits: SearchLimits | None = None,
                 calibration_for: Callable[[str], Calibration | None] | None = None,
                 store_parts: bool = True, text: QueryText | None = None) -> None:
        """router: the index generations (search_svc/admin/router.py): queries embedded by the encoder go to
        the generation of the encoder's model version, everything else to the active one.
        calibration_for(model_version): the zero-shot calibration of another generation's model.
        store_parts: keep upserts' embedding parts (settings.store_embedding_parts; checked either way).
        text: query text embedded in this process (search_svc/query_text.py); None = by the encoder service."""
        self.router = router
        self.store_parts = store_parts
        self.encoder = encoder
        self.text = text
        self.identity = identity
        self.calibration = calibration
        self.limits = limits or SearchLimits()
        self._calibration_for = calibration_for or (
            lambda v: calibration if calibration is not None and calibration.model_version == v else None)
        self._classifiers: dict[str, ZeroShotClassifier] = {}  # per model version
        self._classifier_lock = threading.Lock()
        self._encoder_version = identity.version  # last version the encoder reported (used while it is away)
        self._cohorts = cohorts.CohortCache()
        self._generation = 0  # bumped by every write and switch, so cached cohorts never outlive what they saw

    @property
    def index(self) -> ExamIndex:
        """The active generation's index."""
        return self.router.active().index

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

    def _local_text(self) -> TextEmbedder | None:
        """The in-process text model, while a generation holds its vectors; None = the encoder's model answers
        (no in-process model, or an upgrade rolled the encoder to a model this service does not load)."""
        local = self.text.embedder() if self.text is not None else None
        if local is None or self.router.for_version(local.version) is None:
            return None
        return local

    def _embed_texts(self, texts: list[str]) -> tuple[NDArray[np.float32], str]:
        """(vectors, the model version that made them): in process (cached) or by the encoder service."""
        local = self._local_text()
        if local is not None and self.text is not None:
            try:
                return self.text.encode(local, texts), local.version
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from exc
        try:
            vecs, version = self._remote("encoder service", lambda: self.encoder.encode_texts_versioned(texts))
        except RuntimeError as exc:  # the encoder was rolled to another model in the middle of the batch
            raise Unavailable(str(exc)) from exc
        self._encoder_version = version
        return vecs, version

    def _served_for(self, version: str) -> Served:
        """The generation that holds vectors of `version` (the model that embedded the query)."""
        served = self.router.for_version(version)
        if served is None:
            known = sorted(g.model_version for g in self.router.table.generations.values())
            raise FailedPrecondition(f"the encoder serves {version} and no index generation holds its vectors "
                                     f"(generations: {known}): finish the upgrade, or roll the encoder back")
        return served

    def _current_encoder_version(self) -> str:
        try:
            self._encoder_version = self.encoder.model_info().model.version
        except grpc.RpcError:
            pass  # the encoder is away: the version it last served (study-key queries need no encoder)
        return self._encoder_version

    def _text_version(self) -> str:
        """The model version text is embedded with right now."""
        local = self._local_text()
        return local.version if local is not None else self._current_encoder_version()

    def classifier(self, version: str | None = None) -> ZeroShotClassifier:
        """Prompt ensembles of one model version, embedded once through the encoder service (on first use:
        the encoder may start after this service, and is rolled to a new model during an upgrade)."""
        version = version or self._text_version()
        with self._classifier_lock:
            clf = self._classifiers.get(version)
            if clf is None:
                made: set[str] = set()

                def embed(texts: list[str]) -> NDArray[np.float32]:
                    vecs, v = self._embed_texts(texts)
                    made.add(v)
                    return vecs

                clf = ZeroShotClassifier.build(embed, self._calibration_for(version))
                if made != {version}:
                    raise Unavailable(f"the encoder serves {sorted(made)}, not {version}, right now; retry")
                self._classifiers[version] = clf
            return clf

    def _top_k(self, requested: int) -> int:
        if requested > self.limits.max_top_k:
            raise ResourceExhausted(f"top_k {requested} is over the limit of {self.limits.max_top_k}")
        return requested or DEFAULT_TOP_K

    def _study_vector(self, q: common_pb2.StudyQuery,
                      served: Served) -> tuple[NDArray[np.float32], str | None, Served]:
        """The vector of a StudyQuery, for an indexed study its key, and the generation to search with it:
        `served` for a study key (looked up there) or a raw embedding; for a study the encoder reads, the
        generation of the encoder's model."""
        vec, own, served, _ = self._study_query(q, served, explain=False)
        return vec, own, served

    def _study_query(self, q: common_pb2.StudyQuery, served: Served, explain: bool = True,
                     ) -> tuple[NDArray[np.float32], str | None, Served, QueryParts | None]:
        """As _study_vector, with the query's embedding parts (when `explain`): those the encoder returned for
        a study it read, or those stored with an indexed study; None where there are none (a CLS model, a
        study indexed without parts, a raw embedding)."""
        which = q.WhichOneof("study")
        if which == "study_key":
            self._keys([q.study_key], "study_key")
            record = served.index.get(q.study_key, with_vector=True, with_parts=explain)
            if record is None or record.vector is None:
                raise NotFound(f"no indexed study with key {q.study_key!r}")
            parts = QueryParts.stored(record.payload.parts, served.generation.dim) if explain else None
            return record.vector, q.study_key, served, parts
        if which == "embedding":
            try:
                v = from_vector(q.embedding, served.generation.dim)
            except ValueError as exc:
                raise InvalidArgument(f"embedding: {exc}") from exc
            # the norm, as the store computes it, must be finite and non-zero: denormal values pass np.any but
            # normalise to nothing (found by fuzzing: the store's ValueError surfaced as INTERNAL)
            if not np.all(np.isfinite(v)) or not 0.0 < float(np.dot(v, v)) < np.inf:
                raise InvalidArgument("embedding must be finite, not all zeros and not too large to normalise")
            return v, None, served, None
        if which == "ref":
            ref = q.ref
            enc = self._remote("encoder service", lambda: self.encoder.encode_study_ref(
                path=ref.path if ref.WhichOneof("location") == "path" else None,
                uri=ref.uri if ref.WhichOneof("location") == "uri" else None))
            enc_served = self._served_for(enc.model.version)
            parts = QueryParts.of(getattr(enc, "parts", ()), enc_served.generation.dim)
            return enc.embedding, None, enc_served, parts
        raise InvalidArgument("study: set study_key, embedding or ref")

    @staticmethod
    def _keys(keys: Sequence[str], what: str) -> list[str]:
        bad = [k for k in keys if not is_study_key(k)]
        if bad:
            raise InvalidArgument(f"{what}: {bad[:3]} are not study keys (32 lower-case hex characters)")
        return list(keys)

    def bump(self) -> None:
        """Forget cached cohorts (after a write, or a switch of the active generation)."""
        self._generation += 1

    # --- search --------------------------------------------------------------------------------------------
    @rpc_errors
    def SearchByText(self, request: search_pb2.SearchByTextRequest,
                     context: grpc.ServicerContext) -> search_pb2.SearchByTextResponse:
        query = self._text(request.query)
        top_k = self._top_k(request.top_k)
        flt = exam_filter(request.filter)
        vecs, version = self._embed_texts([query])
        served = self._served_for(version)
        # the hits' stored parts come along (a page of hits, ~10 KB each): each says why it matched the text
        hits = served.index.search_exams(vecs[0], top_k, flt, offset=min(request.offset, 10_000), with_parts=True)
        return search_pb2.SearchByTextResponse(
            hits=[search_pb2.ExamHit(exam=exam_record(h.payload), score=h.score,
                                     why=text_why(h.payload.parts, vecs[0])) for h in hits],
            model=model_info(served))

    @rpc_errors
    def SearchByStudy(self, request: search_pb2.SearchByStudyRequest,
                      context: grpc.ServicerContext) -> search_pb2.SearchByStudyResponse:
        top_k = self._top_k(request.top_k)
        vec, own, served, parts = self._study_query(request.study, self.router.active())
        exclude = [own] if own and not request.include_self else []
        flt = exam_filter(request.filter, exclude)
        # the hits' vectors only when there is something to explain (top_k of them, from the same search)
        exams = served.index.search_exams(vec, top_k, flt, with_vectors=parts is not None)
        reports = served.index.search_reports(vec, top_k, flt)
        return search_pb2.SearchByStudyResponse(
            similar_exams=[search_pb2.ExamHit(exam=exam_record(h.payload), score=h.score,
                                              why=parts.why(h.vector) if parts is not None else [])
                           for h in exams],
            nearest_reports=[search_pb2.ReportHit(study_key=h.payload.study_key, impression=h.payload.impression,
                                                  score=h.score) for h in reports],
            model=model_info(served))

    # --- classification ------------------------------------------------------------------------------------
    @rpc_errors
    def ZeroShot(self, request: search_pb2.ZeroShotRequest,
                 context: grpc.ServicerContext) -> search_pb2.ZeroShotResponse:
        # The prompts are embedded by the encoder: the study's vector must come from the same model's generation.
        version = self._text_version()
        clf = self.classifier(version)
        vec, _, served = self._study_vector(request.study, self._served_for(version))
        if served.generation.model_version != version:
            raise FailedPrecondition(f"the study was encoded by {served.generation.model_version} while the zero-shot "
                                     f"prompts are embedded by {version}; retry")
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
        return search_pb2.ZeroShotResponse(scores=scores, calibration=clf.calibration_note(), model=model_info(served))

    def _example_vectors(self, index: ExamIndex, keys: Sequence[str], what: str) -> NDArray[np.float32]:
        self._keys(keys, what)
        records = index.get_many(list(dict.fromkeys(keys)))
        found = {r.payload.study_key for r in records}
        missing = [k for k in keys if k not in found]
        if missing:
            raise NotFound(f"{what}: no indexed study with key(s) {missing[:5]}")
        return np.stack([r.vector for r in records if r.vector is not None])

    def _background(self, index: ExamIndex, exclude: set[str]) -> NDArray[np.float32]:
        vecs: list[NDArray[np.float32]] = []
        for page in index.iter_exams():
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
        served = self.router.active()
        pos = self._example_vectors(served.index, request.positive_keys, "positive_keys")
        neg = (self._example_vectors(served.index, request.negative_keys, "negative_keys") if request.negative_keys
               else self._background(served.index, set(request.positive_keys)))
        method = LOGISTIC if request.method == search_pb2.FEW_SHOT_METHOD_LOGISTIC else PROTOTYPE
        clf = FewShotClassifier(pos, neg, method)
        target = request.WhichOneof("target")
        if target == "study":
            vec, _, _ = self._study_vector(request.study, served)
            return search_pb2.FewShotResponse(probability=float(clf.probabilities(vec)[0]), method=method,
                                              model=model_info(served))
        if target != "whole_index" or not request.whole_index:
            raise InvalidArgument("target: set study, or whole_index = true")
        top_k = self._top_k(request.top_k)
        examples = set(request.positive_keys) | set(request.negative_keys)
        flt = exam_filter(request.filter, sorted(examples))
        ranked: list[tuple[float, ExamPayload]] = []
        for page in served.index.iter_exams(flt):
            p = clf.probabilities(np.stack([r.vector for r in page]))
            ranked += [(float(pi), r.payload) for pi, r in zip(p, page)]
            ranked = sorted(ranked, key=lambda t: (-t[0], t[1].study_key))[:top_k]
        return search_pb2.FewShotResponse(
            ranked=[search_pb2.ExamHit(exam=exam_record(pl), score=pr) for pr, pl in ranked], method=method,
            model=model_info(served))

    # --- cohorts -------------------------------------------------------------------------------------------
    def _cohort(self, request: search_pb2.BuildCohortRequest) -> tuple[cohorts.Cohort, Served]:
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

        # Phrases are embedded by the encoder: scored on the generation of its model (cached per version).
        version = self._text_version()
        served = self._served_for(version)

        def build() -> cohorts.Cohort:
            clf = self.classifier(version)
            vecs, made = self._embed_texts(list(query.phrases))
            if made != version:
                raise Unavailable(f"the encoder changed model ({version} -> {made}) while building the cohort; retry")
            vectors = dict(zip(query.phrases, vecs))
            return cohorts.evaluate(query, served.index,
                                    lambda exams, ph: clf.phrase_probabilities(exams, vectors[ph]))

        return self._cohorts.get_or_build(query, build, f"{self._generation}:{version}"), served

    @rpc_errors
    def BuildCohort(self, request: search_pb2.BuildCohortRequest,
                    context: grpc.ServicerContext) -> search_pb2.CohortPage:
        if request.page_size > self.limits.max_page:
            raise ResourceExhausted(f"page_size {request.page_size} is over the limit of {self.limits.max_page}")
        size = request.page_size or DEFAULT_PAGE
        cohort, served = self._cohort(request)
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
            model=model_info(served))

    @rpc_errors
    def ExportCohort(self, request: search_pb2.ExportCohortRequest,
                     context: grpc.ServicerContext) -> Iterator[search_pb2.ExportChunk]:
        fmt = "parquet" if request.format == search_pb2.EXPORT_FORMAT_PARQUET else "csv"
        data, name, content_type = cohorts.export_bytes(self._cohort(request.cohort)[0], fmt)
        for off in range(0, max(len(data), 1), EXPORT_CHUNK):
            first = off == 0
            yield search_pb2.ExportChunk(data=data[off : off + EXPORT_CHUNK], file_name=name if first else "",
                                         content_type=content_type if first else "")

    # --- maintenance ---------------------------------------------------------------------------------------
    def _entry(self, i: int, e: search_pb2.ExamUpsert) -> tuple[ExamEntry, Served]:
        """The entry and the generation its vectors belong to (the one of their model version)."""
        if not e.study_instance_uid.strip():
            raise InvalidArgument(f"exam {i}: study_instance_uid is empty")
        served = self.router.for_version(e.model_version)
        if served is None:
            raise InvalidArgument(f"exam {i}: vectors of model {e.model_version or '(none)'} cannot join an index of "
                                  f"{self.router.active().generation.model_version}")
        dim = served.generation.dim
        try:
            image = from_vector(e.image_embedding, dim)
            report = from_vector(e.report_embedding, dim) if e.report_embedding.values else None
        except ValueError as exc:
            raise InvalidArgument(f"exam {i}: {exc}") from exc
        try:
            measurements = stored_measurements(e.measurements) if e.HasField("measurements") else None
        except ValueError as exc:
            raise InvalidArgument(f"exam {i}: measurements: {exc}") from exc
        try:
            # Checked even when not kept: a writer sending parts of another vector has a bug worth hearing of.
            parts = stored_parts(e.parts, image)
        except ValueError as exc:
            raise InvalidArgument(f"exam {i}: parts: {exc}") from exc
        return ExamEntry(study_instance_uid=e.study_instance_uid.strip(), image_embedding=image,
                         model_version=e.model_version, report_embedding=report, impression=e.impression,
                         study_date=e.study_date or None, manufacturer=e.vendor,
                         field_strength_t=e.field_strength_t or None, views=tuple(e.views),
                         labels=tuple(e.labels), measurements=measurements,
                         parts=parts if self.store_parts else None), served

    @rpc_errors
    def Upsert(self, request: search_pb2.UpsertRequest, context: grpc.ServicerContext) -> search_pb2.UpsertResponse:
        if not request.exams:
            raise InvalidArgument("no exams to upsert")
        if len(request.exams) > self.limits.max_upsert:
            raise ResourceExhausted(f"{len(request.exams)} exams in one request; the limit is {self.limits.max_upsert}")
        checked = [self._entry(i, e) for i, e in enumerate(request.exams)]  # all checked before any is written
        groups: dict[str, tuple[Served, list[ExamEntry]]] = {}
        for entry, served in checked:
            groups.setdefault(served.generation.name, (served, []))[1].append(entry)
        created = updated = 0
        try:
            for served, entries in groups.values():
                _, c, u = served.index.upsert(entries)
                created, updated = created + c, updated + u
        except (ValueError, TypeError) as exc:  # payload validation (dates, views, labels, vectors)
            raise InvalidArgument(str(exc)) from exc
        keys = [served.index.key_of(entry.study_instance_uid) for entry, served in checked]
        self.bump()
        return search_pb2.UpsertResponse(study_keys=keys, created=created, updated=updated)

    @rpc_errors
    def Delete(self, request: search_pb2.DeleteRequest, context: grpc.ServicerContext) -> search_pb2.DeleteResponse:
        if not request.study_keys:
            raise InvalidArgument("no study keys to delete")
        # Every generation: a deleted study must not come back with a switch or a rollback.
        keys = self._keys(request.study_keys, "study_keys")
        active = self.router.active().generation.name
        deleted = {s.generation.name: s.index.delete(keys) for s in self.router.all()}
        self.bump()
        deleted = deleted[active]
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
        served = self.router.active()
        exams, reports, vendors, versions = served.index.stats()
        return search_pb2.StatsResponse(exams=exams, reports=reports, backend=served.index.store.backend,
                                        by_vendor=vendors, model_versions=versions, model=model_info(served),
                                        index=[index_state_message(s) for s in self.index_states()],
                                        query_cache=self._query_cache_stats())

    def _query_cache_stats(self) -> search_pb2.QueryCacheStats | None:
        local = self.text.embedder() if self.text is not None else None
        if local is None or self.text is None:
            return None
        c = self.text.counts()
        return search_pb2.QueryCacheStats(runtime=local.runtime, hits=c.hits, misses=c.misses, size=c.size,
                                          capacity=c.capacity)


def index_state_message(state: IndexState) -> search_pb2.IndexState:
    return search_pb2.IndexState(collection=state.collection, points=state.points, unindexed=state.unindexed,
                                 building=state.building, builds=state.builds,
                                 last_build_s=state.last_build_s or 0.0,
                                 last_build_finished_unix=state.last_build_finished or 0.0,
                                 last_error=state.last_error or "")

__all__ = ["SearchServicer", "SearchLimits", "StoreError", "exam_filter", "exam_record", "measure_ranges",
           "measurements_message", "stored_measurements"]
