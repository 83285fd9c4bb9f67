"""Fixtures for the DICOM loader tests: real Sunnybrook data (skipped when absent) and dataset builders."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# The builders live next to this file; make them importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent)) if str(Path(__file__).parent) not in sys.path else None

# shared/ lies beside the repository checkout (CI clones main with shared/ next to it).
REALDATA = Path(os.environ.get("CMR_REALDATA_DIR", Path(__file__).resolve().parents[4] / "shared" / "realdata"))
MIDSLICE = REALDATA / "sunnybrook/SCD0000301_SC-HF-I-4_midslice/dicom"
LOCALIZERS = REALDATA / "sunnybrook/SCD0003701_SC-N-2_localizers"


@pytest.fixture(scope="session")
def midslice_dir() -> Path:
    if not MIDSLICE.is_dir():
        pytest.skip(f"Sunnybrook sample not found at {MIDSLICE}")
    return MIDSLICE


@pytest.fixture(scope="session")
def localizer_dir() -> Path:
    if not LOCALIZERS.is_dir():
        pytest.skip(f"Sunnybrook sample not found at {LOCALIZERS}")
    return LOCALIZERS


@pytest.fixture
def midslice_copy(midslice_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the Sunnybrook mid-slice cine folder."""
    dst = tmp_path / "midslice"
    shutil.copytree(midslice_dir, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst
