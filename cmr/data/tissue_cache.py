"""Tissue exams: for synthetic studies, the exam tensor of their tissue label maps, frame for frame aligned with
the exam tensor of their images (same slots, slices, phases, field of view and centre), so training can draw new
images of the same hearts with random contrasts and textures (`cmr.train.render`, domain randomisation).

Only cine frames are kept (the label maps carry no scar, so a drawn LGE frame would not show what its report
says); every other frame, and every frame of a study without label maps, is NOT_DRAWN. Studies without label
maps, such as a hospital's, simply never get drawn images.

Layout beside the exam cache: DATA/cache/<spec id>/{tissues.u8, tissues_done.npy, tissues_errors.json};
resumable like the exam cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from cmr.data.cache import spec_id
from cmr.data.records import StudyRecord, read_records
from cmr.dicom import ExamSpec, StudyLoadError, load_study
from cmr.dicom.exam import assemble_exam
from cmr.dicom.model import Study

NOT_DRAWN = 255  # a frame with no tissue map: keep its image
_SAVE_EVERY = 50
_POSITIONS_SUFFIX = "_positions"  # cmr.synth.generate.POSITIONS_SUFFIX (the data layer does not import synth)


class TissueMapError(ValueError):
    """A study's label maps do not match its DICOM series."""


def _label_maps(path: Path) -> dict[str, NDArray[np.uint8]]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "tissues"}


def tissue_study(study: Study, maps: dict[str, NDArray[np.uint8]]) -> Study:
    """`study` with every series' pixels replaced by its tissue ids (slices matched by position, since the loader
    orders slices its own way). Series without a map keep NOT_DRAWN everywhere."""
    series = []
    for s in study.series:
        name = f"series_{s.series_number:03d}" if s.series_number is not None else ""
        ids = np.full(s.pixels.shape, NOT_DRAWN, np.float32)
        if name in maps and name + _POSITIONS_SUFFIX in maps:
            labels, planned = maps[name], maps[name + _POSITIONS_SUFFIX]
            plane = [int(np.argmin(np.linalg.norm(planned - s.positions[i], axis=1))) for i in range(s.n_slices)]
            if labels.shape[1:] != s.pixels.shape[1:]:
                raise TissueMapError(f"{name}: label maps {labels.shape[1:]} do not match the images "
                                     f"{s.pixels.shape[1:]}")
            ids = labels[plane].astype(np.float32)
        series.append(dataclasses.replace(s, pixels=ids))
    return dataclasses.replace(study, series=series)


def tissue_exam(folder: Path, label_maps: Path, spec: ExamSpec) -> NDArray[np.uint8]:
    """uint8 [T, S, S] tissue ids of the study's exam tensor; NOT_DRAWN outside cine frames."""
    study = load_study(folder)
    ids = assemble_exam(tissue_study(study, _label_maps(label_maps)), spec, categorical=True).pixels
    out = np.full(ids.shape, NOT_DRAWN, np.uint8)
    start = 0
    for slot in spec.slots:
        if slot.sequence == "cine":
            block = ids[start : start + slot.length]
            out[start : start + slot.length] = np.clip(np.rint(block), 0, NOT_DRAWN).astype(np.uint8)
        start += slot.length
    return out


def _load_one(args: tuple[int, str, str, dict]) -> tuple[int, NDArray[np.uint8] | None, str | None]:
    i, folder, maps, spec_d = args
    try:
        return i, tissue_exam(Path(folder), Path(maps), ExamSpec.from_dict(spec_d)), None
    except (StudyLoadError, TissueMapError, OSError, KeyError, ValueError) as exc:
        return i, None, f"{type(exc).__name__}: {exc}"


@dataclass
class TissueCache:
    root: Path
    records: list[StudyRecord]
    tissues: np.ndarray  # uint8 memmap [N, T, S, S]
    done: np.ndarray  # bool [N]
    errors: dict[str, str]

    @property
    def available(self) -> np.ndarray:
        """[N] bool: studies with tissue exams."""
        bad = set(self.errors)
        return self.done & np.array([bool(r.label_maps) and r.folder not in bad for r in self.records])

    @classmethod
    def open(cls, data_dir: Path, spec: ExamSpec) -> TissueCache:
        records = read_records(Path(data_dir))
        root = Path(data_dir) / "cache" / spec_id(spec)
        root.mkdir(parents=True, exist_ok=True)
        n, t, s = len(records), spec.length, spec.image_size
        index = root / "tissues_index.json"
        folders = [r.folder for r in records]
        if not index.exists() or json.loads(index.read_text()).get("folders") != folders:
            for f in ("tissues.u8", "tissues_done.npy", "tissues_errors.json"):  # a new study list: start over
                (root / f).unlink(missing_ok=True)
            index.write_text(json.dumps({"spec": spec.to_dict(), "folders": folders}))
        mode = "r+" if (root / "tissues.u8").exists() else "w+"
        tissues = np.memmap(root / "tissues.u8", dtype=np.uint8, mode=mode, shape=(n, t, s, s))
        done_path, err_path = root / "tissues_done.npy", root / "tissues_errors.json"
        done = np.load(done_path) if done_path.exists() else np.zeros(n, bool)
        errors = json.loads(err_path.read_text()) if err_path.exists() else {}
        return cls(root, records, tissues, done, errors)

    def save(self) -> None:
        self.tissues.flush()  # type: ignore[attr-defined]
        (self.root / "tissues_errors.json").write_text(json.dumps(self.errors))
        np.save(self.root / "tissues_done.npy", self.done)  # last: done only once the data is saved


def build_tissue_cache(data_dir: Path, spec: ExamSpec, workers: int = 0, progress: bool = True) -> TissueCache:
    """Tissue exams of every study that has label maps and is not cached yet (in parallel)."""
    data_dir = Path(data_dir)
    cache = TissueCache.open(data_dir, spec)
    todo = []
    for i, r in enumerate(cache.records):
        if cache.done[i]:
            continue
        if not r.label_maps:
            cache.tissues[i] = NOT_DRAWN
            cache.done[i] = True
            continue
        todo.append((i, str(data_dir / r.folder), str(data_dir / r.label_maps), spec.to_dict()))
    if not todo:
        cache.save()
        return cache
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc=f"tissue exams {data_dir.name}", unit="study", disable=not progress)

    def store(result: tuple[int, NDArray[np.uint8] | None, str | None]) -> None:
        i, ids, err = result
        if err is not None or ids is None:
            cache.errors[cache.records[i].folder] = err or "no tissue exam"
            cache.tissues[i] = NOT_DRAWN
        else:
            cache.tissues[i] = ids
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
