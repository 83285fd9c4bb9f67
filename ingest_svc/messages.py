"""The ingestion contract in code, free of configuration and I/O: stages, failures (transient or not), record
keys, and building/decoding the protobuf events of protos/cmr/v1/events.proto.

Keys: every record about one study carries the same key, so the study's NewExam, EmbeddingCreated and
DeadLetter records land on the same partition number of their topics and stay in order. The key is the study
key (HMAC of the StudyInstanceUID) when the producer can read it; otherwise ("ref:" + a hash of the study
reference) the key of a reference that is re-sent is still stable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from cmr.dicom.errors import StudyLoadError
from cmr.v1 import common_pb2, events_pb2

# uuid5 namespace of embedding-event ids: the same study, model and content give the same id on every worker.
EVENT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cmr-search:embedding-created")
MAX_REASON_CHARS: Final = 500


class Stage(str, Enum):
    """Where a message failed (DeadLetter.stage)."""

    DECODE = "decode"          # the record value is not a NewExam
    FETCH = "fetch"            # reading the study reference (path, zip, DICOMweb)
    LOAD = "load"              # parsing DICOM, grouping series, building the exam tensor
    DEIDENTIFY = "deidentify"  # PS3.15 de-identification refused the study
    DEDUPE = "dedupe"          # already indexed with the same model and content (not an error: a notice)
    ENCODE = "encode"          # EncoderService
    UPSERT = "upsert"          # SearchService upsert
    SCORE = "score"            # zero-shot scores for the event
    PUBLISH = "publish"        # writing the event


class IngestFailure(Exception):
    """A study could not be ingested at `stage`. `transient` failures are retried with backoff; the others
    (bad input) go straight to the dead-letter topic."""

    def __init__(self, stage: Stage, reason: str, *, transient: bool = False, error_type: str = "") -> None:
        self.stage = stage
        self.reason = " ".join(str(reason).split())[:MAX_REASON_CHARS] or "unknown error"
        self.transient = transient
        self.error_type = error_type or type(self).__name__
        super().__init__(f"{stage.value}: {self.reason}")


# gRPC codes that mean "try again later": nothing was wrong with the study itself.
_TRANSIENT_GRPC: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                    grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED})


def failure_from(exc: BaseException, stage: Stage) -> IngestFailure:
    """Classify an exception raised at `stage`: a loader refusal or an INVALID_ARGUMENT is bad input; an
    unreachable or overloaded service is transient. An unexpected exception is treated as bad input, so a
    bug triggered by one study dead-letters that study instead of looping on it forever."""
    if isinstance(exc, IngestFailure):
        return exc
    if isinstance(exc, StudyLoadError):
        return IngestFailure(stage, exc.reason, error_type=type(exc).__name__)
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        code = exc.code()
        details = exc.details() if hasattr(exc, "details") else ""
        return IngestFailure(stage, f"{code.name}: {details}", transient=code in _TRANSIENT_GRPC,
                             error_type=f"grpc.{code.name}")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return IngestFailure(stage, f"{type(exc).__name__}: {exc}", transient=True, error_type=type(exc).__name__)
    return IngestFailure(stage, f"unexpected {type(exc).__name__}: {exc}", error_type=type(exc).__name__)


# --- keys and ids --------------------------------------------------------------------------------------------


def ref_text(ref: common_pb2.StudyRef) -> str:
    which = ref.WhichOneof("location")
    return "" if which is None else str(getattr(ref, which))


def ref_key(ref: common_pb2.StudyRef) -> str:
    """Record key of a study whose study key is not known (yet): stable for the same reference."""
    return "ref:" + hashlib.sha256(ref_text(ref).encode()).hexdigest()[:32]


def ref_digest(ref: common_pb2.StudyRef) -> str:
    """Short hash of a reference for logs: a folder name may hold a patient's name, so paths are not logged."""
    return hashlib.sha256(ref_text(ref).encode()).hexdigest()[:10]


def content_digest(impression: str, labels: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join([impression, *sorted(labels)]).encode()).hexdigest()[:16]


def embedding_event_id(study_key: str, model_version: str, impression: str, labels: Sequence[str],
                       segmenter_version: str = "") -> str:
    """Deterministic: a redelivered NewExam (after a crash) or a duplicate of an indexed study yields the same
    id, so subscribers de-duplicate on event_id; a new report, a new model or measurements by another
    segmenter (segmenter_version, "" when not measured: the id of an unmeasured event is unchanged) give a
    new id."""
    name = f"{study_key}|{model_version}|{content_digest(impression, labels)}"
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{name}|{segmenter_version}" if segmenter_version else name))


# --- building and decoding -------------------------------------------------------------------------------------


def _timestamp(when: dt.datetime | None = None) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when or dt.datetime.now(dt.timezone.utc))
    return ts


def study_ref(path: str | None = None, uri: str | None = None) -> common_pb2.StudyRef:
    if (path is None) == (uri is None):
        raise ValueError("give exactly one of path or uri")
    return common_pb2.StudyRef(path=path) if path is not None else common_pb2.StudyRef(uri=uri)


def new_exam(ref: common_pb2.StudyRef, *, report_text: str = "", labels: Iterable[str] = (), source: str = "cli",
             metadata: Mapping[str, str] | None = None, event_id: str | None = None) -> events_pb2.NewExam:
    return events_pb2.NewExam(event_id=event_id or str(uuid.uuid4()), study=ref, report_text=report_text,
                              labels=list(labels), source=source, published_at=_timestamp(),
                              source_metadata=dict(metadata or {}))


def decode_new_exam(value: bytes | None) -> events_pb2.NewExam:
    if not value:
        raise IngestFailure(Stage.DECODE, "empty record value (expected a cmr.v1.NewExam)", error_type="EmptyRecord")
    msg = events_pb2.NewExam()
    try:
        msg.ParseFromString(value)
    except DecodeError as exc:
        raise IngestFailure(Stage.DECODE, f"record value is not a cmr.v1.NewExam protobuf ({exc})",
                            error_type="DecodeError") from exc
    if msg.study.WhichOneof("location") is None or not ref_text(msg.study).strip():
        raise IngestFailure(Stage.DECODE, "NewExam without a study reference (study.path or study.uri)",
                            error_type="MissingStudyRef")
    return msg


def embedding_created(*, study_key: str, model: common_pb2.ModelInfo, exam_point_id: str,
                      embedding: Sequence[float], scores: Iterable[common_pb2.FindingScore], views: Sequence[str],
                      impression: str, labels: Sequence[str], source_event_id: str,
                      measurements: common_pb2.CardiacMeasurements | None = None) -> events_pb2.EmbeddingCreated:
    segmenter = "" if measurements is None else measurements.model
    return events_pb2.EmbeddingCreated(
        event_id=embedding_event_id(study_key, model.version, impression, labels, segmenter), study_key=study_key,
        model=model, exam_point_id=exam_point_id, image_embedding=common_pb2.Vector(values=list(embedding)),
        finding_scores=list(scores), views=list(views), created_at=_timestamp(), source_event_id=source_event_id,
        measurements=measurements)


@dataclass(frozen=True)
class SourceRecord:
    """What the dead letter needs of the consumed record (decoupled from kafka-python's type)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(record: SourceRecord, failure: IngestFailure, attempts: int) -> events_pb2.DeadLetter:
    return events_pb2.DeadLetter(
        original_key=record.key or b"", original_value=record.value or b"", original_topic=record.topic,
        partition=record.partition, offset=record.offset, stage=failure.stage.value, reason=failure.reason,
        error_type=failure.error_type, attempts=attempts, failed_at=_timestamp())


__all__ = ["IngestFailure", "SourceRecord", "Stage", "content_digest", "dead_letter", "decode_new_exam",
           "embedding_created", "embedding_event_id", "failure_from", "new_exam", "ref_digest", "ref_key",
           "ref_text", "study_ref"]
