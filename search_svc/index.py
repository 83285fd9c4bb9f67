"""The exam index: the exams and reports collections over one vector store, keyed by the study key.

Writes derive the study key from the StudyInstanceUID with the server's secret (the UID itself is never
stored) and the point id from the key, so re-ingesting a study overwrites it. An exam's report vector (its
impression) lives under the same point id in the reports collection. The exam vector's embedding parts (when
the writer sent them) are stored once, with the exam point: the report point's payload has none.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cmr.rpc.keys import point_id, study_key
from search_svc.store import (
    EXAMS,
    REPORTS,
    ExamFilter,
    ExamMeasurements,
    ExamPayload,
    ScoredHit,
    StoredParts,
    StoredRecord,
    VectorPoint,
    VectorStore,
    normalise_vendor,
)
from search_svc.store.locks import ReadWriteLock

SCROLL_PAGE = 2048


def report_payload(exam: ExamPayload) -> ExamPayload:
    """The payload of an exam's report point: the exam's, without the image embedding's parts (they belong to
    the image vector, and ~10 KB is stored once)."""
    return dataclasses.replace(exam, parts=None)


@dataclass(frozen=True)
class ExamEntry:
    """One exam to index, as the ingest worker (or any client) describes it."""

    study_instance_uid: str
    image_embedding: NDArray[np.float32]
    model_version: str
    report_embedding: NDArray[np.float32] | None = None
    impression: str = ""
    study_date: str | None = None
    manufacturer: str = ""
    field_strength_t: float | None = None
    views: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    measurements: ExamMeasurements | None = None  # None: not measured
    parts: StoredParts | None = None  # the image embedding's parts (attention-pooling models); None: not stored


class ExamIndex:
    def __init__(self, store: VectorStore, dim: int, secret: str, *, exams: str = EXAMS, reports: str = REPORTS,
                 write_gate: ReadWriteLock | None = None) -> None:
        """exams/reports: the collection pair (one model generation, see search_svc/admin). write_gate, shared
        by the indexes of one store, lets a backup hold every writer back at once while reads go on."""
        self.store = store
        self.dim = dim
        self.exams = exams
        self.reports = reports
        self._secret = secret
        self._write_lock = threading.Lock()  # created/updated counts must not interleave between writers
        self._gate = write_gate or ReadWriteLock()
        for name in (exams, reports):
            store.ensure_collection(name, dim)

    def key_of(self, study_instance_uid: str) -> str:
        return study_key(study_instance_uid, self._secret)

    # --- writes --------------------------------------------------------------------------------------------
    def upsert(self, entries: Sequence[ExamEntry]) -> tuple[list[str], int, int]:
        """Index exams; returns (study keys in order, created, updated)."""
        exam_points, report_points, keys = [], [], []
        for e in entries:
            key = self.key_of(e.study_instance_uid)
            payload = ExamPayload(study_key=key, vendor=normalise_vendor(e.manufacturer),
                                  model_version=e.model_version, study_date=e.study_date,
                                  field_strength_t=e.field_strength_t or None, views=e.views, labels=e.labels,
                                  impression=e.impression, measurements=e.measurements, parts=e.parts)
            exam_points.append(VectorPoint.for_exam(payload, e.image_embedding))
            if e.report_embedding is not None:
                report_points.append(VectorPoint.for_exam(report_payload(payload), e.report_embedding))
            keys.append(key)
        with self._gate.read(), self._write_lock:
            existing = {r.id for r in self.store.get(self.exams, [p.id for p in exam_points])}
            self.store.upsert(self.exams, exam_points)
            if report_points:
                self.store.upsert(self.reports, report_points)
        created = len({p.id for p in exam_points} - existing)
        return keys, created, len({p.id for p in exam_points}) - created

    def write_points(self, exam_points: Sequence[VectorPoint], report_points: Sequence[VectorPoint]) -> None:
        """Points made elsewhere (an upgrade's re-embedded vectors with payloads copied from another generation)."""
        with self._gate.read(), self._write_lock:
            self.store.upsert(self.exams, exam_points)
            if report_points:
                self.store.upsert(self.reports, report_points)

    def delete(self, keys: Sequence[str]) -> int:
        ids = [point_id(k) for k in keys]
        with self._gate.read(), self._write_lock:
            self.store.delete(self.reports, ids)
            return self.store.delete(self.exams, ids)

    # --- reads ---------------------------------------------------------------------------------------------
    # with_parts: the payloads' embedding parts too (left out otherwise: see search_svc/store/base.py)
    def get(self, key: str, with_vector: bool = False, with_parts: bool = False) -> StoredRecord | None:
        found = self.store.get(self.exams, [point_id(key)], with_vectors=with_vector, with_parts=with_parts)
        return found[0] if found else None

    def get_many(self, keys: Sequence[str], with_vectors: bool = True) -> list[StoredRecord]:
        return self.store.get(self.exams, [point_id(k) for k in keys], with_vectors=with_vectors)

    def search_exams(self, vector: NDArray[np.float32], top_k: int, flt: ExamFilter | None = None,
                     offset: int = 0, with_vectors: bool = False, with_parts: bool = False) -> list[ScoredHit]:
        return self.store.search(self.exams, vector, top_k, flt, offset=offset, with_vectors=with_vectors,
                                 with_parts=with_parts)

    def search_reports(self, vector: NDArray[np.float32], top_k: int, flt: ExamFilter | None = None) -> list[ScoredHit]:
        return self.store.search(self.reports, vector, top_k, flt)

    def iter_exams(self, flt: ExamFilter | None = None, with_vectors: bool = True) -> Iterator[list[StoredRecord]]:
        """Every exam matching the filter, in pages (cohorts and few-shot scoring of the whole index)."""
        token: str | None = None
        while True:
            page, token = self.store.scroll(self.exams, flt, SCROLL_PAGE, token, with_vectors=with_vectors)
            if page:
                yield page
            if token is None:
                return

    def count(self, flt: ExamFilter | None = None, collection: str | None = None) -> int:
        return self.store.count(collection or self.exams, flt)

    def stats(self) -> tuple[int, int, dict[str, int], list[str]]:
        """(exams, reports, exams per vendor, model versions present), all exact and from the payload indexes.
        The versions were once read by scanning up to 50,000 exams' payloads, decoded in Python with the GIL
        held: at 20k exams every search in flight stalled 0.1-0.4 s whenever a status page, `cmr status` or the
        load benchmark asked (docs/benchmarks/load.md)."""
        vendors = self.store.facet(self.exams, "vendor")  # one index read, not a filtered count per vendor
        versions = self.store.facet(self.exams, "model_version")
        return self.count(), self.count(collection=self.reports), vendors, sorted(versions)
