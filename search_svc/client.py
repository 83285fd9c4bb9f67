"""Typed client of SearchService (CLI, UI, ingest worker, generator).

    with SearchClient() as s:
        hits = s.search_text("dilated left ventricle", top_k=5, vendors=["siemens"])
        twins = s.similar(study_key=hits[0].exam.study_key)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cmr.config import Settings, get_settings
from cmr.quant.volumes import MEASUREMENT_FIELDS
from cmr.rpc.client import open_channel, wait_for_health
from cmr.rpc.messages import to_vector
from cmr.v1 import common_pb2, search_pb2, search_pb2_grpc

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*({_NUMBER})\s*$", re.IGNORECASE)
_INTERVAL = re.compile(rf"^\s*([a-z0-9_]+)\s*(?:=|:|\s)\s*({_NUMBER})?\s*\.\.\s*({_NUMBER})?\s*$", re.IGNORECASE)
WHERE_SYNTAX = "NAME<X, NAME<=X, NAME>X, NAME>=X or NAME=A..B (e.g. 'lvef_pct<35', 'lvedv_ml=150..250')"


def _strict(bound: float, direction: float) -> float:
    """The next float32 value past `bound` towards `direction`: the service's ranges are closed and its bounds
    32-bit, so `< 35` is `<= 34.999996`, which excludes a stored 35.0 and keeps 34.99."""
    return float(np.nextafter(np.float32(bound), np.float32(direction)))


def parse_where(text: str) -> common_pb2.MeasurementRange:
    """A measurement range written as WHERE_SYNTAX -> MeasurementRange. `<` and `>` are strict, `<=`, `>=` and
    A..B inclusive (either end of A..B may be left out). ValueError with one line saying what is wrong."""
    text = text.strip()
    m = _COMPARISON.match(text)
    if m:
        name, op, num = m.group(1).lower(), m.group(2), float(m.group(3))
        lo = hi = None
        if op == "<":
            hi = _strict(num, -math.inf)
        elif op == "<=":
            hi = num
        elif op == ">":
            lo = _strict(num, math.inf)
        else:
            lo = num
    else:
        m = _INTERVAL.match(text)
        if not m:
            raise ValueError(f"cannot read {text!r} as a measurement range: write {WHERE_SYNTAX}")
        name = m.group(1).lower()
        lo = None if m.group(2) is None else float(m.group(2))
        hi = None if m.group(3) is None else float(m.group(3))
        if lo is None and hi is None:
            raise ValueError(f"{text!r}: give at least one bound of the range A..B")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{text!r}: the range {lo:g}..{hi:g} is empty (its start is above its end)")
    if name not in MEASUREMENT_FIELDS:
        raise ValueError(f"{text!r}: unknown measurement {name!r}; valid: {', '.join(MEASUREMENT_FIELDS)}")
    for v in (lo, hi):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"{text!r}: bounds must be finite numbers")
    r = common_pb2.MeasurementRange(measure=name)
    if lo is not None:
        r.min = lo
    if hi is not None:
        r.max = hi
    return r


def measurement_ranges(where: Iterable[str | common_pb2.MeasurementRange]) -> list[common_pb2.MeasurementRange]:
    return [w if isinstance(w, common_pb2.MeasurementRange) else parse_where(w) for w in where]


def search_filter(vendors: Sequence[str] = (), field_strengths_t: Sequence[float] = (), date_from: str = "",
                  date_to: str = "", views_all: Sequence[str] = (), labels_all: Sequence[str] = (),
                  labels_none: Sequence[str] = (),
                  where: Sequence[str | common_pb2.MeasurementRange] = ()) -> search_pb2.SearchFilter:
    """`where`: measurement ranges, as MeasurementRange messages or text ('lvef_pct<35', see parse_where);
    every one must hold, and an exam without that measurement never matches."""
    return search_pb2.SearchFilter(vendors=list(vendors), field_strengths_t=list(field_strengths_t),
                                   date_from=date_from, date_to=date_to, views_all=list(views_all),
                                   labels_all=list(labels_all), labels_none=list(labels_none),
                                   measurements=measurement_ranges(where))


def study_query(study_key: str | None = None, embedding: np.ndarray | None = None, path: str | None = None,
                uri: str | None = None) -> common_pb2.StudyQuery:
    if study_key:
        return common_pb2.StudyQuery(study_key=study_key)
    if embedding is not None:
        return common_pb2.StudyQuery(embedding=to_vector(embedding))
    if path is not None:
        return common_pb2.StudyQuery(ref=common_pb2.StudyRef(path=path))
    if uri is not None:
        return common_pb2.StudyQuery(ref=common_pb2.StudyRef(uri=uri))
    raise ValueError("give a study_key, an embedding, a path or a uri")


class SearchClient:
    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 timeout_s: float | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.search_url
        self.timeout_s = timeout_s or self.settings.request_timeout_s
        self.channel = open_channel(self.url, self.settings)
        self.stub = search_pb2_grpc.SearchServiceStub(self.channel)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        wait_for_health(self.channel, "cmr.v1.SearchService", timeout_s)

    def search_text(self, query: str, top_k: int = 10, offset: int = 0, **filters: Any) -> list[search_pb2.ExamHit]:
        r = self.stub.SearchByText(search_pb2.SearchByTextRequest(query=query, top_k=top_k, offset=offset,
                                                                  filter=search_filter(**filters)),
                                   timeout=self.timeout_s)
        return list(r.hits)

    def similar(self, top_k: int = 10, include_self: bool = False, filters: dict[str, Any] | None = None,
                **study: Any) -> search_pb2.SearchByStudyResponse:
        return self.stub.SearchByStudy(search_pb2.SearchByStudyRequest(
            study=study_query(**study), top_k=top_k, include_self=include_self,
            filter=search_filter(**(filters or {}))), timeout=self.timeout_s)

    def zero_shot(self, findings: Sequence[str] = (), **study: Any) -> search_pb2.ZeroShotResponse:
        return self.stub.ZeroShot(search_pb2.ZeroShotRequest(study=study_query(**study), findings=list(findings)),
                                  timeout=self.timeout_s)

    def few_shot(self, positive_keys: Sequence[str], negative_keys: Sequence[str] = (), *, method: str = "prototype",
                 whole_index: bool = False, top_k: int = 10, filters: dict[str, Any] | None = None,
                 **study: Any) -> search_pb2.FewShotResponse:
        m = search_pb2.FEW_SHOT_METHOD_LOGISTIC if method == "logistic" else search_pb2.FEW_SHOT_METHOD_PROTOTYPE
        req = search_pb2.FewShotRequest(positive_keys=list(positive_keys), negative_keys=list(negative_keys), method=m,
                                        top_k=top_k, filter=search_filter(**(filters or {})))
        if whole_index:
            req.whole_index = True
        else:
            req.study.CopyFrom(study_query(**study))
        return self.stub.FewShot(req, timeout=self.timeout_s)

    @staticmethod
    def cohort_request(all_of: Sequence[str] = (), any_of: Sequence[str] = (), none_of: Sequence[str] = (),
                       threshold: float = 0.0, page_size: int = 0, page_token: str = "",
                       **filters: Any) -> search_pb2.BuildCohortRequest:
        return search_pb2.BuildCohortRequest(all_of=list(all_of), any_of=list(any_of), none_of=list(none_of),
                                             threshold=threshold, page_size=page_size, page_token=page_token,
                                             filter=search_filter(**filters))

    def cohort(self, **kwargs: Any) -> search_pb2.CohortPage:
        return self.stub.BuildCohort(self.cohort_request(**kwargs), timeout=self.timeout_s)

    def cohort_members(self, **kwargs: Any) -> list[search_pb2.CohortMember]:
        """Every member, following the page tokens."""
        members, token = [], ""
        while True:
            page = self.cohort(**kwargs, page_token=token)
            members += list(page.members)
            token = page.next_page_token
            if not token:
                return members

    def export_cohort(self, fmt: str = "csv", **kwargs: Any) -> tuple[str, bytes]:
        """(file name, bytes) of the whole cohort as CSV or Parquet."""
        f = search_pb2.EXPORT_FORMAT_PARQUET if fmt == "parquet" else search_pb2.EXPORT_FORMAT_CSV
        name, data = "", bytearray()
        for chunk in self.stub.ExportCohort(search_pb2.ExportCohortRequest(cohort=self.cohort_request(**kwargs),
                                                                           format=f), timeout=self.timeout_s):
            name = name or chunk.file_name
            data += chunk.data
        return name, bytes(data)

    def upsert(self, exams: Iterable[search_pb2.ExamUpsert]) -> search_pb2.UpsertResponse:
        return self.stub.Upsert(search_pb2.UpsertRequest(exams=list(exams)), timeout=self.timeout_s)

    def delete(self, study_keys: Sequence[str]) -> int:
        return self.stub.Delete(search_pb2.DeleteRequest(study_keys=list(study_keys)), timeout=self.timeout_s).deleted

    def get(self, study_key: str, with_vector: bool = False) -> search_pb2.GetResponse:
        return self.stub.Get(search_pb2.GetRequest(study_key=study_key, with_vector=with_vector), timeout=self.timeout_s)

    def stats(self) -> search_pb2.StatsResponse:
        return self.stub.Stats(search_pb2.StatsRequest(), timeout=self.timeout_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> SearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
