"""The DICOMweb import test builds its archive with the archive unit tests' helpers (planted identifiers, RIS
exports, the leak check); make them importable whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_ARCHIVE_UNIT_TESTS = str(Path(__file__).resolve().parents[2] / "unit" / "archive")
if _ARCHIVE_UNIT_TESTS not in sys.path:
    sys.path.insert(0, _ARCHIVE_UNIT_TESTS)
