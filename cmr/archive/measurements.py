"""The measurements a report states (LVEF, RVEF, volumes, LV mass, indexed or not, BSA), as the numbers the
measurement tokens of a model read (`StudyRecord.measurements`, a `Measurements.values()`-style dict).

Why: the small profile's exam encoder reads eight measurement tokens beside the frames. On the reports.jsonl
path a synthetic study carries them (`reference_measurements`, a perfect segmentation); an archive carries them
only in the report text, where the reader wrote what they measured. Without reading them back, a model trained
on an imported archive would never see a number in training, then meet them at evaluation: a different model.

The numbers are read with the report writer's own statement finder (`cmr.generator.grounding.find_statements`:
"LVEF 52%", "LVEDV 210 ml (indexed 110 ml/m2)", "LV mass 150 g", "RV EF of 40 %", ...): first the
MEASUREMENTS section, then the rest of the main report (the first value of each quantity wins; addenda are
not read). A raw volume or mass the report gives only indexed is recovered with the stated BSA, because the
ratio tokens (RV/LV EDV, mass/EDV) and the quality check rest on raw values.
"""

from __future__ import annotations

import re
from typing import Final

from cmr.archive.impression import report_sections
from cmr.generator.grounding import stated_values

_BSA: Final = re.compile(r"\b(?:BSA|body\s+surface\s+area)\b\s*(?:of|is|:|=)?\s*(?P<v>\d+(?:\.\d+)?)\s*m(?:2|²|\^2)",
                         re.IGNORECASE)
_PLAUSIBLE_BSA: Final = (0.5, 3.5)  # m²: anything else is a misread number, not a body
# raw quantity -> its indexed form
_RAW_OF_INDEXED: Final = {"lvedv_ml": "lvedvi_ml_m2", "lvesv_ml": "lvesvi_ml_m2", "rvedv_ml": "rvedvi_ml_m2",
                          "rvesv_ml": "rvesvi_ml_m2", "lv_mass_g": "lv_mass_index_g_m2"}


def _measurement_section_first(text: str) -> list[str]:
    sections = report_sections(text)
    first = [body for word, body in sections if word.startswith("measurement")]
    rest = [body for word, body in sections if not word.startswith("measurement")]
    return first + rest


def report_measurements(text: str) -> dict[str, float]:
    """The measured quantities the report states, by `MEASUREMENT_FIELDS` name ({} when it states none)."""
    values: dict[str, float] = {}
    for body in _measurement_section_first(text):
        for line in body.splitlines():
            for name, value in stated_values(line).items():
                values.setdefault(name, value)
            bsa = _BSA.search(line)
            if bsa is not None and _PLAUSIBLE_BSA[0] <= float(bsa.group("v")) <= _PLAUSIBLE_BSA[1]:
                values.setdefault("bsa_m2", float(bsa.group("v")))
    bsa_m2 = values.get("bsa_m2")
    if bsa_m2 is not None:
        for raw, indexed in _RAW_OF_INDEXED.items():
            if raw not in values and indexed in values:
                values[raw] = round(values[indexed] * bsa_m2, 1)
    return values


__all__ = ["report_measurements"]
