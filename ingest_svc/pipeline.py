"""One study through the ingest stages, each timed:

    fetch -> parse -> de-identify -> (duplicate?) -> build the exam tensor, measure -> encode -> upsert -> score

The DICOM is de-identified right after parsing, before anything else reads it; the worker then builds the exam
tensor itself (the architecture's plan: only pixels travel to EncoderService, never headers) and sends the
impression (cleaned of the patient's identifiers) with de-identified metadata to SearchService.

The study key is the keyed hash of the *source* StudyInstanceUID (SearchService hashes the UID it is given and
never stores it): a study sent twice - from a folder and later from the PACS - is the same entry. De-identified
files carry pseudonymous UIDs instead.

Measurements (settings.measure): the study loaded for the exam tensor is also segmented and measured in this
process (cmr.quant: LVEF, volumes, mass). De-identification removes PatientSize and PatientWeight (basic
profile "X"), which the indexed volumes (per m² of body surface area) need: the two numbers are read from the
parsed headers just before de-identification, kept in memory only, and given to the de-identified study that
is measured. The DICOM stays de-identified as before; what reaches the index and the event are the measured
values, the body surface area and the indexed volumes (what PS3.15's Retain Patient Characteristics option
allows to keep). A study whose measuring fails is indexed anyway, with quality "failed" and the reason.

A NewExam whose study is already indexed by the current model with the same impression and labels is a
duplicate: nothing is re-encoded, the embedding event is published again (same deterministic event_id, so
subscribers that de-duplicate on it see one event) and the worker records a dedupe notice on the dead-letter
topic. A changed report or a new model re-indexes the study in place.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from cmr.config import Settings
from cmr.dicom import ExamSpec, load_study
from cmr.dicom.errors import NotDicomError
from cmr.quant.proto import to_proto as measurements_to_proto
from cmr.rpc.keys import point_id, study_key
from cmr.rpc.measuring import StudyMeasurer
from cmr.rpc.messages import to_vector
from cmr.v1 import common_pb2, events_pb2, search_pb2
from encoder_svc.client import EncoderClient
from ingest_svc.deid import Deidentifier, scrub_text
from ingest_svc.fetch import StudyFetcher, StudyFiles
from ingest_svc.messages import IngestFailure, Stage, embedding_created, failure_from
from search_svc.client import SearchClient

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMED_STAGES = ("fetch", "parse", "deidentify", "assemble", "measure", "encode", "upsert", "score")


@dataclass
class Outcome:
    event: events_pb2.EmbeddingCreated
    study_key: str
    duplicate: bool
    created: bool  # a new index entry (False: an existing one was updated, or a duplicate)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelContext:
    """What the encoder says about its model, asked once: the exam spec to build tensors with, and the version
    every upsert carries."""

    spec: ExamSpec
    model: common_pb2.ModelInfo

    @classmethod
    def ask(cls, encoder: EncoderClient) -> ModelContext:
        info = encoder.model_info()
        return cls(ExamSpec.from_dict(json.loads(info.exam_spec_json)), info.model)


def _looks_like_dicom(ds: Dataset, data: bytes) -> bool:
    # pydicom's force=True parses anything; the study loader applies the same test to tell junk from DICOM.
    meta = getattr(ds, "file_meta", None)
    return (data[128:132] == b"DICM" or (meta is not None and "TransferSyntaxUID" in meta)
            or "SOPClassUID" in ds or "PixelData" in ds)


def parse_files(files: StudyFiles) -> tuple[list[Dataset], StudyFiles]:
    """(datasets that parsed as DICOM, raw files that did not). The raw ones are only kept for the loader's
    diagnosis when nothing parses; they never reach the index."""
    datasets, rejects = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in files.items():
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
            except Exception:  # noqa: BLE001 - pydicom raises many types on junk; the loader names the problem
                rejects[name] = data
                continue
            if _looks_like_dicom(ds, data):
                datasets.append(ds)
            else:
                rejects[name] = data
    return datasets, rejects


def _positive(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]  # DS, IS, str or a number
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def body_size(datasets: list[Dataset]) -> tuple[float | None, float | None]:
    """(height m, weight kg) of the patient: PatientSize and PatientWeight of the first headers that carry
    them (as the study loader reads them). Call it before de-identification removes them."""
    height = weight = None
    for ds in datasets:
        height = height or _positive(ds.get("PatientSize"))
        weight = weight or _positive(ds.get("PatientWeight"))
        if height and weight:
            break
    return height, weight


class StudyPipeline:
    def __init__(self, settings: Settings, encoder: EncoderClient, search: SearchClient,
                 fetcher: StudyFetcher | None = None, deidentifier: Deidentifier | None = None) -> None:
        self.settings = settings
        self.encoder = encoder
        self.search = search
        self.fetcher = fetcher or StudyFetcher(settings.study_roots, max_files=settings.max_study_files,
                                               max_bytes=settings.max_study_bytes,
                                               timeout_s=settings.dicomweb_timeout_s)
        self.deid = deidentifier or Deidentifier(settings.study_key_secret, keep_dates=settings.ingest_keep_dates)
        self.measurer = (StudyMeasurer(settings.segmenter_checkpoint, settings.torch_threads) if settings.measure
                         else None)
        self._context: ModelContext | None = None

    def segmenter_version(self) -> str:
        """The segmenter that measures ("" when measuring is off); loads it on first use (raises for a
        missing or foreign checkpoint: the worker checks this at start)."""
        return "" if self.measurer is None else self.measurer.version

    def context(self) -> ModelContext:
        if self._context is None:
            self._context = self._stage(Stage.ENCODE, lambda: ModelContext.ask(self.encoder))
        return self._context

    @staticmethod
    def _stage(stage: Stage, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified: transient (retried) or bad input (dead letter)
            raise failure_from(exc, stage) from exc

    def process(self, msg: events_pb2.NewExam) -> Outcome:
        seconds: dict[str, float] = {}

        @contextmanager
        def timed(name: str) -> Iterator[None]:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

        ctx = self.context()
        with timed("fetch"):
            files = self._stage(Stage.FETCH, lambda: self.fetcher.fetch(msg.study))
        with timed("parse"):
            datasets, rejects = self._stage(Stage.LOAD, lambda: parse_files(files))
            del files
            if not datasets:
                # Let the study loader say what is wrong (not DICOM, truncated, ...): it knows best.
                self._stage(Stage.LOAD, lambda: load_study(rejects or {"(empty)": b""}, settings=self.settings))
                raise IngestFailure(Stage.LOAD, "no DICOM images in the study", error_type=NotDicomError.__name__)
            skipped = len(rejects)
            del rejects
        # Retained in memory for the body surface area only (see the module doc); never written anywhere.
        height_m, weight_kg = body_size(datasets) if self.measurer is not None else (None, None)
        with timed("deidentify"):
            deid = self.deid.deidentify(datasets)
        impression = scrub_text(msg.report_text.strip(), deid.identifiers)
        labels = list(dict.fromkeys(msg.labels))
        # The source UID is needed for one thing, the upsert (the server hashes it); it is never logged.
        source_uid = deid.study_instance_uid
        try:
            key = study_key(source_uid, self.settings.study_key_secret)
        except ValueError as exc:
            raise IngestFailure(Stage.LOAD, "StudyInstanceUID is not a DICOM UID (digits and dots, at most 64)",
                                error_type="InvalidStudyUID") from exc

        with timed("upsert"):
            existing = self._existing(key, ctx.model.version, impression, labels)
        if existing is not None:
            with timed("score"):
                scores = self._scores(existing)
            event = embedding_created(study_key=key, model=ctx.model, exam_point_id=point_id(key),
                                      embedding=existing.image_embedding.values, scores=scores,
                                      views=list(existing.exam.views), impression=impression, labels=labels,
                                      source_event_id=msg.event_id,
                                      measurements=(existing.exam.measurements
                                                    if existing.exam.HasField("measurements") else None))
            return Outcome(event, key, duplicate=True, created=False, seconds=seconds)

        with timed("assemble"):
            study = self._stage(Stage.LOAD, lambda: load_study(deid.datasets, settings=self.settings))
            exam = self._stage(Stage.LOAD, lambda: study.to_exam(ctx.spec))
            del datasets, deid
        measurements, values = None, None
        if self.measurer is not None:
            with timed("measure"):
                study.patient_height_m, study.patient_weight_kg = height_m, weight_kg
                measured = self.measurer.measure(study)
            if measured.error is not None:
                log.warning("study %s: measuring failed (%s); indexed without measurements", key, measured.error)
                log.debug("measurement traceback:\n%s", measured.traceback)
            measurements = measurements_to_proto(measured.measurements)
            values = measured.measurements.values()
        del study
        info = exam.study
        views = [k for k, v in exam.present.items() if v]
        with timed("encode"):
            # the numbers go along: a model with measurement tokens reads them, as EncodeStudy does
            # with the vector's parts (an attention-pooling model): the index keeps them to say why it matches
            vec, parts = self._stage(Stage.ENCODE, lambda: self.encoder.encode_exam_parts(
                exam.pixels_uint8(), exam.mask, ctx.spec.spec_id, measurements=values))
            report_vec = (self._stage(Stage.ENCODE, lambda: self.encoder.encode_texts([impression])[0])
                          if impression else None)
        upsert = search_pb2.ExamUpsert(
            study_instance_uid=source_uid, image_embedding=to_vector(vec),
            report_embedding=to_vector(report_vec) if report_vec is not None else None, impression=impression,
            study_date="" if info.study_date is None else info.study_date.isoformat(), vendor=info.manufacturer,
            field_strength_t=info.field_strength or 0.0, views=views, labels=labels, model_version=ctx.model.version,
            measurements=measurements, parts=parts)
        with timed("upsert"):
            reply = self._stage(Stage.UPSERT, lambda: self.search.upsert([upsert]))
        if reply.study_keys and reply.study_keys[0] != key:
            # Worker and search service hash with different secrets: events would name other keys than the index.
            raise IngestFailure(Stage.UPSERT, "the search service keys studies with another secret than this worker "
                                "(CMR_STUDY_KEY_SECRET differs)", transient=True, error_type="SecretMismatch")
        with timed("score"):
            scores = self._stage(Stage.SCORE, lambda: list(self.search.zero_shot(embedding=vec).scores))
        event = embedding_created(study_key=key, model=ctx.model, exam_point_id=point_id(key),
                                  embedding=np.asarray(vec, np.float32).tolist(), scores=scores, views=views,
                                  impression=impression, labels=labels, source_event_id=msg.event_id,
                                  measurements=measurements)
        if skipped:
            log.info("study %s: %d files were not DICOM and were skipped", key, skipped)
        return Outcome(event, key, duplicate=False, created=reply.created > 0, seconds=seconds)

    def _existing(self, key: str, model_version: str, impression: str,
                  labels: list[str]) -> search_pb2.GetResponse | None:
        try:
            got = self.search.get(key, with_vector=True)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise failure_from(exc, Stage.UPSERT) from exc
        e = got.exam
        same = (e.model_version == model_version and e.impression == impression
                and sorted(e.labels) == sorted(labels))
        if self.measurer is not None:
            # Indexed before measuring was on, or by another segmenter: measure it now (re-index in place).
            same = same and e.HasField("measurements") and e.measurements.model == self.segmenter_version()
        return got if same else None

    def _scores(self, existing: search_pb2.GetResponse) -> list[common_pb2.FindingScore]:
        return self._stage(Stage.SCORE, lambda: list(self.search.zero_shot(study_key=existing.exam.study_key).scores))


__all__ = ["ModelContext", "Outcome", "StudyPipeline", "TIMED_STAGES", "body_size", "parse_files"]
