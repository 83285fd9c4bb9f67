"""The RIS export (cmr.synth.ris) read back by cmr.archive.reports in each format, bad reports recorded and
skipped, and the report-text de-identification: every planted identifier gone, clinical text untouched."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from cmr.archive.importer import index_reports
from cmr.archive.reports import CsvColumns, read_reports
from cmr.archive.scrub import merge_identifiers, scrub_report
from cmr.deid import Identifiers
from cmr.synth.dicom_writer import StudyHeader
from cmr.synth.report import write_impression
from cmr.synth.ris import date_forms, full_report, to_csv, to_fhir_bundle, to_hl7_message
from cmr.synth.scanners import STYLES
from cmr.synth.truth import sample_truth

FILES = {"csv": "r.csv", "hl7": "r.hl7", "fhir": "r.ndjson"}
# What a reader measured (a study's reference measurements): the volumes, EFs and mass a full report states.
MEASURED = {"lvef_pct": 41.3, "lvedv_ml": 201.7, "lvesv_ml": 118.4, "lvsv_ml": 83.3, "lv_mass_g": 150.2,
            "rvef_pct": 52.6, "rvedv_ml": 160.9, "rvesv_ml": 76.3, "lvedvi_ml_m2": 104.5, "lvesvi_ml_m2": 61.3,
            "lv_mass_index_g_m2": 77.8, "rvedvi_ml_m2": 83.4, "rvesvi_ml_m2": 39.5, "bsa_m2": 1.93}


def _entries(n: int) -> list[dict]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        truth = sample_truth(rng)
        header = StudyHeader.make([1, i], rng, truth.sex, truth.age, truth.heart_rate, truth.bsa)
        impression = write_impression(truth, np.random.default_rng(50 + i), "train").text
        out.append(full_report(truth, header, impression, STYLES[sorted(STYLES)[i % len(STYLES)]], 1, i, MEASURED))
    return out


def write_export(folder: Path, entries: list[dict], fmt: str) -> Path:
    path = folder / FILES[fmt]
    if fmt == "csv":
        path.write_text(to_csv(entries), encoding="utf-8")
    elif fmt == "hl7":
        path.write_bytes("\n".join(to_hl7_message(e) for e in entries).encode())
    else:
        path.write_text("".join(json.dumps(to_fhir_bundle(e)) + "\n" for e in entries), encoding="utf-8")
    return path


def planted(e: dict) -> set[str]:
    """Every identifier the synthesiser planted in one report, in the forms it may take."""
    family, given = e["patient_name"].split("^")
    ref_last, ref_first = e["referring_physician"].split("^")
    rep_last, rep_first = e["reporting_physician"].split("^")
    street, town, _ = (p.strip() for p in e["address"].split(","))
    terms = {family, given, e["mrn"], e["accession"], e["phone"], e["phone"][-8:], street, town, ref_last,
             ref_first, rep_last, rep_first, e["study_instance_uid"]}
    for d in ("birth_date", "study_date", "prior_date"):
        terms |= set(date_forms(datetime.strptime(e[d], "%Y%m%d").date()))
    return terms


def leaks(data: str | bytes, terms: set[str]) -> list[str]:
    """The terms found in `data` as whole words, case-insensitively (substring search first: the DICOM files
    scanned are megabytes of pixels, where a regular expression over every position would be slow)."""
    low = (data.encode() if isinstance(data, str) else data).lower()
    found = set()
    for term in terms:
        needle = term.lower().encode()
        at = low.find(needle)
        while at != -1:
            before, after = low[at - 1:at] if at else b"", low[at + len(needle):at + len(needle) + 1]
            if not before.isalnum() and not after.isalnum():
                found.add(term)
                break
            at = low.find(needle, at + 1)
    return sorted(found)


@pytest.mark.parametrize("fmt", ["csv", "hl7", "fhir"])
def test_each_format_reads_back_key_text_and_identifiers(tmp_path: Path, fmt: str) -> None:
    entries = _entries(6)
    got = read_reports(write_export(tmp_path, entries, fmt))
    assert not got.failures
    assert [(r.accession, r.study_uid, r.text) for r in got.reports] == [
        (e["accession"], e["study_instance_uid"], e["text"]) for e in entries]
    for r, e in zip(got.reports, entries):
        ids = " ".join(r.identifiers)
        assert e["patient_name"].split("^")[0] in ids and e["mrn"] in ids


@pytest.mark.parametrize("fmt", ["csv", "hl7", "fhir"])
def test_report_text_loses_every_planted_identifier(tmp_path: Path, fmt: str) -> None:
    entries = _entries(12)
    for r, e in zip(read_reports(write_export(tmp_path, entries, fmt)).reports, entries):
        clean = scrub_report(r.text, merge_identifiers(Identifiers(()), r.identifiers))
        assert leaks(clean, planted(e)) == [], clean
        assert "LVEF" in clean and "MEASUREMENTS" in clean  # the clinical text stays


def test_patterns_alone_remove_unlisted_identifiers_and_leave_clinical_numbers() -> None:
    text = ("Seen by Dr. Ada Lovelace on 3 March 2021 (tel +44 20 7946 0958, ada@example.org), MRN: X99812345, "
            "12 Baker Street, London NW1 6XE. LVEF 49%, LVEDVi 110 mL/m2, aortic root 2.9 cm, T1 1050 ms.")
    clean = scrub_report(text, Identifiers(()))
    assert leaks(clean, {"Lovelace", "Ada", "3 March 2021", "7946 0958", "ada@example.org", "X99812345",
                         "Baker Street", "NW1 6XE"}) == []
    assert "LVEF 49%, LVEDVi 110 mL/m2, aortic root 2.9 cm, T1 1050 ms." in clean


def test_synthetic_impressions_pass_the_scrubber_unchanged() -> None:
    for i in range(1500):
        truth = sample_truth(np.random.default_rng(i))
        text = write_impression(truth, np.random.default_rng(7 + i), "train" if i % 2 else "heldout").text
        assert scrub_report(text, Identifiers(())) == text


def test_bad_reports_are_recorded_and_the_rest_read(tmp_path: Path) -> None:
    entries = _entries(3)
    good = [to_hl7_message(e) for e in entries]
    not_oru = "MSH|^~\\&|RIS|X|Y|Z|20200101||ADT^A01|1|P|2.5\rPID|1||123\r"
    no_text = good[0].split("\rOBX")[0] + "\r"
    hl7 = tmp_path / "bad.hl7"
    hl7.write_bytes("\n".join([good[0], not_oru, no_text, good[1]]).encode())
    got = read_reports(hl7)
    assert len(got.reports) == 2 and [f.where for f in got.failures] == ["message 2", "message 3"]
    assert "not an ORU" in got.failures[0].reason and "no OBX" in got.failures[1].reason

    fhir = tmp_path / "bad.ndjson"
    lines = [json.dumps(to_fhir_bundle(entries[0])), "{not json", json.dumps({"resourceType": "Patient", "id": "p"}),
             json.dumps({"resourceType": "DiagnosticReport", "status": "no-such-status", "code": {}})]
    fhir.write_text("\n".join(lines) + "\n")
    got = read_reports(fhir)
    assert len(got.reports) == 1 and [f.where for f in got.failures] == ["line 2", "line 3", "line 4"]

    csv_path = tmp_path / "r.csv"
    csv_path.write_text("Acc,Body\nA1,text one\nA2,\n")
    with pytest.raises(ValueError, match="no report text column 'ReportText'"):
        read_reports(csv_path)
    got = read_reports(csv_path, columns=CsvColumns(accession="Acc", text="Body"))
    assert [r.accession for r in got.reports] == ["A1"] and got.failures[0].reason == "empty report text"
    unknown = tmp_path / "export.dat"
    unknown.write_text("")
    with pytest.raises(ValueError, match="cannot tell the report format"):
        read_reports(unknown)


def test_index_counts_reports_without_a_key_and_duplicates(tmp_path: Path) -> None:
    entries = _entries(3)
    entries[2] = {**entries[2], "accession": entries[0]["accession"]}
    entries[1] = {**entries[1], "accession": ""}
    reports = read_reports(write_export(tmp_path, entries, "csv")).reports
    index, failures = index_reports(reports, "accession")
    assert list(index) == [entries[0]["accession"]]
    assert [f.reason for f in failures] == ["no accession number to match it by",
                                            "another report has the same accession number (the first one is used)"]
    by_uid, none_failed = index_reports(reports, "study-uid")
    assert len(by_uid) == 3 and none_failed == []
