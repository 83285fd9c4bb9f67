"""Findings and diseases read from an exam vector: prompt ensembles (zero-shot) and their calibration into
probabilities. Shared by `cmr zeroshot`, the evaluation and the search service."""

from cmr.findings.prompts import PromptSet, prompt_sets
from cmr.findings.zero_shot import (Calibration, CalibrationError, ZeroShotClassifier, calibration_path_for,
                                    classifier_for_model)

__all__ = ["Calibration", "CalibrationError", "PromptSet", "ZeroShotClassifier", "calibration_path_for",
           "classifier_for_model", "prompt_sets"]
