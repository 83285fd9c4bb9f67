"""Cine loop previews for result cards, without Streamlit (the demo seeder pre-renders them too).

The index stores no pixels and no paths (only de-identified fields), so the UI finds an exam's DICOM itself:
it reads the studies under CMR_STUDY_ROOTS on its own host (true in the one-machine stack; in production
mount the study store read-only into the UI, or set CMR_UI_CINE=false), maps each StudyInstanceUID to its
study key with the same HMAC as the search service (CMR_STUDY_KEY_SECRET), and renders the main cine views
(SAX mid, 4CH, 2CH, 3CH) as a small animated GIF, cached under CMR_UI_THUMB_DIR by study key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from cmr.config import Settings
from cmr.dicom import StudyLoadError, load_study
from cmr.render import render_study

log = logging.getLogger(__name__)

PREVIEW_VIEWS = ("SAX mid", "SAX", "4CH", "2CH", "3CH", "LAX")
PREVIEW_TILE = 128
_SCAN_DEPTH = 3
_MAX_DICOM_SCAN = 5000  # folders probed by header when a root has no study records


def _key(uid: str, secret: str) -> str | None:
    from cmr.rpc.keys import study_key

    try:
        return study_key(uid, secret)
    except ValueError:
        return None


def _records(root: Path) -> dict[str, Path]:
    """uid -> study folder from synthetic-study records (studies/study_NNNNN.json) and reports.jsonl files."""
    out: dict[str, Path] = {}
    for rec in root.glob("**/studies/study_*.json"):
        try:
            r = json.loads(rec.read_text())
            out[r["study_instance_uid"]] = rec.with_suffix("")
        except (OSError, ValueError, KeyError):
            continue
    for reports in [*root.glob("reports.jsonl"), *root.glob("*/reports.jsonl"), *root.glob("*/*/reports.jsonl")]:
        try:
            for line in reports.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    out.setdefault(r["study_instance_uid"], reports.parent / r["folder"])
        except (OSError, ValueError, KeyError):
            continue
    return out


def _dicom_uid(folder: Path) -> str | None:
    import pydicom

    for f in sorted(folder.rglob("*"))[:50]:
        if f.is_file():
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
                return str(ds.StudyInstanceUID)
            except Exception:  # noqa: BLE001 - not DICOM: try the next file
                continue
    return None


def _scan_dicom(root: Path) -> dict[str, Path]:
    """uid -> folder for study folders of plain DICOM (a folder whose subfolders are series)."""
    out: dict[str, Path] = {}
    probed = 0
    frontier = [root]
    for _ in range(_SCAN_DEPTH):
        nxt = []
        for d in frontier:
            try:
                subdirs = [p for p in d.iterdir() if p.is_dir()]
            except OSError:
                continue
            has_files = any(p.is_file() and not p.name.endswith((".json", ".jsonl")) for p in d.iterdir())
            if has_files and d != root:
                uid = _dicom_uid(d)
                probed += 1
                if uid:
                    out.setdefault(uid, d if not d.name.startswith("series") else d.parent)
                    continue
            nxt += subdirs
            if probed > _MAX_DICOM_SCAN:
                return out
        frontier = nxt
    return out


class StudyLocator:
    """study key -> study folder under the roots, refreshed at most every `ttl_s` (studies keep arriving)."""

    def __init__(self, roots: list[Path], secret: str, ttl_s: float = 30.0) -> None:
        self.roots = [Path(r) for r in roots]
        self.secret = secret
        self.ttl_s = ttl_s
        self._map: dict[str, Path] = {}
        self._at = -1e9
        self._lock = threading.Lock()

    def refresh(self) -> None:
        found: dict[str, Path] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            uids = _records(root)
            if not uids:
                uids = _scan_dicom(root)
            for uid, folder in uids.items():
                key = _key(uid, self.secret)
                if key and folder.exists():
                    found[key] = folder
        self._map = found
        self._at = time.monotonic()

    def path_of(self, study_key: str) -> Path | None:
        with self._lock:
            if study_key not in self._map and time.monotonic() - self._at > self.ttl_s:
                self.refresh()
            return self._map.get(study_key)


def render_preview(source: Path | bytes, out: Path) -> Path:
    """The main cine views of a study (folder, zip or zip bytes) as a small animated GIF at `out`."""
    study = load_study(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.{threading.get_ident()}.gif")
    render_study(study, tmp, tile=PREVIEW_TILE, only=set(PREVIEW_VIEWS))
    os.replace(tmp, out)
    return out


class CinePreviews:
    """Preview GIF bytes by study key: from the cache, else rendered from the study on disk; None when the
    study is not on this host or cannot be rendered (the card then says so)."""

    def __init__(self, locator: StudyLocator, cache_dir: Path, enabled: bool = True) -> None:
        self.locator = locator
        self.cache_dir = Path(cache_dir)
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> CinePreviews:
        from cmr.layout import StackLayout

        layout = StackLayout.from_settings(settings)
        return cls(StudyLocator(list(settings.study_roots), settings.study_key_secret), layout.thumb_dir(settings),
                   settings.ui_cine)

    def folder(self, study_key: str) -> Path | None:
        """The study's folder on this host (None when it is not here, or reading studies is off)."""
        return self.locator.path_of(study_key) if self.enabled else None

    def cached(self, study_key: str) -> Path:
        return self.cache_dir / f"{study_key}.gif"

    def gif(self, study_key: str) -> bytes | None:
        if not self.enabled:
            return None
        path = self.cached(study_key)
        if path.exists():
            return path.read_bytes()
        folder = self.locator.path_of(study_key)
        if folder is None:
            return None
        try:
            return render_preview(folder, path).read_bytes()
        except (StudyLoadError, OSError, ValueError) as exc:
            log.warning("no preview for %s (%s): %s", study_key, folder, exc)
            return None
