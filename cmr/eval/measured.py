"""Measurements of studies by the segmenter, as the services take them before they embed, kept beside each study
so that evaluating several CLIP checkpoints on the same test data segments every study once.

A study's result is stored as `<study folder>.measured.<segmenter version>.json`, keyed by the segmenter version
and, where one exists, the content of the study's conversion marker (`<study folder>.conversion.json`, written by
the ACDC converter), so a new segmenter or a new conversion measures anew. A study that cannot be loaded or
measured gets its reason as unmeasurable numbers, never an exception, as in the services.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cmr.dicom import load_study
from cmr.quant.volumes import Measurements
from cmr.realdata.acdc import file_sha256


def cache_path(folder: Path, segmenter_version: str) -> tuple[Path, str]:
    """(the file beside the study folder, the key it must hold to be reused)."""
    marker = folder.with_name(folder.name + ".conversion.json")
    conversion = file_sha256(marker) if marker.is_file() else "no-marker"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in segmenter_version)
    return folder.with_name(f"{folder.name}.measured.{safe}.json"), f"{segmenter_version}|{conversion}"


def measure_studies(folders: Mapping[str, Path | None], segmenter: Any, progress: bool = True,
                    loaded: Mapping[str, Any] | None = None, desc: str = "measure studies"
                    ) -> dict[str, tuple[Measurements, float]]:
    """name -> (Measurements, seconds of the first measuring) for each study folder; `loaded` (name -> Study)
    spares loading studies the caller already holds. A study without a folder (None: it must be in `loaded`)
    is measured without keeping the result."""
    from cmr.quant.measure import measure_study

    out: dict[str, tuple[Measurements, float]] = {}
    for name, folder in tqdm(folders.items(), desc=desc, unit="study", disable=not progress):
        path, key = cache_path(Path(folder), segmenter.version) if folder is not None else (None, "")
        if path is not None and path.is_file():
            try:
                d = json.loads(path.read_text())
                if d.get("key") == key:
                    out[name] = (Measurements.from_dict(d["measurements"]), float(d["seconds"]))
                    continue
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: measure again
        t = time.perf_counter()
        try:
            study = loaded[name] if loaded is not None and name in loaded else load_study(folder)  # type: ignore[arg-type]
            m = measure_study(study, segmenter).measurements
        except Exception as exc:  # noqa: BLE001 - one study's failure is its missing numbers, as in the services
            m = Measurements.unmeasurable(f"measurement failed ({type(exc).__name__})", segmenter.version)
        out[name] = (m, time.perf_counter() - t)
        if path is None:
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "seconds": out[name][1], "measurements": m.to_dict()}))
        tmp.replace(path)
    return out
