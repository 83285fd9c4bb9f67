"""The full report of a synthetic study, as a hospital's RIS holds it, and the RIS export of a data set.

A real archive's report is not the impression alone: a header with the patient's identifiers, clinical
history, technique, findings, measurements, the impression under one of several section names, a signature
and sometimes an addendum. `full_report` writes that around the study's impression, with the identity the
DICOM headers carry (cmr.synth.dicom_writer.StudyHeader: PatientName, PatientID as the MRN, AccessionNumber,
birth and study dates) plus what only the RIS knows (phone, address, referring and reporting physicians), in
varied formats, so that `cmr dataset import` has something real-looking to extract and de-identify.

`export_ris` writes the reports of a data set in three formats a RIS exports (under `ris/`):
  reports.csv         one row per report (AccessionNumber, StudyInstanceUID, identifiers, ReportText)
  reports.hl7         HL7 v2.5 ORU^R01 messages, one OBX TX segment per report line
  reports.fhir.ndjson one FHIR R4 Bundle per line: Patient, Practitioners, ImagingStudy, DiagnosticReport
  full/study_NNNNN.txt the full report text of each study
Every identifier is fake. The report's random stream is its own (seeded from (seed, index, 2)), so adding the
export changes no image and no impression of a study.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from cmr.synth.dicom_writer import StudyHeader
from cmr.synth.scanners import ScannerStyle
from cmr.synth.truth import StudyTruth

RIS_DIR: Final = "ris"
CSV_FILE: Final = "reports.csv"
HL7_FILE: Final = "reports.hl7"
FHIR_FILE: Final = "reports.fhir.ndjson"
FULL_DIR: Final = "full"

# Section names the synthesiser writes for the impression (the extractor's tests hold out other spellings).
IMPRESSION_HEADERS: Final = ("IMPRESSION", "CONCLUSION", "SUMMARY", "OPINION", "ASSESSMENT")
# How the impression section is laid out: header on its own line or inline, prose wrapped or not, the
# impression moved into the findings ("see above"), or no impression section at all (findings only).
LAYOUTS: Final = ("own_line", "inline", "wrapped", "numbered_inline", "see_above", "findings_only")
_LAYOUT_P: Final = (0.3, 0.2, 0.2, 0.15, 0.1, 0.05)

_PHYS_FIRST: Final = ("Anna", "Peter", "Maria", "David", "Ingrid", "Samuel", "Leila", "Tomas", "Grace", "Victor")
_PHYS_LAST: Final = ("Novak", "Lindqvist", "Okonkwo", "Brennan", "Moreau", "Castillo", "Kowalski", "Abernathy",
                     "Fitzgerald", "Yamamoto")
_STREETS: Final = ("Elm Street", "Maple Avenue", "Harbour Road", "Orchard Lane", "Station Road", "Hillcrest Drive")
_TOWNS: Final = (("Springfield", "IL", "62701"), ("Riverton", "WY", "82501"), ("Fairview", "OR", "97024"),
                 ("Greenville", "SC", "29601"), ("Ashford", "CT", "06278"))
_INDICATIONS: Final = ("chest pain", "breathlessness on exertion", "palpitations", "an abnormal ECG",
                       "a family history of cardiomyopathy", "assessment of LV function", "syncope",
                       "raised troponin with unobstructed coronary arteries")
_SIGNATURES: Final = ("Electronically signed by {name}, MD on {date}", "Reported by: Dr {name} {date}",
                      "Dictated by {name}, MD. Verified {date}.")


def _dates(d: date, rng: np.random.Generator) -> str:
    """One of the ways a RIS writes a date."""
    forms = (d.strftime("%m/%d/%Y"), d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%d %B %Y"),
             d.strftime("%b %d, %Y"))
    return forms[int(rng.integers(len(forms)))]


def date_forms(d: date) -> tuple[str, ...]:
    """Every textual form `_dates` can write, plus DICOM's (what a leak check must look for)."""
    return (d.strftime("%m/%d/%Y"), d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%d %B %Y"),
            d.strftime("%b %d, %Y"), d.strftime("%Y%m%d"))


def _person(rng: np.random.Generator) -> tuple[str, str]:
    return str(rng.choice(_PHYS_FIRST)), str(rng.choice(_PHYS_LAST))


