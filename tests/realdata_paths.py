"""Where the tests find real cardiac MRI: the one place that names these folders.

- In the repository: `tests/data/sunnybrook/`, a few MB of the Sunnybrook Cardiac Data (CC0 1.0; see its
  README.md): the mid-ventricular cine slice, the localizers and a reduced SCD0000201 stack with its manual
  contours. Every clone has them, so tests that need only these never skip.
- Beside the repository: the larger sets (ACDC, the full Sunnybrook stacks) in `$CMR_REALDATA_DIR`, or
  `<repo>/../shared/realdata` when that variable is unset. Tests that need them use `needs_shared_realdata`,
  which skips them, naming the missing folder, where that data is absent.

Both roots have the same layout (`sunnybrook/<patient folder>/...`), so code that takes a "realdata" folder
(bench.fuzz.dicom_inputs.load_seeds, the encoder's study roots) works with either.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# In-repo real data root, laid out like shared/realdata.
TEST_REALDATA = REPO / "tests" / "data"
SUNNYBROOK_TEST_DATA = TEST_REALDATA / "sunnybrook"
SUNNYBROOK_MIDSLICE = SUNNYBROOK_TEST_DATA / "SCD0000301_SC-HF-I-4_midslice" / "dicom"  # 20 phases, 1 slice
SUNNYBROOK_LOCALIZERS = SUNNYBROOK_TEST_DATA / "SCD0003701_SC-N-2_localizers"  # 15 localizers, no cine
# SCD0000201: the 18 contoured images (ED phase 20 + ES phase 7 of slices 3-11) and phase 20 of all 13 slices
SUNNYBROOK_CONTOURED = SUNNYBROOK_TEST_DATA / "SCD0000201_SC-HF-I-2"

# The larger sets kept outside the repository.
SHARED_REALDATA = Path(os.environ.get("CMR_REALDATA_DIR") or REPO.parent / "shared" / "realdata")


def needs_shared_realdata(*subpaths: str) -> pytest.MarkDecorator:
    """Skip unless each of `subpaths` (relative to SHARED_REALDATA, e.g. "acdc" or
    "sunnybrook/SCD0000201_SC-HF-I-2/dicom") exists; the reason names the missing folder and the variable."""
    missing = [p for p in (SHARED_REALDATA / s for s in (subpaths or (".",))) if not p.exists()]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"shared real data not found: {', '.join(str(p) for p in missing)} (set CMR_REALDATA_DIR to the "
               f"folder that holds sunnybrook/ and acdc/; default <repo>/../shared/realdata)")
