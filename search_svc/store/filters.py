"""ExamFilter -> each engine's native filter. Both functions walk the same neutral clauses
(`ExamFilter.clauses()`) and map each clause kind to the same Qdrant condition, so the two engines agree by
construction; the congruence tests check that they also agree in practice.

Clause -> Qdrant condition (identical in both engines):
    AnyOf(key, values)          FieldCondition(key, match=MatchAny(values))
    Contains(key, value)        FieldCondition(key, match=MatchValue(value))
    NumberNear(key, vs, tol)    Filter(should=[FieldCondition(key, range=[v-tol, v+tol]) for v in vs])
                                (MatchAny takes only strings and integers, hence ranges for floats)
    DateRange(key, gte, lt)     FieldCondition(key, range=DatetimeRange(gte, lt))
    NumberRange(key, gte, lte)  FieldCondition(key, range=[gte, lte]); with neither bound the range is
                                [-DBL_MAX, unbounded): "has a value" (a point lacking the key never matches a range)
"""

from __future__ import annotations

import sys

import qdrant_edge as edge
from qdrant_client import models as qm

from search_svc.store.schema import AnyOf, Clause, Contains, DateRange, ExamFilter, NumberNear, NumberRange

_ANY_NUMBER = -sys.float_info.max  # lower bound of an unbounded range: finite, so JSON (a server) carries it


def _bounds(gte: float | None, lte: float | None) -> tuple[float | None, float | None]:
    return (_ANY_NUMBER if gte is None and lte is None else gte), lte


def to_edge_filter(exam_filter: ExamFilter | None) -> edge.Filter | None:
    """The qdrant_edge filter of an ExamFilter (None when it constrains nothing)."""
    if exam_filter is None:
        return None
    clauses = exam_filter.clauses()
    if not (clauses.must or clauses.must_not):
        return None
    return edge.Filter(must=[_edge_condition(c) for c in clauses.must] or None,
                       must_not=[_edge_condition(c) for c in clauses.must_not] or None)


def _edge_condition(clause: Clause) -> edge.FieldCondition | edge.Filter:
    match clause:
        case AnyOf(key, values):
            return edge.FieldCondition(key, match=edge.MatchAny(list(values)))
        case Contains(key, value):
            return edge.FieldCondition(key, match=edge.MatchValue(value))
        case NumberNear(key, values, tol):
            return edge.Filter(should=[
                edge.FieldCondition(key, range=edge.RangeFloat(gte=v - tol, lte=v + tol)) for v in values])
        case DateRange(key, gte, lt):
            return edge.FieldCondition(key, range=edge.RangeDateTime(gte=gte, lt=lt))
        case NumberRange(key, gte, lte):
            lo, hi = _bounds(gte, lte)
            return edge.FieldCondition(key, range=edge.RangeFloat(gte=lo, lte=hi))
    raise TypeError(f"no qdrant_edge translation for {clause!r}")


def to_client_filter(exam_filter: ExamFilter | None) -> qm.Filter | None:
    """The qdrant_client filter of an ExamFilter (None when it constrains nothing)."""
    if exam_filter is None:
        return None
    clauses = exam_filter.clauses()
    if not (clauses.must or clauses.must_not):
        return None
    return qm.Filter(must=[_client_condition(c) for c in clauses.must] or None,
                     must_not=[_client_condition(c) for c in clauses.must_not] or None)


def _client_condition(clause: Clause) -> qm.FieldCondition | qm.Filter:
    match clause:
        case AnyOf(key, values):
            return qm.FieldCondition(key=key, match=qm.MatchAny(any=list(values)))
        case Contains(key, value):
            return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
        case NumberNear(key, values, tol):
            return qm.Filter(should=[qm.FieldCondition(key=key, range=qm.Range(gte=v - tol, lte=v + tol))
                                     for v in values])
        case DateRange(key, gte, lt):
            return qm.FieldCondition(key=key, range=qm.DatetimeRange(gte=gte, lt=lt))
        case NumberRange(key, gte, lte):
            lo, hi = _bounds(gte, lte)
            return qm.FieldCondition(key=key, range=qm.Range(gte=lo, lte=hi))
    raise TypeError(f"no qdrant_client translation for {clause!r}")