def _measurements(truth: StudyTruth, measured: Mapping[str, Any]) -> list[str]:
    """The report's measurement lines. Volumes, EFs and mass are what the reader measured on the images: the
    study's reference segmentation (`reference_measurements`, the numbers the reports.jsonl path trains the
    measurement tokens with), not the phantom's parameters, which no reader sees; so an imported archive reads
    back the same numbers (cmr.archive.measurements). Wall thickness, atrium and aorta are not segmented: the
    phantom's values."""

    def vol(label: str, raw: str, indexed: str, unit: str = "mL") -> str:
        return f"{label} {measured[raw]:.1f} {unit} (indexed {measured[indexed]:.1f} {unit}/m2)"

    def known(*keys: str) -> bool:
        return all(measured.get(k) is not None for k in keys)

    lines = []
    if known("lvedv_ml", "lvedvi_ml_m2", "lvesv_ml", "lvesvi_ml_m2", "lvef_pct"):
        lines.append(f"{vol('LVEDV', 'lvedv_ml', 'lvedvi_ml_m2')}; {vol('LVESV', 'lvesv_ml', 'lvesvi_ml_m2')}; "
                     f"LVEF {measured['lvef_pct']:.1f}%")
    if known("lv_mass_g", "lv_mass_index_g_m2"):
        lines.append(vol("LV mass", "lv_mass_g", "lv_mass_index_g_m2", "g"))
    if known("rvedv_ml", "rvedvi_ml_m2", "rvef_pct"):
        lines.append(f"{vol('RVEDV', 'rvedv_ml', 'rvedvi_ml_m2')}; RVEF {measured['rvef_pct']:.1f}%")
    return [
        *lines,
        f"Maximal LV wall thickness {truth.lv_max_wall_mm:.0f} mm; LA volume index {truth.lavi:.0f} mL/m2",
        f"Aortic root {truth.aortic_root_mm:.0f} mm; BSA {truth.bsa:.2f} m2",
    ]


def _impression_block(header: str, layout: str, impression: str) -> list[str]:
    if layout == "own_line":
        return [f"{header}:", impression]
    if layout == "inline":
        return [f"{header.title()}: {impression}"]
    if layout == "wrapped":  # RIS text wrapped at 72 columns (words and hyphenated words kept whole)
        lines = impression.split("\n")
        wrapped = [textwrap.fill(line, 72, break_long_words=False, break_on_hyphens=False,
                                 subsequent_indent="   " if line[:1].isdigit() else "") for line in lines]
        return [header, *wrapped]
    if layout == "numbered_inline":
        return [f"{header}: {impression}"]
    if layout == "see_above":
        return [f"{header}:", "See above."]
    return []  # findings_only


