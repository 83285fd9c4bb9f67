"""The UI's only way to the platform: gRPC clients of the encoder, search and generator services, with every
gRPC error turned into a message a person can act on (`UiError`). No Streamlit here, so pages can be tested
with a fake that has the same methods."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import numpy as np

from cmr.config import Settings
from cmr.quant.proto import from_proto as measurements_from_proto
from cmr.quant.volumes import Measurements
from cmr.rpc.client import open_channel
from cmr.v1 import common_pb2, generator_pb2, generator_pb2_grpc, search_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

DRAFT_MODES = {"retrieval": generator_pb2.DRAFT_MODE_RETRIEVAL, "consensus": generator_pb2.DRAFT_MODE_CONSENSUS,
               "target": generator_pb2.DRAFT_MODE_TARGET}


class UiError(Exception):
    """A failure explained for the page (never a stack trace)."""

    def __init__(self, message: str, *, service: str = "", down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.down = down


def friendly(exc: grpc.RpcError, service: str, url: str, doing: str) -> UiError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return UiError(f"The {service} service is unavailable (not reachable at {url}). Start it with `cmr up` "
                       f"(or `cmr serve {service}`) and try again.", service=service, down=True)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UiError(f"The {service} service took too long while {doing}. The machine may be busy: try again "
                       "in a moment.", service=service)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return UiError(f"The {service} service at {url} does not offer this yet.", service=service, down=True)
    if code == grpc.StatusCode.INVALID_ARGUMENT:  # the service names what was wrong (e.g. a filter's field)
        return UiError(f"That did not work: {details or 'the ' + service + ' service refused the request'}",
                       service=service)
    if code == grpc.StatusCode.NOT_FOUND:
        return UiError(f"Not found: {details}", service=service)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return UiError(f"Too large: {details}", service=service)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UiError("Your session is no longer valid (expired or signed out): log in again.", service=service)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return UiError(f"Not allowed: {details}", service=service)
    log.warning("%s while %s: %s %s", service, doing, code, details)
    return UiError(f"The {service} service could not finish {doing} ({code.name}); its log has the details.",
                   service=service)


@dataclass(frozen=True)
class Exam:
    study_key: str
    score: float
    vendor: str
    field_strength_t: float
    study_date: str
    views: tuple[str, ...]
    impression: str
    labels: tuple[str, ...] = ()
    phrase_scores: dict[str, float] = field(default_factory=dict)
    measurements: Measurements | None = None  # measured at ingestion; None: never measured
    # Why it matched the query (ExamHit.why): (part, share) largest first; empty when the search gave none
    why: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, record: search_pb2.ExamRecord, score: float, phrase_scores: dict[str, float] | None = None,
           why: Sequence[search_pb2.MatchShare] = ()) -> Exam:
        return cls(record.study_key, float(score), record.vendor, float(record.field_strength_t), record.study_date,
                   tuple(record.views), record.impression, tuple(record.labels), dict(phrase_scores or {}),
                   measurements_of(record.measurements if record.HasField("measurements") else None),
                   tuple((w.part, float(w.share)) for w in why))


def measurements_of(msg: common_pb2.CardiacMeasurements | None) -> Measurements | None:
    return None if msg is None else measurements_from_proto(msg)


@dataclass(frozen=True)
class Report:
    study_key: str
    score: float
    impression: str


@dataclass(frozen=True)
class Finding:
    name: str
    display: str
    kind: str
    probability: float


@dataclass(frozen=True)
class Upload:
    """An uploaded study as the encoder read it."""

    embedding: np.ndarray
    study_instance_uid: str
    manufacturer: str
    field_strength_t: float
    slots_present: tuple[str, ...]
    slots_missing: tuple[str, ...]
    warnings: tuple[str, ...]
    measurements: Measurements | None = None  # EncodeStudy's; None when the encoder does not measure


@dataclass(frozen=True)
class Filters:
    vendors: tuple[str, ...] = ()
    field_strengths_t: tuple[float, ...] = ()
    date_from: str = ""
    date_to: str = ""
    views_all: tuple[str, ...] = ()
    measures: tuple[tuple[str, float | None, float | None], ...] = ()  # (measure, min, max); None = open
    where: str = ""  # more measurement conditions as the CLI's --where writes them ('lvef_pct<35; ...')

    def ranges(self) -> list[common_pb2.MeasurementRange]:
        """The measurement ranges (SearchFilter.measurements); UiError naming the measure when one is empty
        (min above max) or the `where` text does not parse."""
        from ui.measurements import measurement_ranges

        try:
            return measurement_ranges(self.measures, self.where)
        except ValueError as exc:
            raise UiError(str(exc)) from exc

    def kwargs(self) -> dict[str, Any]:
        return {"vendors": list(self.vendors), "field_strengths_t": list(self.field_strengths_t),
                "date_from": self.date_from, "date_to": self.date_to, "views_all": list(self.views_all),
                "where": self.ranges()}


@dataclass(frozen=True)
class CohortResult:
    total: int
    members: list[Exam]


class Services:
    """Lazily opened clients of the three services (a down service fails only the pages that need it)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._search: Any = None
        self._encoder: Any = None
        self._generator_channel: grpc.Channel | None = None

    # --- plumbing --------------------------------------------------------------------------------------------
    @property
    def search(self) -> Any:
        if self._search is None:
            from search_svc.client import SearchClient

            self._search = SearchClient(self.settings.search_url, settings=self.settings)
        return self._search

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from encoder_svc.client import EncoderClient

            self._encoder = EncoderClient(self.settings.encoder_url, settings=self.settings)
        return self._encoder

    def _call(self, service: str, doing: str, fn: Callable[[], T]) -> T:
        url = {"search": self.settings.search_url, "encoder": self.settings.encoder_url,
               "generator": self.settings.generator_url}[service]
        try:
            return fn()
        except grpc.RpcError as exc:
            raise friendly(exc, service, url, doing) from exc

    # --- search ---------------------------------------------------------------------------------------------
    def search_text(self, phrase: str, top_k: int = 10, filters: Filters | None = None) -> list[Exam]:
        if not phrase.strip():
            raise UiError("Type a phrase first, e.g. 'dilated left ventricle with reduced ejection fraction'.")
        hits = self._call("search", "searching", lambda: self.search.search_text(
            phrase, top_k=top_k, **(filters or Filters()).kwargs()))
        return [Exam.of(h.exam, h.score, why=h.why) for h in hits]

    def similar(self, *, study_key: str | None = None, embedding: np.ndarray | None = None,
                top_k: int = 8) -> tuple[list[Exam], list[Report]]:
        r = self._call("search", "finding similar exams", lambda: self.search.similar(
            top_k=top_k, study_key=study_key, embedding=embedding))
        return ([Exam.of(h.exam, h.score, why=h.why) for h in r.similar_exams],
                [Report(h.study_key, float(h.score), h.impression) for h in r.nearest_reports])

    def zero_shot(self, *, study_key: str | None = None, embedding: np.ndarray | None = None) -> list[Finding]:
        r = self._call("search", "scoring findings", lambda: self.search.zero_shot(
            study_key=study_key, embedding=embedding))
        return [Finding(s.finding, s.display, s.kind, float(s.probability)) for s in r.scores]

    def get(self, study_key: str) -> Exam:
        r = self._call("search", "reading the exam", lambda: self.search.get(study_key))
        return Exam.of(r.exam, 0.0)

    def stats(self) -> search_pb2.StatsResponse:
        return self._call("search", "reading index statistics", lambda: self.search.stats())

    @staticmethod
    def _cohort_kwargs(all_of: Sequence[str], any_of: Sequence[str], none_of: Sequence[str], threshold: float,
                       filters: Filters | None) -> dict[str, Any]:
        clean = lambda xs: [x.strip() for x in xs if x.strip()]  # noqa: E731
        if not clean(all_of) and not clean(any_of):
            raise UiError("Give at least one phrase under 'all of' or 'any of' (NOT alone selects nothing).")
        return {"all_of": clean(all_of), "any_of": clean(any_of), "none_of": clean(none_of),
                "threshold": float(threshold), **(filters or Filters()).kwargs()}

    def cohort(self, all_of: Sequence[str], any_of: Sequence[str] = (), none_of: Sequence[str] = (),
               threshold: float = 0.5, filters: Filters | None = None, limit: int = 200) -> CohortResult:
        kw = self._cohort_kwargs(all_of, any_of, none_of, threshold, filters)
        page = self._call("search", "building the cohort", lambda: self.search.cohort(page_size=limit, **kw))
        return CohortResult(int(page.total), [Exam.of(m.exam, m.score, dict(m.phrase_scores)) for m in page.members])

    def export_cohort(self, all_of: Sequence[str], any_of: Sequence[str] = (), none_of: Sequence[str] = (),
                      threshold: float = 0.5, filters: Filters | None = None) -> tuple[str, bytes]:
        kw = self._cohort_kwargs(all_of, any_of, none_of, threshold, filters)
        return self._call("search", "exporting the cohort", lambda: self.search.export_cohort("csv", **kw))

    # --- encoder --------------------------------------------------------------------------------------------
    def encode_upload(self, data: bytes) -> Upload:
        if not data:
            raise UiError("The upload is empty.")
        if data[:4] != b"PK\x03\x04":
            raise UiError("The upload is not a zip file: upload a zip of the study's DICOM files.")
        try:
            r = self.encoder.encode_study(data)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise UiError(f"This upload is not a usable CMR study: {exc.details()}", service="encoder") from exc
            raise friendly(exc, "encoder", self.settings.encoder_url, "reading the upload") from exc
        s = r.study
        return Upload(r.embedding, s.study_instance_uid, s.manufacturer, float(s.field_strength_t),
                      tuple(s.slots_present), tuple(s.slots_missing), tuple(s.warnings),
                      measurements_of(r.measurements))

    # --- generator ------------------------------------------------------------------------------------------
    def draft(self, mode: str, *, study_key: str | None = None, embedding: np.ndarray | None = None,
              measurements: Measurements | None = None) -> Iterator[str]:
        """Sentences of a drafted impression, as the generator streams them. `measurements` (an upload's, from
        EncodeStudy) are the numbers the draft states; for an indexed study the generator takes the index's."""
        from cmr.quant.proto import to_proto
        from search_svc.client import study_query

        if self._generator_channel is None:
            self._generator_channel = open_channel(self.settings.generator_url, self.settings)
        stub = generator_pb2_grpc.GeneratorServiceStub(self._generator_channel)
        req = generator_pb2.GenerateReportRequest(study=study_query(study_key=study_key, embedding=embedding),
                                                  mode=DRAFT_MODES[mode])
        if measurements is not None:
            req.measurements.CopyFrom(to_proto(measurements))
        url = self.settings.generator_url
        try:
            for sentence in stub.GenerateReport(req, timeout=self.settings.request_timeout_s):
                yield sentence.text
        except grpc.RpcError as exc:
            err = friendly(exc, "generator", url, f"drafting ({mode})")
            if err.down:
                err = UiError(f"The generator service is unavailable (not reachable at {url}), so no draft can "
                              "be written now. Search and cohorts still work.", service="generator", down=True)
            raise err from exc

    # --- health ---------------------------------------------------------------------------------------------
    def health(self) -> dict[str, bool]:
        """What the sidebar shows: each part up or down, by the checks `cmr status` uses."""
        from cmr.rpc.health import grpc_health, http_health, tcp_health

        s = self.settings
        parts = {"encoder": grpc_health(s.encoder_url, "cmr.v1.EncoderService", 1.0, settings=s).ok,
                 "search": grpc_health(s.search_url, "cmr.v1.SearchService", 1.0, settings=s).ok,
                 "generator": grpc_health(s.generator_url, "cmr.v1.GeneratorService", 1.0, settings=s).ok}
        if s.ui_stack_status:  # on `cmr up`'s machine the broker and the ingest worker are reachable too
            host, _, port = s.kafka_bootstrap.split(",")[0].strip().rpartition(":")
            parts["broker"] = tcp_health(host or "127.0.0.1", int(port or 9092), 1.0).ok
            parts["ingest worker"] = http_health(f"http://127.0.0.1:{s.ingest_metrics_port}/ready", 1.0).ok
        return parts

    def close(self) -> None:
        for c in (self._search, self._encoder):
            if c is not None:
                c.close()
        if self._generator_channel is not None:
            self._generator_channel.close()
