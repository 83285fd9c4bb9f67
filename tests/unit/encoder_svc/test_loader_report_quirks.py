"""The encoder's LoaderReport carries the study's header quirks once each, with counts."""

from __future__ import annotations

from cmr.dicom import load_study
from encoder_svc.service import loader_report
from realdata_paths import SUNNYBROOK_MIDSLICE


def test_loader_report_has_the_header_quirks() -> None:
    study = load_study(SUNNYBROOK_MIDSLICE)
    report = loader_report(study.to_exam())
    [quirk] = report.header_quirks
    [expected] = study.header_quirks
    assert (quirk.message, quirk.count, quirk.files, quirk.example) == (
        expected.message, expected.count, expected.files, expected.example)
    assert quirk.count >= quirk.files >= 1
