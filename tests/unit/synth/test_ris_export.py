"""`cmr synth` writes, beside reports.jsonl, each study's full report and a RIS export (CSV, HL7 v2, FHIR)
whose identifiers are the ones in the study's DICOM headers."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from cmr.synth.generate import generate_dataset
from cmr.synth.ris import CSV_FILE, FHIR_FILE, FULL_DIR, HL7_FILE, RIS_DIR


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("ris")
    return out, generate_dataset(out, 2, 4, workers=1, scanner="ge_signa_1.5T", progress=False)


def test_report_identifiers_are_those_of_the_dicom_headers(dataset: tuple[Path, list[dict]]) -> None:
    out, records = dataset
    for r in records:
        e = r["ris"]
        ds = pydicom.dcmread(next(p for p in sorted((out / r["folder"]).rglob("*")) if p.is_file()))
        assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber, ds.StudyInstanceUID, ds.PatientBirthDate,
                ds.StudyDate) == (e["patient_name"], e["mrn"], e["accession"], e["study_instance_uid"],
                                  e["birth_date"], e["study_date"])
        text = (out / RIS_DIR / FULL_DIR / f"study_{r['index']:05d}.txt").read_text()
        assert text.strip() == e["text"]
        family = e["patient_name"].split("^")[0]
        assert family.upper() in text and e["mrn"] in text and e["accession"] in text and e["phone"] in text
        assert e["impression"] == r["impression"]
        birth = datetime.strptime(e["birth_date"], "%Y%m%d").date()
        assert any(f in text for f in (birth.strftime("%m/%d/%Y"), birth.isoformat(), birth.strftime("%d.%m.%Y"),
                                       birth.strftime("%d %B %Y"), birth.strftime("%b %d, %Y")))


def test_the_three_export_formats_hold_every_report(dataset: tuple[Path, list[dict]]) -> None:
    out, records = dataset
    rows = list(csv.DictReader((out / RIS_DIR / CSV_FILE).open(newline="")))
    assert [(x["AccessionNumber"], x["ReportText"]) for x in rows] == [(r["ris"]["accession"], r["ris"]["text"])
                                                                       for r in records]
    hl7 = (out / RIS_DIR / HL7_FILE).read_bytes().decode()
    assert hl7.count("MSH|^~\\&|") == len(records) and "ORU^R01" in hl7
    bundles = [json.loads(line) for line in (out / RIS_DIR / FHIR_FILE).read_text().splitlines()]
    kinds = [[e["resource"]["resourceType"] for e in b["entry"]] for b in bundles]
    assert all("DiagnosticReport" in k and "Patient" in k for k in kinds) and len(bundles) == len(records)
