"""Cohorts: every exam that matches a boolean combination of phrases, each phrase judged by its calibrated
probability against a threshold, within a filter. Scored exhaustively (not top-k) over the filtered exams, so
a rare disease's cohort is complete, then ranked and paged; exportable as CSV or Parquet."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cmr.quant.volumes import MEASUREMENT_FIELDS
from search_svc.index import ExamIndex
from search_svc.store import ExamFilter, ExamPayload

PhraseProbabilities = Callable[[NDArray[np.float32], str], NDArray[np.float64]]  # exams [N,D], phrase -> [N]


@dataclass(frozen=True)
class CohortQuery:
    all_of: tuple[str, ...]
    any_of: tuple[str, ...]
    none_of: tuple[str, ...]
    filter: ExamFilter
    threshold: float

    def __post_init__(self) -> None:
        if not (self.all_of or self.any_of):
            raise ValueError("a cohort needs at least one phrase in all_of or any_of (none_of only excludes)")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {self.threshold}")

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.all_of, *self.any_of, *self.none_of)))

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CohortMember:
    payload: ExamPayload
    score: float
    phrase_scores: dict[str, float]


@dataclass(frozen=True)
class Cohort:
    query: CohortQuery
    members: list[CohortMember]  # ranked, best first
    scanned: int  # exams that passed the filter and were scored


def evaluate(query: CohortQuery, index: ExamIndex, phrase_probabilities: PhraseProbabilities) -> Cohort:
    members: list[CohortMember] = []
    scanned = 0
    t = query.threshold
    for page in index.iter_exams(query.filter, with_vectors=True):
        vecs = np.stack([r.vector for r in page if r.vector is not None])
        scanned += len(page)
        p = {ph: phrase_probabilities(vecs, ph) for ph in query.phrases}
        keep = np.ones(len(page), bool)
        score = np.ones(len(page))
        for ph in query.all_of:
            keep &= p[ph] >= t
            score = np.minimum(score, p[ph])
        if query.any_of:
            best_any = np.max(np.stack([p[ph] for ph in query.any_of]), axis=0)
            keep &= best_any >= t
            score = np.minimum(score, best_any)
        for ph in query.none_of:
            keep &= p[ph] < t
        for i in np.flatnonzero(keep):
            members.append(CohortMember(page[i].payload, float(score[i]),
                                        {ph: round(float(p[ph][i]), 4) for ph in query.phrases}))
    members.sort(key=lambda m: (-m.score, m.payload.study_key))
    return Cohort(query, members, scanned)


class CohortCache:
    """Recently built cohorts, so paging and export do not score the index again (small LRU)."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[str, Cohort] = OrderedDict()
        self._size = size

    def get_or_build(self, query: CohortQuery, build: Callable[[], Cohort], generation: int | str) -> Cohort:
        key = f"{query.digest()}:{generation}"  # any index write bumps the generation: stale cohorts miss
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        cohort = build()
        self._items[key] = cohort
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return cohort


def page_token(query: CohortQuery, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": query.digest(), "o": offset}).encode()).decode()


def parse_page_token(token: str, query: CohortQuery) -> int:
    """The offset in a token issued for this same query; ValueError otherwise."""
    if not token:
        return 0
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(d["o"])
        same = d["q"] == query.digest()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("malformed page_token: pass back the next_page_token of the previous page") from exc
    if not same:
        raise ValueError("page_token belongs to another cohort query")
    if offset < 0:
        raise ValueError("malformed page_token")
    return offset


# One column per measurement (empty where the exam was not measured or the value could not be), then the
# quality flag ("" for an exam never measured) and its reasons.
EXPORT_COLUMNS = ("rank", "study_key", "score", "study_date", "vendor", "field_strength_t", "views", "labels",
                  "impression", *MEASUREMENT_FIELDS, "measurement_quality", "measurement_notes")


def to_table(cohort: Cohort):  # noqa: ANN201 - pandas.DataFrame
    import pandas as pd

    rows = []
    for rank, m in enumerate(cohort.members, 1):
        p = m.payload
        q = p.measurements
        rows.append({"rank": rank, "study_key": p.study_key, "score": round(m.score, 4), "study_date": p.study_date,
                     "vendor": p.vendor, "field_strength_t": p.field_strength_t, "views": ";".join(p.views),
                     "labels": ";".join(p.labels), "impression": p.impression,
                     **{k: None if q is None else q.get(k) for k in MEASUREMENT_FIELDS},
                     "measurement_quality": "" if q is None else q.quality,
                     "measurement_notes": "" if q is None else "; ".join(q.quality_reasons),
                     **{f"p[{ph}]": v for ph, v in m.phrase_scores.items()}})
    table = pd.DataFrame(rows, columns=[*EXPORT_COLUMNS, *(f"p[{ph}]" for ph in cohort.query.phrases)])
    return table.astype({k: "float64" for k in MEASUREMENT_FIELDS})


def export_bytes(cohort: Cohort, fmt: str) -> tuple[bytes, str, str]:
    """(file bytes, file name, content type) for fmt "csv" or "parquet"."""
    table = to_table(cohort)
    name = f"cohort-{cohort.query.digest()}"
    if fmt == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        return buf.getvalue(), f"{name}.parquet", "application/vnd.apache.parquet"
    return table.to_csv(index=False).encode(), f"{name}.csv", "text/csv"


def phrases_of(values: Sequence[str], what: str, max_chars: int) -> tuple[str, ...]:
    out = []
    for v in values:
        v = v.strip()
        if not v:
            raise ValueError(f"empty phrase in {what}")
        if len(v) > max_chars:
            raise ValueError(f"phrase in {what} longer than {max_chars} characters")
        out.append(v)
    return tuple(out)
