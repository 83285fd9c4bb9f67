"""`cmr dataset import` end to end on a few synthetic studies: per report format, with identifiers planted in
the DICOM headers and in the report text, none of them in any byte written (data directory, card, journal,
logs); the data directory is what `cmr train` reads; a SIGKILLed import resumes without redoing finished
studies; bad studies and reports are recorded in the card and skipped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from cmr.archive.importer import JOURNAL_DIR, STATE_DIR, ImportRequest, import_archive
from cmr.config import get_settings
from cmr.data.records import read_records
from cmr.dicom import load_study
from cmr.rpc.keys import study_key
from cmr.synth.generate import generate_dataset
from orchestration.cli.main import app
from test_archive_reports import leaks, planted, write_export

N_STUDIES = 3
# Planted in every DICOM file beside what the synthesiser writes (name, ID, birth date, accession): free text,
# address and phone elements, and the RIS's referring physician.
HEADER_PLANTS = {"PatientAddress": "{street}", "PatientTelephoneNumbers": "{phone}", "OtherPatientIDs": "{mrn}",
                 "ImageComments": "{given} {family} follow-up"}


def plant_identifiers(source: Path, target: Path, ris: dict) -> None:
    """Copy one synthetic study's files to `target` with its RIS entry's identifiers planted in more headers."""
    family, given = ris["patient_name"].split("^")
    ref_last, ref_first = ris["referring_physician"].split("^")
    values = {k: v.format(street=ris["address"].split(",")[0], phone=ris["phone"], mrn=ris["mrn"], given=given,
                          family=family) for k, v in HEADER_PLANTS.items()}
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(f)
        for k, v in values.items():
            setattr(ds, k, v)
        ds.ReferringPhysicianName = f"{ref_last}^{ref_first}"
        ds.StudyDescription = f"CMR {family.upper()} {ris['mrn']}"
        path = target / f.relative_to(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Synthetic studies (one folder each, DICOM only) and their RIS entries, identifiers planted."""
    root = tmp_path_factory.mktemp("archive")
    # Small single-frame studies plus one enhanced multi-frame study (a file per series).
    records = generate_dataset(root / "synth_a", N_STUDIES - 1, 11, workers=2, scanner="ge_signa_1.5T",
                               progress=False)
    records += generate_dataset(root / "synth_b", 1, 12, workers=1, scanner="philips_ingenia_1.5T", progress=False)
    entries = [r["ris"] for r in records]
    for n, (r, e) in enumerate(zip(records, entries)):
        source = root / ("synth_a" if n < N_STUDIES - 1 else "synth_b") / r["folder"]
        plant_identifiers(source, root / "studies" / f"exam_{n}", e)
    for synth in ("synth_a", "synth_b"):
        shutil.rmtree(root / synth / "studies")  # only the planted copies remain as sources
    return root, entries


def _all_terms(entries: list[dict]) -> set[str]:
    return set().union(*(planted(e) for e in entries))


def assert_no_identifier_written(out: Path, entries: list[dict], log: str = "") -> None:
    """Each study's identifiers in no byte of its own files; every study's in no shared file and no log.
    (Studies are checked against their own identifiers only: dicognito's pseudonyms are common names and may
    equal another synthetic patient's real-looking one.)"""
    secret = get_settings().study_key_secret
    own: set[Path] = set()
    for e in entries:
        key = study_key(e["study_instance_uid"], secret)
        files = [f for f in (out / "studies" / key).rglob("*") if f.is_file()] + [out / "reports" / f"{key}.txt"]
        own.update(files)
        terms = planted(e)
        for f in files:
            assert leaks(f.read_bytes(), terms) == [], f
    terms = _all_terms(entries)
    for f in out.rglob("*"):
        if f.is_file() and f not in own:
            assert leaks(f.read_bytes(), terms) == [], f
    assert leaks(log, terms) == []


@pytest.mark.parametrize("fmt", ["csv", "hl7", "fhir"])
def test_import_per_format_writes_a_training_directory_without_identifiers(
        archive: tuple[Path, list[dict]], tmp_path: Path, fmt: str) -> None:
    root, entries = archive
    export = write_export(tmp_path, entries, fmt)
    out = tmp_path / "imported"
    match = "study-uid" if fmt == "fhir" else "accession"
    keep = "all" if fmt == "csv" else "exam"  # both ways of writing the series: no identifier either way
    result = CliRunner().invoke(app, ["dataset", "import", "--studies", str(root / "studies"), "--reports",
                                      str(export), "--out", str(out), "--workers", "2", "--match", match,
                                      "--keep-series", keep])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "dataset_card.json").read_text())
    assert card["counts"]["imported"] == N_STUDIES and card["exclusions"] == []
    assert card["match_by"] == match and "silver" in card["label_source"]
    records = read_records(out)  # what cmr train and cmr eval read
    secret = get_settings().study_key_secret
    by_key = {study_key(e["study_instance_uid"], secret): e for e in entries}
    assert {r.folder for r in records} == {f"studies/{k}" for k in by_key}
    for r in records:
        assert r.impression == by_key[r.folder.split("/")[1]]["impression"]
        assert set(r.labels) >= {"lge", "lv_dysfunction", "disease"}
    assert load_study(out / records[-1].folder).has_cine  # the de-identified files load (multi-frame here)
    raw = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]
    assert all(set(x["silver"]["findings"]["lge"]) == {"state", "severity", "uncertain"} for x in raw)
    first = next(f for f in (out / records[0].folder).iterdir())
    assert pydicom.dcmread(first).PatientIdentityRemoved == "YES"
    assert_no_identifier_written(out, entries, result.output)
    assert "# Dataset card" in (out / "dataset_card.md").read_text()


