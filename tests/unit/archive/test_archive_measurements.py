"""The measurements a report states, read back as the measurement tokens' input: the MEASUREMENTS section first,
then the rest of the main report; raw volumes recovered from indexed ones with the stated BSA; addenda and
numbers of unmeasured quantities ignored; a synthetic report gives back its study's reference measurements."""

from __future__ import annotations

import numpy as np
import pytest

from cmr.archive.measurements import report_measurements
from cmr.model.measurements import MEASUREMENT_NAMES, measurement_vector
from cmr.synth.dicom_writer import StudyHeader
from cmr.synth.report import write_impression
from cmr.synth.ris import full_report
from cmr.synth.scanners import STYLES
from cmr.synth.truth import sample_truth
from test_archive_reports import MEASURED

REPORT = """CARDIAC MRI
FINDINGS:
Severely dilated LV with an ejection fraction of 25%. Aortic root 41 mm.

MEASUREMENTS:
LVEDV 250.0 mL (indexed 125.0 mL/m2); LVESV 187.5 mL; LVEF 25.0%
LV mass 160 g (indexed 80 g/m2)
RV EF of 48 %, RVEDV 150 ml
BSA 2.00 m2

IMPRESSION:
1. Dilated cardiomyopathy (LVEF 24%).

ADDENDUM: LVEF re-measured 30%, LV mass 999 g.
"""


def test_the_measurement_section_wins_and_addenda_are_not_read() -> None:
    got = report_measurements(REPORT)
    assert got == {"lvedv_ml": 250.0, "lvedvi_ml_m2": 125.0, "lvesv_ml": 187.5, "lvef_pct": 25.0,
                   "lv_mass_g": 160.0, "lv_mass_index_g_m2": 80.0, "rvef_pct": 48.0, "rvedv_ml": 150.0,
                   "bsa_m2": 2.0}


def test_numbers_outside_a_measurement_section_count_and_indexed_values_give_raw_ones() -> None:
    got = report_measurements("Findings: dilated LV (LVEDVi 110 mL/m2), RVEDVi 90 mL/m2, EF 30%. BSA 2.0 m2.\n"
                              "Impression: dilated LV.")
    assert got == {"lvedvi_ml_m2": 110.0, "rvedvi_ml_m2": 90.0, "lvef_pct": 30.0, "bsa_m2": 2.0,
                   "lvedv_ml": 220.0, "rvedv_ml": 180.0}
    # without a BSA the raw volumes stay unknown; an implausible "BSA" is no body size
    assert "lvedv_ml" not in report_measurements("LVEDVi 110 mL/m2. BSA 19 m2.")


@pytest.mark.parametrize("text", ["", "Normal study.", "Aortic root 45 mm; LA volume index 60 mL/m2; 3 segments."])
def test_a_report_without_measured_quantities_states_none(text: str) -> None:
    assert report_measurements(text) == {}


@pytest.mark.parametrize("index", range(6))
def test_a_synthetic_report_gives_back_the_reference_measurements_exactly(index: int) -> None:
    rng = np.random.default_rng(index)
    truth = sample_truth(rng)
    header = StudyHeader.make([0, index], rng, truth.sex, truth.age, truth.heart_rate, truth.bsa)
    impression = write_impression(truth, rng, "train").text
    text = full_report(truth, header, impression, STYLES[sorted(STYLES)[index % len(STYLES)]], 0, index,
                       MEASURED)["text"]
    tokens = measurement_vector(report_measurements(text), MEASUREMENT_NAMES)
    np.testing.assert_array_equal(tokens, measurement_vector(MEASURED, MEASUREMENT_NAMES))
