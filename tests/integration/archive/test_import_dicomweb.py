"""`cmr dataset import --dicomweb URL` against a real Orthanc (Debian's, with its DICOMweb plugin, basic auth on):
a few synthetic studies with planted identifiers are stored by STOW-RS; the import lists them (QIDO-RS) and
fetches them (WADO-RS) into the same data directory the folder import writes from the same studies; an import
interrupted midway resumes without fetching a finished study again; the credentials appear nowhere."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from typer.testing import CliRunner

from cmr.archive import study as study_module
from cmr.archive.dicomweb import DicomwebError, DicomwebSource, fetch_study, list_studies
from cmr.archive.importer import JOURNAL_DIR, STATE_DIR, ImportRequest, import_archive
from cmr.config import Settings, get_settings
from cmr.synth.generate import generate_dataset
from ingest_svc.orthanc import OrthancServer, dicomweb_plugin, orthanc_binary
from orchestration.cli.main import app
from test_archive_import import assert_no_identifier_written, plant_identifiers
from test_archive_reports import write_export

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(orthanc_binary() is None or dicomweb_plugin() is None,
                       reason="Orthanc with the DICOMweb plugin is not installed (make setup installs the Debian "
                              "packages orthanc and orthanc-dicomweb as root)"),
]

N_STUDIES = 3
USER, PASSWORD = "importer", "pacs-pw-7f3a91"  # the password is checked for in every byte written


class AuthOrthanc(OrthancServer):
    """Orthanc that wants HTTP basic auth, as a hospital PACS would."""

    def config(self) -> dict[str, object]:
        return {**super().config(), "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}}

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/system", auth=(USER, PASSWORD), timeout=1).ok
        except requests.RequestException:
            return False


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """Study folders (identifiers planted in the headers) and their CSV RIS export (identifiers in the text)."""
    root = tmp_path_factory.mktemp("dicomweb_archive")
    records = generate_dataset(root / "synth", N_STUDIES, 41, workers=1, scanner="ge_signa_1.5T", progress=False,
                               distractors=False)
    entries = [r["ris"] for r in records]
    for n, (r, e) in enumerate(zip(records, entries)):
        plant_identifiers(root / "synth" / r["folder"], root / "studies" / f"exam_{n}", e)
    shutil.rmtree(root / "synth")
    return root / "studies", write_export(root, entries, "csv"), entries


@pytest.fixture(scope="module")
def pacs(archive: tuple[Path, Path, list[dict]]) -> Iterator[AuthOrthanc]:
    studies, _, _ = archive
    with AuthOrthanc() as server:
        session = requests.Session()
        session.auth = (USER, PASSWORD)
        stow = DICOMwebClient(server.dicomweb_url, session=session)
        for folder in sorted(studies.iterdir()):  # STOW-RS, one request per study
            stow.store_instances([pydicom.dcmread(f) for f in sorted(folder.rglob("*.dcm"))])
        yield server


def _settings() -> Settings:
    return get_settings().model_copy(update={"archive_dicomweb_attempts": 2, "archive_dicomweb_backoff_s": 0.05,
                                             "archive_dicomweb_timeout_s": 10.0})


def _source(pacs: OrthancServer) -> DicomwebSource:
    return DicomwebSource(pacs.dicomweb_url, timeout_s=10.0, attempts=2, backoff_s=0.05, username=USER,
                          password=PASSWORD)


def _study_files(folder: Path) -> dict[str, pydicom.Dataset]:
    """The written instances by (pseudonymous) SOPInstanceUID: file names follow the read order, which differs."""
    datasets = [pydicom.dcmread(f) for f in folder.iterdir()]
    return {str(ds.SOPInstanceUID): ds for ds in datasets}


def _assert_same_data_directory(folders: Path, web: Path) -> None:
    records = _records(folders)
    assert _records(web) == records and len(records) == N_STUDIES  # impressions, silver labels, pseudonymous UIDs
    for key in records:
        assert (web / "reports" / f"{key}.txt").read_bytes() == (folders / "reports" / f"{key}.txt").read_bytes()
        a, b = _study_files(folders / "studies" / key), _study_files(web / "studies" / key)
        assert a.keys() == b.keys()
        for uid, ds in a.items():
            assert b[uid] == ds  # every element, pixels included, de-identified the same way
            assert b[uid].PatientIdentityRemoved == "YES"


def _records(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines() if line]
    return {r["study_key"]: r for r in rows}


def test_dicomweb_import_writes_what_the_folder_import_writes_and_resumes_without_refetching(
        archive: tuple[Path, Path, list[dict]], pacs: AuthOrthanc, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    studies, export, entries = archive
    settings = _settings()
    from_folders = tmp_path / "from_folders"
    import_archive(ImportRequest(studies, export, from_folders, workers=1, progress=False), settings)

    # Without the credentials the PACS refuses: one line, no traceback, nothing written.
    with pytest.raises(DicomwebError, match="HTTP 401"):
        list_studies(DicomwebSource(pacs.dicomweb_url, attempts=1))
    uids = list_studies(_source(pacs))
    assert uids == sorted(e["study_instance_uid"] for e in entries)
    with pytest.raises(DicomwebError, match=r"HTTP 404 \(study not found\)"):
        fetch_study(_source(pacs), "1.2.826.0.1.3680043.8.498.1")

    # First run: interrupted (Ctrl-C) while fetching the second study.
    fetched = tmp_path / "fetched.txt"
    real_fetch = study_module.fetch_study

    def interrupted(source: DicomwebSource, uid: str) -> list[pydicom.Dataset]:
        if fetched.exists() and fetched.read_text():
            raise KeyboardInterrupt
        with fetched.open("a") as fh:
            fh.write(uid + "\n")
        return real_fetch(source, uid)

    from_pacs = tmp_path / "from_pacs"
    monkeypatch.setattr(study_module, "fetch_study", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_archive(ImportRequest(None, export, from_pacs, "csv", workers=1, progress=False,
                                     dicomweb=_source(pacs)),
                       settings)
    journal = from_pacs / STATE_DIR / JOURNAL_DIR
    first = fetched.read_text().split()
    assert len(first) == 1 and len(list(journal.glob("*.json"))) == 1

    # Resumed through the CLI, two worker processes (forked: they count their fetches in the same file), the
    # credentials in the URL.
    def counted(source: DicomwebSource, uid: str) -> list[pydicom.Dataset]:
        with fetched.open("a") as fh:
            fh.write(uid + "\n")
        return real_fetch(source, uid)

    monkeypatch.setattr(study_module, "fetch_study", counted)
    monkeypatch.setattr("cmr.config.get_settings", lambda: settings)
    url = pacs.dicomweb_url.replace("http://", f"http://{USER}:{PASSWORD}@")
    result = CliRunner().invoke(app, ["dataset", "import", "--dicomweb", url, "--reports", str(export), "--out",
                                      str(from_pacs), "--format", "csv", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "(1 already done)" in result.output
    again = fetched.read_text().split()[1:]
    assert sorted(again) == sorted(set(uids) - set(first))  # each remaining study fetched once, the first not

    card = json.loads((from_pacs / "dataset_card.json").read_text())
    assert card["source"] == {"kind": "dicomweb", "url": pacs.dicomweb_url}
    assert card["counts"]["imported"] == N_STUDIES and card["exclusions"] == []
    assert f"**{pacs.dicomweb_url}**" in (from_pacs / "dataset_card.md").read_text()
    _assert_same_data_directory(from_folders, from_pacs)
    assert_no_identifier_written(from_pacs, entries, result.output)
    for f in from_pacs.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    assert PASSWORD not in result.output