def full_report(truth: StudyTruth, header: StudyHeader, impression: str, style: ScannerStyle, seed: int,
                index: int, measured: Mapping[str, Any]) -> dict[str, Any]:
    """The RIS record of one study: identifiers, the full report text, and how it was laid out (the truth of
    the extraction test: `impression` is what an extractor must return). `measured`: the study's reference
    measurements (`Measurements.values()`), the volumes, EFs and mass its report states."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 2]))
    family, given = header.patient_name.split("^")
    ref_first, ref_last = _person(rng)
    rep_first, rep_last = _person(rng)
    street_no = int(rng.integers(2, 400))
    town, state, zipc = _TOWNS[int(rng.integers(len(_TOWNS)))]
    address = f"{street_no} {rng.choice(_STREETS)}, {town}, {state} {zipc}"
    phone = f"(555) {int(rng.integers(200, 999))}-{int(rng.integers(1000, 9999))}"
    birth = datetime.strptime(header.birth_date, "%Y%m%d").date()
    prior = header.study_date - timedelta(days=int(rng.integers(60, 900)))
    signed = datetime.combine(header.study_date, datetime.min.time()) + timedelta(hours=int(rng.integers(10, 18)))
    title = "Mr" if truth.sex == "M" else "Ms"
    section = str(rng.choice(IMPRESSION_HEADERS))
    layout = str(rng.choice(LAYOUTS, p=_LAYOUT_P))
    sign = str(rng.choice(_SIGNATURES)).format(name=f"{rep_first} {rep_last}",
                                               date=signed.strftime("%m/%d/%Y %H:%M"))
    findings = ("Normal situs. Cine imaging shows the ventricles as measured below. Late gadolinium enhancement "
                f"images were acquired. Compared with the prior study of {_dates(prior, rng)}.")
    if layout in ("see_above", "findings_only"):
        findings = impression
    lines = [
        "CARDIAC MRI REPORT",
        f"Patient: {family.upper()}, {given.upper()}    MRN: {header.patient_id}    DOB: {_dates(birth, rng)}",
        f"Accession: {header.accession}    Exam date: {_dates(header.study_date, rng)}",
        f"Referring physician: Dr. {ref_first} {ref_last}    Tel: {phone}",
        f"Address: {address}",
        "",
        "CLINICAL HISTORY:",
        f"{truth.age}-year-old {'man' if truth.sex == 'M' else 'woman'} ({title} {family}) referred by "
        f"Dr. {ref_last} for {rng.choice(_INDICATIONS)}.",
        "",
        "TECHNIQUE:",
        f"CMR at {style.field_strength:g} T ({style.manufacturer}): cine SSFP in short- and long-axis planes, "
        "late gadolinium enhancement after 0.1 mmol/kg gadobutrol.",
        "",
        "FINDINGS:",
        findings,
        "",
        "MEASUREMENTS:",
        *_measurements(truth, measured),
        "",
        *_impression_block(section, layout, impression),
        "",
        sign,
    ]
    if rng.random() < 0.2:  # an addendum after signing: not part of the impression
        lines += ["", f"ADDENDUM ({_dates(header.study_date + timedelta(days=1), rng)}): results discussed with "
                      f"Dr. {ref_first} {ref_last} by telephone ({phone}) at the request of {given} {family}."]
    return {
        "index": index,
        "accession": header.accession,
        "study_instance_uid": header.study_uid,
        "patient_name": header.patient_name,
        "mrn": header.patient_id,
        "birth_date": header.birth_date,
        "sex": header.sex,
        "study_date": header.study_date.strftime("%Y%m%d"),
        "prior_date": prior.strftime("%Y%m%d"),
        "referring_physician": f"{ref_last}^{ref_first}",
        "reporting_physician": f"{rep_last}^{rep_first}",
        "phone": phone,
        "address": address,
        "section": section if layout != "findings_only" else "",
        "layout": layout,
        "impression": impression,
        "text": "\n".join(lines),
    }


# ------------------------------------------------------------------------------------------------------------
# Export formats


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


CSV_COLUMNS: Final = ("AccessionNumber", "StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate",
                      "PatientAddress", "PatientPhone", "ReferringPhysician", "ReportingPhysician", "StudyDate",
                      "ReportText")


def to_csv(entries: Iterable[dict[str, Any]]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for e in entries:
        w.writerow([e["accession"], e["study_instance_uid"], e["patient_name"], e["mrn"], e["birth_date"],
                    e["address"], e["phone"], e["referring_physician"], e["reporting_physician"], e["study_date"], e["text"]])
    return buf.getvalue()


def _hl7_escape(text: str) -> str:
    """HL7 v2 escaping of the delimiters |^~\\& (2.7.4); the escape character first."""
    out = text.replace("\\", "\\E\\")
    for ch, code in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(ch, code)
    return out


def _segment(name: str, fields: dict[int, str]) -> str:
    """An HL7 segment from {field number: value} (unset fields empty)."""
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


def to_hl7_message(e: dict[str, Any]) -> str:
    """One ORU^R01 message (segments joined by CR)."""
    family, given = e["patient_name"].split("^")
    ref_last, ref_first = e["referring_physician"].split("^")
    rep_last, rep_first = e["reporting_physician"].split("^")
    street, town, rest = (p.strip() for p in e["address"].split(","))
    state, zipc = rest.split()
    ts = e["study_date"] + "1200"
    control = f"MSG{e['index']:06d}"
    referrer = f"{ref_last}{e['index']:03d}^{ref_last}^{ref_first}"
    segments = [
        f"MSH|^~\\&|RIS|SYNTH_HEART|CMR|ARCHIVE|{ts}||ORU^R01^ORU_R01|{control}|P|2.5",
        _segment("PID", {1: "1", 3: f"{e['mrn']}^^^SYNTH^MR", 5: f"{family}^{given}", 7: e["birth_date"],
                         8: e["sex"], 11: f"{street}^^{town}^{state}^{zipc}", 13: e["phone"]}),
        _segment("PV1", {1: "1", 2: "O", 8: referrer}),
        _segment("ORC", {1: "RE", 2: e["accession"], 3: e["accession"]}),
        _segment("OBR", {1: "1", 2: e["accession"], 3: e["accession"], 4: "CMR^MRI HEART^L", 7: ts,
                         16: referrer, 22: ts, 25: "F", 32: f"{rep_last}^{rep_first}"}),
        # Z-segment many RIS use for the DICOM study it reports on (the StudyInstanceUID)
        _segment("ZDS", {1: f"{e['study_instance_uid']}^SYNTH^Application^DICOM"}),
    ]
    for n, line in enumerate(e["text"].split("\n"), 1):
        segments.append(f"OBX|{n}|TX|CMR^Report^L||{_hl7_escape(line)}||||||F")
    return "\r".join(segments) + "\r"


def to_fhir_bundle(e: dict[str, Any]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle: Patient, two Practitioners, ImagingStudy and the DiagnosticReport (its full
    text base64 in presentedForm, as a RIS export carries it)."""
    family, given = e["patient_name"].split("^")
    ref_last, ref_first = e["referring_physician"].split("^")
    rep_last, rep_first = e["reporting_physician"].split("^")
    street, town, rest = (p.strip() for p in e["address"].split(","))
    state, zipc = rest.split()
    d = e["study_date"]
    issued = f"{d[:4]}-{d[4:6]}-{d[6:]}T12:00:00Z"
    pid, sid, rid = f"pat-{e['index']}", f"img-{e['index']}", f"dr-{e['index']}"
    b = e["birth_date"]
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid,
         "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                              "code": "MR"}]}, "value": e["mrn"]}],
         "name": [{"family": family, "given": [given]}], "birthDate": f"{b[:4]}-{b[4:6]}-{b[6:]}",
         "telecom": [{"system": "phone", "value": e["phone"]}],
         "address": [{"line": [street], "city": town, "state": state, "postalCode": zipc}]},
        {"resourceType": "Practitioner", "id": f"ref-{e['index']}", "name": [{"family": ref_last, "given": [ref_first]}]},
        {"resourceType": "Practitioner", "id": f"rep-{e['index']}", "name": [{"family": rep_last, "given": [rep_first]}]},
        {"resourceType": "ImagingStudy", "id": sid, "status": "available", "subject": {"reference": f"Patient/{pid}"},
         "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{e['study_instance_uid']}"}]},
        {"resourceType": "DiagnosticReport", "id": rid, "status": "final",
         "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                              "code": "ACSN"}]}, "value": e["accession"]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "18755-9", "display": "MRI Heart"}]},
         "subject": {"reference": f"Patient/{pid}"}, "issued": issued,
         "resultsInterpreter": [{"reference": f"Practitioner/rep-{e['index']}"}],
         "imagingStudy": [{"reference": f"ImagingStudy/{sid}"}],
         "presentedForm": [{"contentType": "text/plain; charset=utf-8",
                            "data": base64.b64encode(e["text"].encode()).decode()}]},
    ]
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['resourceType'].lower()}-{r['id']}", "resource": r} for r in resources]}


def export_ris(out: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write out/ris/ (see the module doc) from the `ris` entries of the study records; returns the folder."""
    entries = [r["ris"] for r in records if r.get("ris")]
    folder = out / RIS_DIR
    (folder / FULL_DIR).mkdir(parents=True, exist_ok=True)
    for e in entries:
        _write_atomic(folder / FULL_DIR / f"study_{e['index']:05d}.txt", e["text"] + "\n")
    _write_atomic(folder / CSV_FILE, to_csv(entries))
    _write_atomic(folder / HL7_FILE, "\n".join(to_hl7_message(e) for e in entries))
    _write_atomic(folder / FHIR_FILE, "".join(json.dumps(to_fhir_bundle(e)) + "\n" for e in entries))
    return folder


__all__ = ["IMPRESSION_HEADERS", "LAYOUTS", "RIS_DIR", "CSV_FILE", "HL7_FILE", "FHIR_FILE", "FULL_DIR",
           "date_forms", "export_ris", "full_report", "to_csv", "to_fhir_bundle", "to_hl7_message"]
