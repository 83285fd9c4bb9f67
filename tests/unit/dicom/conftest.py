"""Fixtures for the DICOM loader tests: the real Sunnybrook samples kept in tests/data and dataset builders."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# The builders live next to this file; make them importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent)) if str(Path(__file__).parent) not in sys.path else None

from realdata_paths import SUNNYBROOK_LOCALIZERS, SUNNYBROOK_MIDSLICE  # noqa: E402 - after the path setup


@pytest.fixture(scope="session")
def midslice_dir() -> Path:
    return SUNNYBROOK_MIDSLICE


@pytest.fixture(scope="session")
def localizer_dir() -> Path:
    return SUNNYBROOK_LOCALIZERS


@pytest.fixture
def midslice_copy(midslice_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the Sunnybrook mid-slice cine folder."""
    dst = tmp_path / "midslice"
    shutil.copytree(midslice_dir, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst
