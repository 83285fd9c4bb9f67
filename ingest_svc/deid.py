"""The ingest worker's de-identification: cmr.deid (DICOM PS3.15 basic profile, shared with the archive import),
with a refused study reported as an IngestFailure at the deidentify stage (it goes to the dead-letter topic)."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from cmr import deid as core
from cmr.deid import REMOVE_KEYWORDS, DeidResult, Identifiers, leaked_terms, scrub_text
from ingest_svc.messages import IngestFailure, Stage


class Deidentifier(core.Deidentifier):
    def deidentify(self, datasets: Sequence[Dataset]) -> DeidResult:
        """De-identify the datasets of one study in place. Raises IngestFailure(stage deidentify)."""
        try:
            return super().deidentify(datasets)
        except core.DeidentificationError as exc:
            raise IngestFailure(Stage.DEIDENTIFY, exc.reason, error_type=exc.error_type) from exc


__all__ = ["DeidResult", "Deidentifier", "Identifiers", "REMOVE_KEYWORDS", "leaked_terms", "scrub_text"]
