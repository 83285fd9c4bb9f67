"""What the audit trail records of each audited RPC: the action's name, the request summarised without
identifiers, and how many results went back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

MAX_QUERY_CHARS_LOGGED = 300


def _study(q: Any) -> dict[str, Any]:
    """A StudyQuery by kind: study keys are keyed hashes (safe); paths, URLs and vectors are not logged."""
    kind = q.WhichOneof("study") if q is not None else None
    if kind == "study_key":
        return {"study_key": q.study_key[:128]}
    return {"study": kind or "none"}


def _filter(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("vendors", "labels_all", "labels_none", "views_all"):
        values = list(getattr(f, name))
        if values:
            out[name] = values[:20]
    for name in ("date_from", "date_to"):
        if getattr(f, name):
            out[name] = getattr(f, name)
    return out


def _cohort(r: Any) -> dict[str, Any]:
    return {"all_of": list(r.all_of)[:20], "any_of": list(r.any_of)[:20], "none_of": list(r.none_of)[:20],
            "threshold": round(r.threshold, 4), **({"filter": _filter(r.filter)} if r.HasField("filter") else {})}


@dataclass(frozen=True)
class Audited:
    action: str
    summarize: Callable[[Any], dict[str, Any]]
    # results of a unary reply; streamed replies count their messages (ExportCohort counts bytes)
    count: Callable[[Any], int] | None = None
    count_stream_bytes: bool = False


AUDITED: dict[str, Audited] = {
    "/cmr.v1.SearchService/SearchByText": Audited(
        "search", lambda r: {"query": r.query[:MAX_QUERY_CHARS_LOGGED], "top_k": r.top_k, "offset": r.offset,
                             **({"filter": _filter(r.filter)} if r.HasField("filter") else {})},
        lambda resp: len(resp.hits)),
    "/cmr.v1.SearchService/SearchByStudy": Audited(
        "similar", lambda r: {**_study(r.study), "top_k": r.top_k},
        lambda resp: len(resp.similar_exams) + len(resp.nearest_reports)),
    "/cmr.v1.SearchService/ZeroShot": Audited(
        "zero-shot", lambda r: {**_study(r.study), "findings": list(r.findings)[:20]}, lambda resp: len(resp.scores)),
    "/cmr.v1.SearchService/FewShot": Audited(
        "few-shot", lambda r: {"positives": len(r.positive_keys), "negatives": len(r.negative_keys),
                               "top_k": r.top_k}, lambda resp: len(resp.ranked) or 1),
    "/cmr.v1.SearchService/BuildCohort": Audited("cohort", _cohort, lambda resp: len(resp.members)),
    "/cmr.v1.SearchService/ExportCohort": Audited(
        "export", lambda r: {**_cohort(r.cohort), "format": int(r.format)}, count_stream_bytes=True),
    "/cmr.v1.SearchService/Upsert": Audited(
        "upsert", lambda r: {"exams": len(r.exams)}, lambda resp: len(resp.study_keys)),
    "/cmr.v1.SearchService/Delete": Audited(
        "delete", lambda r: {"study_keys": list(r.study_keys)[:100]}, lambda resp: resp.deleted),
    "/cmr.v1.SearchService/Get": Audited("get", lambda r: {"study_key": r.study_key[:128]}, lambda resp: 1),
    "/cmr.v1.GeneratorService/GenerateReport": Audited(
        "draft", lambda r: {**_study(r.study), "mode": int(r.mode)}),
    "/cmr.v1.EncoderService/EncodeStudy": Audited("encode-study", lambda r: {}, lambda resp: 1),
    # index administration (admin only): what changes or copies the whole index
    "/cmr.v1.IndexAdminService/Backup": Audited("backup", lambda r: {"dest": r.dest[:200]}),
    "/cmr.v1.IndexAdminService/StartUpgrade": Audited("upgrade", lambda r: {"model_version": r.model_version[:128]}),
    "/cmr.v1.IndexAdminService/Switch": Audited("switch", lambda r: {"generation": r.generation[:128],
                                                                      "force": r.force}),
    "/cmr.v1.IndexAdminService/Rollback": Audited("rollback", lambda r: {}),
    "/cmr.v1.IndexAdminService/DropGeneration": Audited("drop-generation", lambda r: {
        "generation": r.generation[:128], "force": r.force}),
    "/cmr.v1.EncoderService/EncodeExam": Audited("encode-exam", lambda r: {}, lambda resp: 1),
}


def summarize(method: str, request: Message | None) -> dict[str, Any]:
    audited = AUDITED.get(method)
    if audited is None or request is None:
        return {}
    try:
        return audited.summarize(request)
    except (AttributeError, ValueError):  # an unexpected message shape must never fail the call
        return {}


def reads_identified_study(request: Message | None) -> bool:
    """Whether the request makes the service read a study from storage (StudyRef: identified images)."""
    study = getattr(request, "study", None)
    return study is not None and hasattr(study, "WhichOneof") and study.WhichOneof("study") == "ref"
