"""Exam tensor cache: every study of a data directory loaded once through the DICOM loader and stored as
uint8 [N, T, H, W] (a memory map) plus the frame mask, so training reads exams without parsing DICOM.

Layout: DATA/cache/<spec id>/{pixels.u8, mask.npy, done.npy, index.json}. The spec id hashes the exam
spec, so models with different exam specs never share a cache. Building is resumable (done.npy is saved
as it goes) and a study the loader rejects is recorded with its reason instead of stopping the run.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cmr.data.records import StudyRecord, read_records
from cmr.dicom import ExamSpec, StudyLoadError, load_study

_SAVE_EVERY = 50


def spec_id(spec: ExamSpec) -> str:
    return spec.spec_id


def _load_one(args: tuple[int, str, dict]) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
    i, folder, spec_d = args
    spec = ExamSpec.from_dict(spec_d)
    try:
        exam = load_study(folder).to_exam(spec)
    except StudyLoadError as exc:
        return i, None, None, f"{exc.code}: {exc}"
    pixels = exam.pixels_uint8()
    return i, pixels, exam.mask.copy(), None


@dataclass
class ExamCache:
    root: Path
    spec: ExamSpec
    records: list[StudyRecord]
    pixels: np.ndarray  # uint8 memmap [N, T, H, W]
    mask: np.ndarray  # bool [N, T]
    done: np.ndarray  # bool [N]
    errors: dict[str, str]

    @property
    def ok(self) -> np.ndarray:
        """Studies that loaded (done and not rejected)."""
        bad = {r for r in self.errors}
        return self.done & np.array([r.folder not in bad for r in self.records])

    def exam(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 pixels [T, H, W] in 0..1 and bool mask [T] of study i."""
        return self.pixels[i].astype(np.float32) / 255.0, self.mask[i].copy()

    def measurements(self, names: tuple[str, ...]) -> np.ndarray:
        """[N, len(names)] float32 measurement-token values of every study (NaN = not measured), read from the
        records (they are numbers, not pixels: nothing to cache)."""
        from cmr.model.measurements import measurement_matrix

        return measurement_matrix([r.measurements for r in self.records], names)

    @classmethod
    def open(cls, data_dir: Path, spec: ExamSpec) -> ExamCache:
        data_dir = Path(data_dir)
        records = read_records(data_dir)
        root = data_dir / "cache" / spec_id(spec)
        root.mkdir(parents=True, exist_ok=True)
        n, t, s = len(records), spec.length, spec.image_size
        index_path = root / "index.json"
        folders = [r.folder for r in records]
        index = json.loads(index_path.read_text()) if index_path.exists() else None
        if index is not None and index.get("folders") != folders:
            _reindex(root, index, folders, (t, s, s))  # reports.jsonl changed: keep the studies already cached
            index = json.loads(index_path.read_text())
        if index is None:
            for f in ("pixels.u8", "mask.npy", "done.npy"):
                (root / f).unlink(missing_ok=True)
            index = {"spec": spec.to_dict(), "folders": folders, "errors": {}}
            index_path.write_text(json.dumps(index))
        mode = "r+" if (root / "pixels.u8").exists() else "w+"
        pixels = np.memmap(root / "pixels.u8", dtype=np.uint8, mode=mode, shape=(n, t, s, s))
        mask = np.load(root / "mask.npy") if (root / "mask.npy").exists() else np.zeros((n, t), dtype=bool)
        done = np.load(root / "done.npy") if (root / "done.npy").exists() else np.zeros(n, dtype=bool)
        return cls(root, spec, records, pixels, mask, done, dict(index.get("errors", {})))

    def save(self) -> None:
        self.pixels.flush()  # type: ignore[attr-defined]
        np.save(self.root / "mask.npy", self.mask)
        index = json.loads((self.root / "index.json").read_text())
        index["errors"] = self.errors
        (self.root / "index.json").write_text(json.dumps(index))
        np.save(self.root / "done.npy", self.done)  # last: a study counts as done only once its data is saved


def _reindex(root: Path, index: dict, folders: list[str], shape: tuple[int, int, int]) -> None:
    """Rewrite a cache for a new study list, carrying over the rows of studies it already holds."""
    old_folders: list[str] = index.get("folders", [])
    old_done = np.load(root / "done.npy") if (root / "done.npy").exists() else np.zeros(len(old_folders), bool)
    old_mask = np.load(root / "mask.npy") if (root / "mask.npy").exists() else np.zeros((len(old_folders), shape[0]), bool)
    old_px = (np.memmap(root / "pixels.u8", dtype=np.uint8, mode="r", shape=(len(old_folders), *shape))
              if (root / "pixels.u8").exists() and old_folders else None)
    where = {f: i for i, f in enumerate(old_folders)}
    n = len(folders)
    px = np.memmap(root / "pixels.u8.new", dtype=np.uint8, mode="w+", shape=(n, *shape))
    mask, done = np.zeros((n, shape[0]), bool), np.zeros(n, bool)
    errors = {f: e for f, e in index.get("errors", {}).items() if f in set(folders)}
    for i, f in enumerate(folders):
        j = where.get(f)
        if j is not None and old_done[j]:
            if old_px is not None:
                px[i] = old_px[j]
            mask[i], done[i] = old_mask[j], True
    px.flush()
    del px, old_px
    os.replace(root / "pixels.u8.new", root / "pixels.u8")
    np.save(root / "mask.npy", mask)
    np.save(root / "done.npy", done)
    (root / "index.json").write_text(json.dumps({**index, "folders": folders, "errors": errors}))


def build_cache(data_dir: Path, spec: ExamSpec, workers: int = 0, progress: bool = True) -> ExamCache:
    """Load every study not yet cached (in parallel) and return the cache."""
    data_dir = Path(data_dir)
    cache = ExamCache.open(data_dir, spec)
    todo = [(i, str(data_dir / r.folder), spec.to_dict()) for i, r in enumerate(cache.records) if not cache.done[i]]
    if not todo:
        return cache
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc=f"cache {data_dir.name}", unit="study", disable=not progress)

    def store(result: tuple[int, np.ndarray | None, np.ndarray | None, str | None]) -> None:
        i, px, m, err = result
        if err is not None:
            cache.errors[cache.records[i].folder] = err
        else:
            cache.pixels[i] = px
            cache.mask[i] = m
        cache.done[i] = True
        bar.update()
        if bar.n % _SAVE_EVERY == 0:
            cache.save()

    try:
        if workers == 1:
            for args in todo:
                store(_load_one(args))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_load_one, todo, chunksize=4):
                    store(result)
    finally:
        cache.save()
        bar.close()
    return cache
