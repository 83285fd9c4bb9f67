"""Automatic quantification of cine CMR: segmentation of the LV cavity, LV myocardium and RV cavity over the
short-axis stack, and the measurements clinicians read first (LVEF, volumes, mass), from those masks.

Public API:
- `Measurements`, `measurements_from_masks` (cmr.quant.volumes): masks + geometry -> numbers, pure numpy;
- `Segmenter`, `load_segmenter` (cmr.quant.segmenter): the shipped network and its two-pass inference;
- `measure_study`, `StudyMeasurement` (cmr.quant.measure): a loaded DICOM study -> masks + measurements.
"""

from cmr.quant.labels import BACKGROUND, LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY, STRUCTURES
from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements, measurements_from_discs, measurements_from_masks

__all__ = [
    "BACKGROUND", "LV_CAVITY", "LV_MYOCARDIUM", "RV_CAVITY", "STRUCTURES",
    "MEASUREMENT_FIELDS", "Measurements", "measurements_from_discs", "measurements_from_masks",
]
