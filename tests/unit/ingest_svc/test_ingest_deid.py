"""PS3.15 basic-profile de-identification of synthetic studies: identifiers gone from every text element,
stable pseudonyms, dates kept under the full-dates option, burned-in annotation refused, report text cleaned."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from cmr.dicom import load_study
from cmr.synth.generate import generate_dataset
from ingest_svc.deid import Deidentifier, Identifiers, leaked_terms, scrub_text
from ingest_svc.messages import IngestFailure, Stage


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    out = tmp_path_factory.mktemp("deid_synth")
    generate_dataset(out, 1, 3, workers=1, scanner="siemens_skyra_3T", progress=False)
    # The DICOM files only: beside each study folder lie its ground truth (.json, .labels.npz).
    files = sorted(f for f in (out / "studies").glob("*/**/*") if f.is_file() and f.suffix not in (".json", ".npz"))
    datasets = [pydicom.dcmread(f) for f in files]
    for ds in datasets:  # the identifiers also in free text and private tags, where dicognito does not look
        ds.PatientName = "Smithers^Waylon"
        ds.PatientID = "MRN0042"
        ds.ImageComments = "Waylon Smithers follow-up"
        ds.StudyDescription = "CARDIAC MR SMITHERS"
        ds.add_new(0x00290010, "LO", "ACME")
        ds.add_new(0x00291010, "LO", "MRN0042")
    return datasets


def _fresh(study: list[Dataset]) -> list[Dataset]:
    return [copy.deepcopy(ds) for ds in study]


def test_no_identifier_survives_and_the_study_still_loads(study: list[Dataset]) -> None:
    ids = Identifiers.collect(study)
    assert "smithers" in ids.terms and "mrn0042" in ids.terms
    original_date = study[0].StudyDate
    result = Deidentifier("secret").deidentify(_fresh(study))
    for ds in result.datasets:
        assert not leaked_terms(ds, ids)
        assert "PatientBirthDate" not in ds and "ImageComments" not in ds
        assert not any(t.is_private for t in ds.keys())
        assert ds.PatientIdentityRemoved == "YES" and "DICOGNITO" in ds.DeidentificationMethod
        assert ds.StudyInstanceUID != study[0].StudyInstanceUID
    assert result.datasets[0].StudyDate == original_date  # full-dates option
    assert result.study_instance_uid == study[0].StudyInstanceUID  # the source UID, for the keyed hash only
    loaded = load_study(result.datasets)
    assert loaded.has_cine and loaded.study_date is not None


def test_pseudonyms_are_stable_per_study_and_secret(study: list[Dataset]) -> None:
    a = Deidentifier("secret").deidentify(_fresh(study[:2])).datasets[0]
    b = Deidentifier("secret").deidentify(_fresh(study[:2])).datasets[0]
    c = Deidentifier("other").deidentify(_fresh(study[:2])).datasets[0]
    assert a.StudyInstanceUID == b.StudyInstanceUID != c.StudyInstanceUID
    assert str(a.PatientName) == str(b.PatientName)


def test_dates_shifted_without_the_full_dates_option(study: list[Dataset]) -> None:
    ds = Deidentifier("secret", keep_dates=False).deidentify(_fresh(study[:1])).datasets[0]
    assert ds.StudyDate != study[0].StudyDate


def test_burned_in_annotation_and_mixed_studies_are_refused(study: list[Dataset]) -> None:
    burned = _fresh(study[:1])
    burned[0].BurnedInAnnotation = "YES"
    with pytest.raises(IngestFailure) as err:
        Deidentifier("secret").deidentify(burned)
    assert err.value.stage is Stage.DEIDENTIFY and err.value.error_type == "BurnedInAnnotation"
    mixed = _fresh(study[:2])
    mixed[1].StudyInstanceUID = "1.2.3.4"
    with pytest.raises(IngestFailure, match="2 different StudyInstanceUIDs"):
        Deidentifier("secret").deidentify(mixed)


def test_report_text_is_cleaned_but_clinical_words_stay() -> None:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Li^Ann", "X99", "19700102"
    ids = Identifiers.collect([ds])
    text = scrub_text("Ann Li (X99, born 1970-01-02): dilated LV, annular calcification.", ids)
    assert "Ann" not in text.split() and "X99" not in text and "1970-01-02" not in text
    assert "dilated LV, annular calcification" in text  # 'li'/'ann' inside words are untouched


def test_fast_path_equals_dicognitos_own_anonymize(study: list[Dataset]) -> None:
    """The worker visits only the elements a dicognito handler can change; the result must be what dicognito's
    Anonymizer.anonymize gives (this guards an upgrade of the pinned dicognito)."""
    from cmr.deid import _anonymize_fast

    deid = Deidentifier("secret")
    uid = str(study[0].StudyInstanceUID)
    fast, full = _fresh(study[:3]), _fresh(study[:3])
    anon_fast, anon_full = deid._anonymizer(uid), deid._anonymizer(uid)
    for a, b in zip(fast, full):
        _anonymize_fast(anon_fast, a)
        anon_full.anonymize(b)
        assert sorted(a.keys()) == sorted(b.keys())
        assert all(a[t].value == b[t].value for t in a.keys()), [str(a[t].keyword) for t in a.keys()
                                                                  if a[t].value != b[t].value]
        assert a.file_meta.MediaStorageSOPInstanceUID == b.file_meta.MediaStorageSOPInstanceUID
