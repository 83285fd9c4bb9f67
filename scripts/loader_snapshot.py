"""What the study loader makes of every real study we have: per study, each series' kind, view and shape and
the series each exam slot uses, as JSON. Run it before and after a loader change and compare the two files:

    .venv/bin/python scripts/loader_snapshot.py before.json    # on the old code
    .venv/bin/python scripts/loader_snapshot.py after.json --compare before.json

Studies: every folder under tests/data/sunnybrook and $CMR_REALDATA_DIR (default ../shared/realdata)/sunnybrook
that holds DICOM, and every ACDC patient converted to DICOM (cached under $CMR_DATA_DIR/realdata/acdc).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cmr.config import get_settings
from cmr.dicom import StudyLoadError, load_study
from cmr.dicom.exam import slot_sources

ROOT = Path(__file__).resolve().parent.parent


def _sunnybrook_studies() -> dict[str, Path]:
    roots = {"tests": ROOT / "tests" / "data" / "sunnybrook", "shared": get_settings().realdata_dir / "sunnybrook"}
    return {f"{where}/sunnybrook/{p.name}": p for where, root in roots.items() if root.is_dir()
            for p in sorted(root.iterdir()) if p.is_dir()}


def _acdc_studies() -> dict[str, Path]:
    from cmr.realdata.acdc import acdc_dir, convert_patients, list_patients

    folder = acdc_dir()
    if not folder.is_dir():
        return {}
    converted = convert_patients(list_patients(folder), folder, progress=False)
    return {f"shared/acdc/{c.patient.name}": c.path for c in converted if c.path is not None}


def describe(path: Path) -> dict[str, Any]:
    """The loader's view of one study (an error code when it cannot be loaded)."""
    try:
        study = load_study(path)
    except StudyLoadError as err:
        return {"error": err.code}
    series = {s.key: {"kind": s.kind, "view": s.view, "shape": list(s.pixels.shape)} for s in study.series}
    try:
        slots: Any = slot_sources(study)
    except StudyLoadError as err:
        slots = {"error": err.code}
    return {"series": series, "slots": slots}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--compare", type=Path, help="an earlier snapshot: list the studies that differ")
    args = ap.parse_args()
    studies = {**_sunnybrook_studies(), **_acdc_studies()}
    snapshot = {name: describe(path) for name, path in studies.items()}
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"{len(snapshot)} studies -> {args.out}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in set(before) | set(snapshot) if before.get(k) != snapshot.get(k))
        same = len(set(before) & set(snapshot)) - len([k for k in differ if k in before and k in snapshot])
        print(f"{same} studies load as before; {len(differ)} differ: {', '.join(differ) or '-'}")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
