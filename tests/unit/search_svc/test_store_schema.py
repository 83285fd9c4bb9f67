"""The exam payload schema of the search index: keyed study hashes, point ids, strict payloads, filters and
their translation to both Qdrant engines."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid

import numpy as np
import pytest
import qdrant_edge as edge
from qdrant_client import models as qm

from cmr.rpc.keys import point_id, study_key
from search_svc.store import VectorPoint
from search_svc.store.filters import to_client_filter, to_edge_filter
from search_svc.store.schema import (
    AnyOf,
    Contains,
    DateRange,
    ExamFilter,
    ExamPayload,
    NumberNear,
    normalise_vendor,
)

UID = "1.2.826.0.1.3680043.8.498.87324255875663700220770605386554243443"


def payload(**changes: object) -> ExamPayload:
    fields: dict[str, object] = dict(
        study_key=study_key(UID, "s"), vendor="siemens", model_version="cmr-clip-small",
        study_date="2021-03-04", field_strength_t=1.5, views=("cine_sax", "lge_sax"), labels=("lge",),
        impression="Mid-wall LGE.")
    fields.update(changes)
    return ExamPayload(**fields)  # type: ignore[arg-type]


# --- study keys and point ids -------------------------------------------------------------------------------
def test_study_key_is_a_truncated_hmac_of_the_uid() -> None:
    expected = hmac.new(b"secret", UID.encode(), hashlib.sha256).hexdigest()[:32]
    assert study_key(UID, "secret") == expected
    assert study_key(f"  {UID}\n", "secret") == expected  # header whitespace does not change the study
    assert len(expected) == 32 and int(expected, 16) >= 0


def test_study_key_depends_on_secret_and_uid() -> None:
    assert study_key(UID, "a") != study_key(UID, "b")
    assert study_key(UID, "a") != study_key(UID[:-1] + "4", "a")
    assert UID not in study_key(UID, "a")


@pytest.mark.parametrize("uid", ["", "   ", "1.2.abc", "1" * 65, "Doe^John", "1..2"])
def test_study_key_refuses_what_is_not_a_uid(uid: str) -> None:
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        study_key(uid, "s")


def test_study_key_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        study_key(UID, "")


def test_point_id_is_a_deterministic_uuid5_of_the_key() -> None:
    key = study_key(UID, "s")
    pid = point_id(key)
    assert pid == point_id(key) and uuid.UUID(pid).version == 5
    assert pid != point_id(study_key(UID, "other"))
    with pytest.raises(ValueError, match="32 lower-case hex"):
        point_id("not-a-key")
    with pytest.raises(ValueError, match="32 lower-case hex"):
        point_id(key.upper())


# --- the payload --------------------------------------------------------------------------------------------
def test_payload_round_trips_through_dict() -> None:
    p = payload()
    d = p.to_dict()
    assert d["study_year"] == 2021 and d["views"] == ["cine_sax", "lge_sax"]
    assert ExamPayload.from_dict(d) == p


def test_payload_leaves_out_absent_values() -> None:
    p = payload(study_date=None, field_strength_t=None, labels=())
    d = p.to_dict()
    assert "study_date" not in d and "study_year" not in d and "field_strength_t" not in d
    assert ExamPayload.from_dict(d) == p and p.study_year is None


@pytest.mark.parametrize("key", ["patient_name", "study_instance_uid", "PatientID", "accession_number"])
def test_payload_refuses_unknown_keys(key: str) -> None:
    d = payload().to_dict() | {key: "anything"}
    with pytest.raises(ValueError, match=f"unknown keys \\['{key}'\\]"):
        ExamPayload.from_dict(d)
    with pytest.raises(ValueError, match=f"unknown keys \\['{key}'\\]"):  # the trusted read path too
        ExamPayload.from_stored(d)


@pytest.mark.parametrize("changes", [{}, {"study_date": None, "field_strength_t": None, "labels": ()},
                                     {"views": (), "impression": ""}])
def test_stored_payload_reads_back_equal_to_the_checked_one(changes: dict[str, object]) -> None:
    p = payload(**changes)
    back = ExamPayload.from_stored(p.to_dict())
    assert back == p and back.study_year == p.study_year and hash(back) == hash(p)


def test_stored_payload_without_a_required_key_is_refused_by_name() -> None:
    d = payload().to_dict()
    del d["vendor"]
    with pytest.raises(ValueError, match="lacks required keys \\['vendor'\\]"):
        ExamPayload.from_stored(d)


def test_payload_validation() -> None:
    assert payload(study_date=dt.date(2020, 2, 29)).study_date == "2020-02-29"
    assert payload(field_strength_t=3).field_strength_t == 3.0
    assert payload(views=["cine_sax", "cine_sax"]).views == ("cine_sax",)  # lists taken, duplicates dropped
    with pytest.raises(ValueError, match="vendor must be one of"):
        payload(vendor="SIEMENS")
    with pytest.raises(ValueError, match="study_key"):
        payload(study_key=UID)  # the raw UID is never a study key
    with pytest.raises(ValueError, match="ISO date"):
        payload(study_date="04/03/2021")
    with pytest.raises(ValueError, match="field strength"):
        payload(field_strength_t=0)
    with pytest.raises(ValueError, match="not one string"):
        payload(views="cine_sax")
    with pytest.raises(ValueError, match="lower-case token"):
        payload(labels=("LGE present",))
    with pytest.raises(ValueError, match="lacks required keys \\['vendor'\\]"):
        ExamPayload.from_dict({k: v for k, v in payload().to_dict().items() if k != "vendor"})
    with pytest.raises(ValueError, match="study_year 2020 does not match"):
        ExamPayload.from_dict(payload().to_dict() | {"study_year": 2020})


@pytest.mark.parametrize(("manufacturer", "vendor"), [
    ("SIEMENS", "siemens"), ("Siemens Healthineers", "siemens"), ("GE MEDICAL SYSTEMS", "ge"),
    ("GE HealthCare", "ge"), ("Philips Medical Systems", "philips"), ("Philips", "philips"),
    ("TOSHIBA_MEC", "canon"), ("Canon Medical Systems", "canon"), ("Hitachi", "other"), ("", "other"),
    (None, "other"), ("Generic scanner", "other"),
])
def test_normalise_vendor(manufacturer: str | None, vendor: str) -> None:
    assert normalise_vendor(manufacturer) == vendor


def test_vector_point_checks_its_vector_and_id() -> None:
    p = payload()
    point = VectorPoint.for_exam(p, [1.0, 2.0])
    assert point.id == point_id(p.study_key) and point.vector.dtype == np.float32
    with pytest.raises(ValueError, match="all zeros"):
        VectorPoint.for_exam(p, [0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        VectorPoint.for_exam(p, [1.0, float("inf")])
    with pytest.raises(ValueError, match="1-D"):
        VectorPoint.for_exam(p, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="UUID"):
        VectorPoint("exam-1", np.ones(2, np.float32), p)
    with pytest.raises(TypeError, match="ExamPayload"):
        VectorPoint(point.id, np.ones(2, np.float32), p.to_dict())  # type: ignore[arg-type]


# --- the filter ---------------------------------------------------------------------------------------------
def test_filter_clauses() -> None:
    key = study_key(UID, "s")
    f = ExamFilter(vendors=("siemens", "ge"), field_strengths_t=(1.5,), date_from="2020-01-01",
                   date_to=dt.date(2020, 12, 31), views_all=("lge_sax",), labels_all=("lge", "lv_dilation"),
                   labels_none=("lv_hypertrophy",), study_keys_none=(key,))
    clauses = f.clauses()
    assert clauses.must == (
        AnyOf("vendor", ("siemens", "ge")),
        NumberNear("field_strength_t", (1.5,), 0.05),
        DateRange("study_date", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"),  # inclusive: < the next day
        Contains("views", "lge_sax"),
        Contains("labels", "lge"),
        Contains("labels", "lv_dilation"),
    )
    assert clauses.must_not == (AnyOf("labels", ("lv_hypertrophy",)), AnyOf("study_key", (key,)))
    assert not f.is_empty and ExamFilter().is_empty


def test_open_ended_date_ranges() -> None:
    since = ExamFilter(date_from="2020-01-01").clauses().must
    until = ExamFilter(date_to="2020-01-01").clauses().must
    assert since == (DateRange("study_date", "2020-01-01T00:00:00Z", None),)
    assert until == (DateRange("study_date", None, "2020-01-02T00:00:00Z"),)


def test_filter_validation() -> None:
    with pytest.raises(ValueError, match="unknown vendors \\['toshiba'\\]"):
        ExamFilter(vendors=("toshiba",))
    with pytest.raises(ValueError, match="after date_to"):
        ExamFilter(date_from="2021-01-02", date_to="2021-01-01")
    with pytest.raises(ValueError, match="ISO date"):
        ExamFilter(date_from="last year")
    with pytest.raises(ValueError, match="both required and excluded"):
        ExamFilter(labels_all=("lge",), labels_none=("lge",))
    with pytest.raises(ValueError, match="not one number"):
        ExamFilter(field_strengths_t=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="field strength"):
        ExamFilter(field_strengths_t=(-1.0,))
    with pytest.raises(ValueError, match="not a study key"):
        ExamFilter(study_keys_none=(UID,))


def test_empty_filters_translate_to_none() -> None:
    for f in (None, ExamFilter()):
        assert to_edge_filter(f) is None and to_client_filter(f) is None


def test_translations_mirror_each_other() -> None:
    f = ExamFilter(vendors=("philips",), field_strengths_t=(1.5, 3.0), date_from="2019-05-01",
                   views_all=("cine_4ch",), labels_none=("lge",))
    e = to_edge_filter(f)
    c = to_client_filter(f)
    assert isinstance(e, edge.Filter) and isinstance(c, qm.Filter)
    assert e.must is not None and c.must is not None and len(e.must) == len(c.must) == 4
    assert e.must_not is not None and c.must_not is not None and len(e.must_not) == len(c.must_not) == 1
    # vendor: MatchAny on a keyword
    assert c.must[0] == qm.FieldCondition(key="vendor", match=qm.MatchAny(any=["philips"]))
    assert isinstance(e.must[0], edge.FieldCondition) and e.must[0].key == "vendor"
    assert isinstance(e.must[0].match, edge.MatchAny) and list(e.must[0].match.value) == ["philips"]
    # field strength: a nested should of float ranges, one per value
    assert isinstance(c.must[1], qm.Filter) and isinstance(e.must[1], edge.Filter)
    assert [cond.range.gte for cond in c.must[1].should] == [1.45, 2.95]  # type: ignore[union-attr]
    assert [cond.range.gte for cond in e.must[1].should] == [1.45, 2.95]  # type: ignore[union-attr]
    # date: a datetime range with the same bounds
    assert c.must[2] == qm.FieldCondition(key="study_date",
                                          range=qm.DatetimeRange(gte="2019-05-01T00:00:00Z"))
    assert isinstance(e.must[2], edge.FieldCondition) and isinstance(e.must[2].range, edge.RangeDateTime)
    assert e.must[2].range.gte.startswith("2019-05-01 00:00:00") and e.must[2].range.lt is None  # parsed, UTC
    # views: MatchValue on a list field
    assert c.must[3] == qm.FieldCondition(key="views", match=qm.MatchValue(value="cine_4ch"))
    match = e.must[3].match  # type: ignore[union-attr]
    assert isinstance(match, edge.MatchValue) and match.value == "cine_4ch"
    assert c.must_not[0] == qm.FieldCondition(key="labels", match=qm.MatchAny(any=["lge"]))
    assert e.must_not[0].key == "labels"  # type: ignore[union-attr]