def test_sigkilled_import_resumes_without_redoing_finished_studies(
        archive: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, entries = archive
    export = write_export(tmp_path, entries, "hl7")
    out = tmp_path / "imported"
    cmd = [sys.executable, "-m", "orchestration.cli.main", "dataset", "import", "--studies", str(root / "studies"),
           "--reports", str(export), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / STATE_DIR / JOURNAL_DIR
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(journal.glob("*.json")):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in journal.glob("*.json")}
    assert 1 <= len(done) < N_STUDIES, "the import must be killed midway"
    folders = {p.name: p.stat().st_mtime_ns for p in (out / "studies").iterdir() if not p.name.startswith(".")}
    result = import_archive(ImportRequest(root / "studies", export, out, workers=1, progress=False), get_settings())
    assert result.resumed == len(done) and result.imported == N_STUDIES
    assert {p.name: p.stat().st_mtime_ns for p in journal.glob("*.json") if p.name in done} == done
    for name, mtime in folders.items():  # a finished study's folder was not rewritten
        if (out / "studies" / name).exists() and any(json.loads((journal / j).read_text()).get("study_key") == name
                                                     for j in done):
            assert (out / "studies" / name).stat().st_mtime_ns == mtime
    assert len(read_records(out)) == N_STUDIES
    assert not list((out / "studies").glob(".partial-*"))


def test_bad_studies_and_reports_are_recorded_in_the_card_and_skipped(
        archive: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, entries = archive
    src = root / "studies"
    studies = tmp_path / "studies"
    shutil.copytree(src / "exam_0", studies / "a_good")
    shutil.copytree(src / "exam_2", studies / "e_no_report")
    (studies / "b_not_dicom").mkdir()
    (studies / "b_not_dicom" / "notes.txt").write_text("not an image")
    (studies / "c_truncated").mkdir()
    some = sorted(f for f in (src / "exam_1").rglob("*") if f.is_file())[-1]
    (studies / "c_truncated" / "x.dcm").write_bytes(some.read_bytes()[:-5000])  # cut inside the pixel data
    (studies / "d_no_cine").mkdir()
    for f in (f for f in (src / "exam_1").rglob("*") if f.is_file()):
        if int(pydicom.dcmread(f, stop_before_pixels=True).get("CardiacNumberOfImages", 1) or 1) <= 1:
            shutil.copy(f, studies / "d_no_cine" / f"{f.parent.name}_{f.name}")
    export = write_export(tmp_path, entries[:2], "hl7")  # no report for exam_2; exam_1's matches d_no_cine
    with export.open("ab") as fh:
        fh.write(b"\nMSH|^~\\&|RIS|X|Y|Z|20200101||ORU^R01|9|P|2.5\rOBR|1|ACC1|ACC1\r")  # no report text
    out = tmp_path / "imported"
    result = import_archive(ImportRequest(studies, export, out, workers=2, progress=False), get_settings())
    card = result.card
    assert card["counts"]["imported"] == 1 and card["counts"]["excluded_studies"] == 4
    reasons = {x["study"].split()[0] if "study" in x else x["report"]: x["reason"] for x in card["exclusions"]}
    assert "no readable DICOM image" in reasons["#1"]  # b_not_dicom
    assert "truncated_file" in reasons["#2"]  # c_truncated
    assert reasons["#3"] == "no cine series"  # d_no_cine
    assert reasons["#4"] == "no report with this study's accession number"  # e_no_report
    assert "no OBX report text" in reasons["message 3"]
    assert card["counts"]["studies_without_report"] == 1 and card["counts"]["reports_failed"] == 1
    assert "no cine series" in (out / "dataset_card.md").read_text()
    assert [r.folder for r in read_records(out)] == [f"studies/{study_key(entries[0]['study_instance_uid'], get_settings().study_key_secret)}"]


def test_a_resumed_import_with_other_inputs_is_refused(archive: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, entries = archive
    out = tmp_path / "imported"
    first = write_export(tmp_path, entries[:1], "csv")
    studies = tmp_path / "one"
    shutil.copytree(root / "studies" / "exam_0", studies / "exam_0")
    import_archive(ImportRequest(studies, first, out, workers=1, progress=False), get_settings())
    (tmp_path / "other").mkdir()
    other = write_export(tmp_path / "other", entries, "csv")
    with pytest.raises(ValueError, match="reports_sha256"):
        import_archive(ImportRequest(studies, other, out, workers=1, progress=False), get_settings())
