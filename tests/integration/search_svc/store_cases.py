"""Test data and engines of the vector store tests: clustered exam points, numpy reference answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from cmr.rpc.keys import study_key
from search_svc.store import (
    EdgeStore,
    ExamMeasurements,
    ExamPayload,
    IndexParams,
    QdrantStore,
    StoredParts,
    VectorPoint,
    VectorStore,
)
from search_svc.store.schema import VENDORS, ExamFilter

DIM = 24
SECRET = "test-secret"
VIEWS = ("cine_sax", "cine_2ch", "cine_4ch", "lge_sax", "lge_lax")
LABELS = ("lv_dysfunction", "lv_dilation", "lge", "lv_hypertrophy", "pericardial_effusion")
BACKENDS = ("edge", "client-local")


def make_store(backend: str, path: Path, params: IndexParams | None = None) -> VectorStore:
    """A real engine in `path`. Edge indexes even tiny segments (threshold 1 KB), so optimize() builds an
    HNSW graph and the tests exercise it, not only the brute-force path."""
    if backend == "edge":
        return EdgeStore(path, params, indexing_threshold_kb=1)
    if backend == "client-local":
        return QdrantStore.local(path, params)
    raise ValueError(backend)


def measurements(rng: np.random.Generator) -> ExamMeasurements | None:
    """Random measurements as ingestion stores them: none at all for a fifth of the exams (indexed before
    measuring, or not measured), all unavailable for some (no SAX stack), without the indexed values for half
    (no height/weight). Values on a 0.5 grid, so range bounds fall exactly on stored values."""
    if rng.random() < 0.2:
        return None
    if rng.random() < 0.1:
        reason = "no short-axis cine stack in the study"
        return ExamMeasurements(quality="failed", quality_reasons=(reason,), unavailable={"lvef_pct": reason},
                                model="cmr-seg-small@0123456789ab")
    lvedv = float(rng.integers(160, 600)) / 2
    values = {"lvef_pct": float(rng.integers(20, 150)) / 2, "lvedv_ml": lvedv, "lv_mass_g": float(rng.integers(100, 400)) / 2}
    if rng.random() < 0.5:
        values |= {"bsa_m2": float(rng.integers(30, 50)) / 20, "lvedvi_ml_m2": round(lvedv / 1.9, 1)}
    return ExamMeasurements(values=values, quality="ok" if rng.random() < 0.7 else "check",
                            model="cmr-seg-small@0123456789ab", ed_phase=0, es_phase=int(rng.integers(5, 12)))


def exam_points(n: int, seed: int = 0, dim: int = DIM, clusters: int = 8) -> list[VectorPoint]:
    """Clustered vectors with random, complete exam payloads (some without date or field strength, some
    without measurements)."""
    rng = np.random.default_rng(seed)
    measure_rng = np.random.default_rng(seed + 10_000)  # its own stream: the other fields stay as they were
    centres = rng.normal(size=(clusters, dim))
    first_day = dt.date(2015, 1, 1).toordinal()
    points = []
    for i in range(n):
        vector = centres[rng.integers(clusters)] + 0.45 * rng.normal(size=dim)
        day = first_day + int(rng.integers(3650))
        views = ("cine_sax",) + tuple(v for v in VIEWS[1:] if rng.random() < 0.5)
        labels = tuple(label for label in LABELS if rng.random() < 0.3)
        payload = ExamPayload(
            study_key=study_key(f"1.2.840.{seed}.{i}", SECRET),
            vendor=str(rng.choice(VENDORS)),
            model_version="cmr-clip-small" if rng.random() < 0.8 else "cmr-clip-base",
            study_date=None if rng.random() < 0.05 else dt.date.fromordinal(day),
            field_strength_t=None if rng.random() < 0.05 else float(rng.choice([1.5, 3.0, 0.55])),
            views=views, labels=labels, impression=f"synthetic impression {i}",
            measurements=measurements(measure_rng),
        )
        points.append(VectorPoint.for_exam(payload, vector.astype(np.float32)))
    return points


PART_NAMES = ("cine_sax", "lge_sax", "lvef_pct", "exam")
PART_KINDS = ("view", "view", "measurement", "exam")


def with_parts(points: list[VectorPoint], seed: int = 0) -> list[VectorPoint]:
    """Every other point with embedding parts summing to its unit vector (as an attention-pooling model's),
    the rest without (written before parts were stored, or by a CLS model)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(points):
        if i % 2:
            out.append(p)
            continue
        unit = p.vector / np.linalg.norm(p.vector)
        parts = rng.normal(scale=0.2, size=(len(PART_NAMES), p.vector.shape[0])).astype(np.float32)
        parts[-1] += unit - parts.sum(axis=0)  # the CLS part closes the sum
        payload = dataclasses.replace(p.payload, parts=StoredParts.of(PART_NAMES, PART_KINDS, parts))
        out.append(VectorPoint(p.id, p.vector, payload))
    return out


def normalised(points: list[VectorPoint]) -> np.ndarray:
    m = np.stack([p.vector for p in points]).astype(np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def exact_top(points: list[VectorPoint], query: np.ndarray, k: int,
              keep: list[bool] | None = None) -> list[str]:
    """Ids of the k best points by cosine similarity (numpy, float64), among those `keep` allows."""
    scores = normalised(points) @ (query / np.linalg.norm(query))
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep[i]]
    return [points[i].id for i in order[:k]]


def matches(p: ExamPayload, f: ExamFilter) -> bool:
    """The meaning of ExamFilter, written out in Python: what both engines must agree with."""
    if f.vendors and p.vendor not in f.vendors:
        return False
    if f.field_strengths_t and (p.field_strength_t is None
                                or not any(abs(p.field_strength_t - v) <= 0.05 for v in f.field_strengths_t)):
        return False
    if f.date_from is not None or f.date_to is not None:
        if p.study_date is None:
            return False
        day = dt.date.fromisoformat(p.study_date)
        if (f.date_from is not None and day < f.date_from) or (f.date_to is not None and day > f.date_to):
            return False
    if not set(f.views_all) <= set(p.views) or not set(f.labels_all) <= set(p.labels):
        return False
    for r in f.measurements:  # closed ranges; an exam without the measurement never matches
        v = None if p.measurements is None else p.measurements.get(r.measure)
        if v is None or (r.min is not None and v < r.min) or (r.max is not None and v > r.max):
            return False
    return not (set(f.labels_none) & set(p.labels)) and p.study_key not in f.study_keys_none
