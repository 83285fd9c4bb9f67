"""Reading a RIS report export: CSV, HL7 v2 ORU messages or FHIR R4 DiagnosticReports, into `RisReport`s.

Each report keeps what matches it to its study (AccessionNumber, StudyInstanceUID), its full text, and the
patient's identifiers the export carries beside the text (name, MRN, birth date, phone, address, referring
and reporting physicians): the report de-identification removes them from the text whatever form they take.
A report that cannot be read is a `ReportFailure` (its position in the file and why), never an exception:
one bad message must not stop an import.

Parsers: python-hl7 (`hl7`) for HL7 v2, `fhir.resources` (its R4B models, wire-compatible with R4 for these
resources) for FHIR, the standard library for CSV.
"""

from __future__ import annotations

import base64
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

ReportFormat = Literal["csv", "hl7", "fhir"]
FORMATS: Final[tuple[str, ...]] = ("csv", "hl7", "fhir")

_ACCESSION_CODE: Final = "ACSN"  # HL7 v2 table 0203 identifier type of an accession number
# CSV columns whose values identify the patient (read as identifiers when present; others through options).
DEFAULT_IDENTIFIER_COLUMNS: Final[tuple[str, ...]] = (
    "PatientName", "PatientID", "MRN", "PatientBirthDate", "BirthDate", "DOB", "ReferringPhysician",
    "ReferringPhysicianName", "ReportingPhysician", "PatientAddress", "Address", "PatientPhone", "Phone",
    "StudyDate",
)


@dataclass(frozen=True)
class RisReport:
    where: str  # "row 3", "message 5", "line 2": its position in the export (never an identifier)
    accession: str
    study_uid: str
    text: str
    identifiers: tuple[str, ...] = ()  # raw values: names ("Smith^Raj"), IDs, dates, phone, address


@dataclass(frozen=True)
class ReportFailure:
    where: str
    reason: str


@dataclass
class ReportSet:
    reports: list[RisReport] = field(default_factory=list)
    failures: list[ReportFailure] = field(default_factory=list)


@dataclass(frozen=True)
class CsvColumns:
    accession: str = "AccessionNumber"
    study_uid: str = "StudyInstanceUID"
    text: str = "ReportText"
    identifiers: tuple[str, ...] = DEFAULT_IDENTIFIER_COLUMNS


def _clean(value: object) -> str:
    return str(value or "").strip()


# ------------------------------------------------------------------------------------------------------------
# CSV


def read_csv(path: Path, columns: CsvColumns = CsvColumns()) -> ReportSet:
    out = ReportSet()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a whole report per cell
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if columns.text not in header:
            raise ValueError(f"{path.name}: no report text column {columns.text!r} (columns: {', '.join(header)}); "
                             "name it with --text-column")
        if columns.accession not in header and columns.study_uid not in header:
            raise ValueError(f"{path.name}: neither {columns.accession!r} nor {columns.study_uid!r} is a column: "
                             "reports cannot be matched (name them with --accession-column / --uid-column)")
        for n, row in enumerate(reader, 2):  # row 1 is the header
            where = f"row {n}"
            text = _clean(row.get(columns.text))
            if not text:
                out.failures.append(ReportFailure(where, "empty report text"))
                continue
            ids = tuple(v for c in columns.identifiers if (v := _clean(row.get(c))))
            out.reports.append(RisReport(where, _clean(row.get(columns.accession)), _clean(row.get(columns.study_uid)),
                                         text, ids))
    return out


# ------------------------------------------------------------------------------------------------------------
# HL7 v2


def _hl7_messages(raw: str) -> Iterator[str]:
    import hl7

    # MLLP framing (VT ... FS CR) and LF/CRLF segment ends are common in files: normalise to CR.
    text = raw.replace("\x0b", "").replace("\x1c", "\r").replace("\r\n", "\r").replace("\n", "\r")
    yield from hl7.split_file(text)


def _field(msg: Any, seg: str, n: int) -> Any | None:
    try:
        return msg.segment(seg)[n]
    except (KeyError, IndexError):
        return None


def _first_component(value: Any | None) -> str:
    """The first component of the first repetition (python-hl7 containers print back as HL7 text)."""
    return "" if value is None else _clean(str(value).split("~")[0].split("^")[0])


def _hl7_report(msg: Any, where: str) -> RisReport:
    import hl7

    if _clean(_field(msg, "MSH", 9)).split("^")[:1] != ["ORU"]:
        raise ValueError(f"not an ORU message (MSH-9 {_clean(_field(msg, 'MSH', 9))!r})")
    lines = []
    for obx in msg.segments("OBX") if any(s[0][0] == "OBX" for s in msg) else []:
        if _clean(obx[2]) not in ("TX", "FT", "ST", "CE", ""):
            continue
        for rep in obx[5] if len(obx) > 5 else []:
            lines.append(hl7.util.unescape(msg, str(rep)).replace("\r", "\n"))
    text = "\n".join(lines).strip()
    if not text:
        raise ValueError("no OBX report text")
    accession = _first_component(_field(msg, "OBR", 3)) or _first_component(_field(msg, "ORC", 3)) \
        or _first_component(_field(msg, "OBR", 2))
    study_uid = _first_component(_field(msg, "ZDS", 1))
    ids = [str(v) for v in (_field(msg, "PID", 3), _field(msg, "PID", 5), _field(msg, "PID", 7),
                            _field(msg, "PID", 11), _field(msg, "PID", 13), _field(msg, "PID", 14),
                            _field(msg, "PID", 18), _field(msg, "PV1", 7), _field(msg, "PV1", 8),
                            _field(msg, "OBR", 16), _field(msg, "OBR", 32), _field(msg, "OBR", 33),
                            _field(msg, "OBR", 34)) if v is not None and str(v).strip()]
    # Names and addresses are component lists (family^given, street^^city^state^zip): keep each repetition
    # whole (the scrubber splits on ^) and drop HL7 type codes by keeping only values with a letter or digit.
    return RisReport(where, accession, study_uid, text, tuple(i for i in ids if any(c.isalnum() for c in i)))


def read_hl7(path: Path) -> ReportSet:
    import hl7

    out = ReportSet()
    raw = path.read_bytes().decode("utf-8", errors="replace")
    for n, message in enumerate(_hl7_messages(raw), 1):
        where = f"message {n}"
        try:
            out.reports.append(_hl7_report(hl7.parse(message), where))
        except Exception as exc:  # noqa: BLE001 - python-hl7 raises several types on a malformed message
            out.failures.append(ReportFailure(where, f"unparsable HL7 message ({type(exc).__name__}: "
                                                     f"{str(exc)[:80]})"))
    if not out.reports and not out.failures:
        raise ValueError(f"{path.name}: no HL7 message (no MSH segment) found")
    return out


# ------------------------------------------------------------------------------------------------------------
# FHIR


def _human_names(names: list[Any] | None) -> list[str]:
    return ["^".join([n.family or "", *(n.given or [])]) for n in names or []]


def _fhir_text(report: Any) -> str:
    for form in report.presentedForm or []:
        if form.data and (form.contentType or "text/plain").startswith("text/"):
            data = form.data if isinstance(form.data, bytes) else str(form.data).encode()
            try:
                return base64.b64decode(data, validate=False).decode("utf-8")
            except Exception:  # noqa: BLE001 - fhir.resources may already have decoded the base64
                return data.decode("utf-8", errors="replace")
    if report.text is not None and report.text.div:
        import re

        return re.sub(r"<[^>]+>", "\n", str(report.text.div))
    return _clean(report.conclusion)


def _fhir_reports(resources: list[Any], where: str) -> list[RisReport]:
    by_ref = {f"{r.__resource_type__}/{r.id}": r for r in resources if getattr(r, "id", None)}
    people: list[str] = []
    for r in resources:
        kind = r.__resource_type__
        if kind == "Patient":
            people += _human_names(r.name)
            people += [_clean(i.value) for i in r.identifier or []]
            people += [_clean(t.value) for t in r.telecom or []]
            people += [", ".join([*(a.line or []), a.city or "", f"{a.state or ''} {a.postalCode or ''}"])
                       for a in r.address or []]
            if r.birthDate:
                people.append(str(r.birthDate))
        elif kind in ("Practitioner", "RelatedPerson"):
            people += _human_names(r.name)
    out = []
    reports = [r for r in resources if r.__resource_type__ == "DiagnosticReport"]
    for k, rep in enumerate(reports, 1):
        accession = next((_clean(i.value) for i in rep.identifier or []
                          if i.type and any(c.code == _ACCESSION_CODE for c in i.type.coding or [])), "")
        uid = ""
        for ref in rep.imagingStudy or []:
            study = by_ref.get(_clean(ref.reference))
            for ident in (study.identifier if study is not None else None) or []:
                value = _clean(ident.value)
                if value.startswith("urn:oid:"):
                    uid = value[len("urn:oid:"):]
        text = _fhir_text(rep).strip()
        sub = where if len(reports) == 1 else f"{where} report {k}"
        out.append(RisReport(sub, accession, uid, text, tuple(p for p in people if p)))
    return out


def read_fhir(path: Path) -> ReportSet:
    """NDJSON of Bundles or DiagnosticReports (one resource per line), or one JSON Bundle."""
    from fhir.resources.R4B import get_fhir_model_class

    out = ReportSet()
    raw = path.read_text(encoding="utf-8")
    stripped = raw.lstrip()
    docs: list[tuple[str, str]]
    if stripped.startswith("{") and "\n{" not in stripped.strip():
        docs = [("bundle", raw)]
    else:
        docs = [(f"line {n}", line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    for where, doc in docs:
        try:
            kind = json.loads(doc).get("resourceType", "")
            resource = get_fhir_model_class(kind).model_validate_json(doc)
            resources = ([e.resource for e in resource.entry or [] if e.resource is not None]
                         if kind == "Bundle" else [resource])
            found = _fhir_reports(resources, where)
            if not found:
                out.failures.append(ReportFailure(where, f"no DiagnosticReport in the {kind or 'resource'}"))
            for rep in found:
                if rep.text:
                    out.reports.append(rep)
                else:
                    out.failures.append(ReportFailure(rep.where, "DiagnosticReport without text "
                                                                 "(presentedForm, narrative or conclusion)"))
        except Exception as exc:  # noqa: BLE001 - invalid JSON, unknown resource type, failed validation
            out.failures.append(ReportFailure(where, f"unparsable FHIR resource ({type(exc).__name__})"))
    return out


def read_reports(path: Path, fmt: ReportFormat | None = None, columns: CsvColumns = CsvColumns()) -> ReportSet:
    """Every report of a RIS export; the format from `fmt` or the file name (.csv, .hl7/.txt, .json/.ndjson)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such report file")
    fmt = fmt or guess_format(path)
    if fmt == "csv":
        return read_csv(path, columns)
    if fmt == "hl7":
        return read_hl7(path)
    if fmt == "fhir":
        return read_fhir(path)
    raise ValueError(f"unknown report format {fmt!r}: one of {', '.join(FORMATS)}")


def guess_format(path: Path) -> ReportFormat:
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".hl7", ".oru")):
        return "hl7"
    if name.endswith((".json", ".ndjson")):
        return "fhir"
    raise ValueError(f"{path.name}: cannot tell the report format from the name; pass --format csv|hl7|fhir")


__all__ = ["CsvColumns", "DEFAULT_IDENTIFIER_COLUMNS", "FORMATS", "ReportFailure", "ReportFormat", "ReportSet",
           "RisReport", "guess_format", "read_reports"]
