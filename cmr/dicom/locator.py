"""Finding a study on disk from its study key.

The index stores only a keyed hash of each StudyInstanceUID, never a path, so a service that needs the
pixels of an indexed study (CMR-TARGET's token features, the UI's cine loops) looks for it under the
folders it may read (CMR_STUDY_ROOTS): one header per folder of DICOM files (or per zip) gives the study's
UID, the UID gives the key. A study is the deepest folder that holds all of its folders (a study folder with
one subfolder per series is found as the study folder, not as a series). The map is rebuilt on a miss, at
most every `rescan_interval_s`, so studies that arrive later are found without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

log = logging.getLogger(__name__)

_SKIP_DIRS = {"cache", "index", ".git", "__pycache__"}


def _uid_of_file(path: Path) -> str | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
    except (InvalidDicomError, OSError, ValueError, AttributeError, TypeError, EOFError):
        return None
    uid = getattr(ds, "StudyInstanceUID", None)
    return str(uid) if uid else None


def _uid_of_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist()[:20]:
                if info.is_dir() or info.file_size < 132:
                    continue
                with zf.open(info) as fh:
                    try:
                        ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
                    except (InvalidDicomError, OSError, ValueError, AttributeError, TypeError, EOFError):
                        continue
                uid = getattr(ds, "StudyInstanceUID", None)
                if uid:
                    return str(uid)
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def _common_folder(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p) for p in paths]))


class StudyLocator:
    """study key -> the folder (or zip) holding that study, under `roots`.

    `key_of(uid)` turns a StudyInstanceUID into the index's study key (the search schema's HMAC with the
    deployment's secret)."""

    def __init__(self, roots: Sequence[Path], key_of: Callable[[str], str], rescan_interval_s: float = 30.0) -> None:
        self.roots = [Path(r) for r in roots]
        self._key_of = key_of
        self._interval = rescan_interval_s
        self._paths: dict[str, Path] = {}
        self._scanned_at = -float("inf")
        self._lock = threading.Lock()

    def locate(self, study_key: str) -> Path | None:
        """The study's folder or zip, or None when no root holds it (after a rescan if one is due)."""
        with self._lock:
            path = self._paths.get(study_key)
            if path is not None and path.exists():
                return path
            if time.monotonic() - self._scanned_at >= self._interval:
                self._paths = self._scan()
                self._scanned_at = time.monotonic()
            return self._paths.get(study_key)

    def _scan(self) -> dict[str, Path]:
        folders_of: dict[str, list[Path]] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
                here = Path(dirpath)
                for name in sorted(filenames):  # one DICOM header per folder; zips each on their own
                    if name.lower().endswith(".zip"):
                        uid = _uid_of_zip(here / name)
                        if uid:
                            folders_of.setdefault(uid, []).append(here / name)
                for name in sorted(filenames):
                    if name.lower().endswith((".zip", ".json", ".jsonl", ".txt", ".csv", ".png", ".gif")):
                        continue
                    uid = _uid_of_file(here / name)
                    if uid:
                        folders_of.setdefault(uid, []).append(here)
                        break
        out: dict[str, Path] = {}
        for uid, places in folders_of.items():
            try:
                key = self._key_of(uid)
            except ValueError:
                continue
            zips = [p for p in places if p.suffix.lower() == ".zip"]
            folders = [p for p in places if p.suffix.lower() != ".zip"]
            out[key] = _common_folder(folders) if folders else zips[0]
        log.info("study locator: %d studies under %s", len(out), ", ".join(map(str, self.roots)))
        return out


__all__ = ["StudyLocator"]
