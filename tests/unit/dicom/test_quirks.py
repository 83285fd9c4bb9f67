"""Header quirks: pydicom's per-file validation warnings become one counted entry per kind in the study's report
(and the encoder's LoaderReport), and nothing is logged per file."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from cmr.dicom import load_study
from cmr.dicom.quirks import QuirkLog, collect


def test_messages_group_by_kind_with_counts_and_files() -> None:
    log = QuirkLog()
    for name, uid in (("a.dcm", "1.02"), ("a.dcm", "1.03"), ("b.dcm", "1.04")):
        log.at(name)
        log.add(f"Invalid value for VR UI: '{uid}'. Please see <https://dicom.nema.org/x> for allowed values.")
    log.at("b.dcm")
    log.add("Other problem")
    [uid, other] = log.summary()
    assert (uid.message, uid.count, uid.files) == ("Invalid value for VR UI: '...'", 3, 2)
    assert uid.example == "Invalid value for VR UI: '1.02'"
    assert (other.message, other.count, other.files) == ("Other problem", 1, 1)


def test_real_header_quirks_are_counted_once_per_study_not_logged(midslice_dir: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pydicom")
    study = load_study(midslice_dir)
    assert not [r for r in caplog.records if r.name == "pydicom"]
    [quirk] = study.header_quirks  # Sunnybrook UIDs have components with leading zeros
    assert quirk.message == "Invalid value for VR UI: '...'"
    assert 1 <= quirk.files <= 20 and quirk.count >= quirk.files
    info = study.info().to_dict()
    assert info["header_quirks"] == [quirk.to_dict()]


def test_other_threads_still_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pydicom")
    pydicom_log = logging.getLogger("pydicom")
    with collect() as mine:
        pydicom_log.warning("counted here")
        worker = threading.Thread(target=pydicom_log.warning, args=("logged by another thread",))
        worker.start()
        worker.join()
    pydicom_log.warning("logged after the block")
    assert [q.message for q in mine.summary()] == ["counted here"]
    assert [r.getMessage() for r in caplog.records if r.name == "pydicom"] == [
        "logged by another thread", "logged after the block"]
