"""Generate a synthetic CMR data set: DICOM studies plus reports.jsonl (impression, labels, ground truth), and
the full reports as a RIS exports them (ris/, see cmr.synth.ris).

Every study has its own random stream seeded from (seed, index), so a study is identical whatever the number
of workers or the order they finish in, and an interrupted run resumes where it stopped: a study whose
record `studies/study_NNNNN.json` is present with the same seed is kept.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cmr.quant.labels import classes_from_tissues
from cmr.quant.volumes import measurements_from_masks
from cmr.synth.acquisition import cine_contrast, form_images, lge_contrast, plan_exam
from cmr.synth.dicom_writer import StudyHeader, write_series
from cmr.synth.distractors import Distractors
from cmr.synth.phantom import HeartPhantom
from cmr.synth.report import Phrasing, write_impression
from cmr.synth.ris import export_ris, full_report
from cmr.synth.scanners import STYLES, style_pool
from cmr.synth.tissues import TISSUES
from cmr.synth.truth import sample_truth

REPORTS_FILE = "reports.jsonl"
STUDIES_DIR = "studies"
_RECORD_SUFFIX = ".json"
LABELS_SUFFIX = ".labels.npz"  # beside the study folder: tissue ids of every pixel of every series


POSITIONS_SUFFIX = "_positions"  # series_NNN_positions: ImagePositionPatient of each slice of series_NNN


def write_label_maps(path: Path, maps: dict[str, np.ndarray]) -> None:
    """`series_NNN` -> uint8 [slices, phases, rows, cols] tissue ids (cmr.synth.tissues) in the order the
    series was planned, `series_NNN_positions` -> [slices, 3] their ImagePositionPatient, plus the tissue names."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, tissues=np.array(TISSUES), **maps)
    os.replace(tmp, path)


def read_label_maps(path: Path) -> dict[str, np.ndarray]:
    """The label maps of one study, keyed by series folder name (`series_007`)."""
    with np.load(path) as z:
        if tuple(z["tissues"]) != TISSUES:
            raise ValueError(f"{path}: label maps use another tissue table")
        return {k: z[k] for k in z.files if k != "tissues"}


@dataclass(frozen=True)
class StudyRequest:
    out: Path
    seed: int
    index: int
    scanner: str | None
    phrasing: Phrasing
    distractors: bool = True  # the scouts, maps, flow, ... a real exam holds besides cine and LGE


def study_rng(seed: int, index: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, *stream]))


def generate_study(req: StudyRequest) -> dict[str, Any]:
    """Render one study to DICOM and return its reports.jsonl record."""
    rel = Path(STUDIES_DIR) / f"study_{req.index:05d}"
    folder = req.out / rel
    record_path = folder.with_name(folder.name + _RECORD_SUFFIX)  # beside the study: the folder is pure DICOM
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if (record.get("seed") == req.seed and record.get("index") == req.index
                and record.get("scanner") in style_pool(req.scanner) and "ris" in record
                and ("distractors" in record) == req.distractors):
            return record
    if folder.exists():
        shutil.rmtree(folder)  # a partial study from an interrupted run

    rng = study_rng(req.seed, req.index)
    # Scanner style is drawn independently of the disease, so it is never a shortcut to a label.
    pool = style_pool(req.scanner)
    style = STYLES[pool[0]] if len(pool) == 1 else STYLES[str(rng.choice(sorted(pool)))]
    truth = sample_truth(rng)
    report_rng = np.random.default_rng(np.random.SeedSequence([req.seed, req.index, 1]))
    impression = write_impression(truth, report_rng, req.phrasing)
    phantom = HeartPhantom(truth, rng)
    header = StudyHeader.make([req.seed, req.index], rng, truth.sex, truth.age, truth.heart_rate, truth.bsa)
    rr_ms = 60000.0 / truth.heart_rate
    views: list[str] = []
    label_maps: dict[str, np.ndarray] = {}
    cine = cine_contrast(style, rng)
    lge = lge_contrast(phantom, rng, style.lge_nulling_error)
    plans = plan_exam(phantom, style, rng)
    # Own random stream: the study's other series are the same with or without distractors.
    extras = Distractors(style, study_rng(req.seed, req.index, 2)) if req.distractors else None
    for plan in plans:
        labels = np.zeros((len(plan.planes), len(plan.trigger_fracs), *plan.matrix), dtype=np.uint8)
        plan.images = form_images(phantom, plan, style, rng, lge if plan.sequence == "lge" else cine, labels)
        name = f"series_{plan.series_number:03d}"
        write_series(plan, header, style, rr_ms, folder / name)
        if plan.slot != "localizer":
            views.append(f"{plan.sequence}_{plan.view}")
            label_maps[name] = labels
            label_maps[name + POSITIONS_SUFFIX] = np.array([plan.image_position(pl) for pl in plan.planes])
        if extras is not None:
            extras.see(plan)
        plan.images = None  # free memory before the next series
    distractors = extras.write(phantom, plans, header, rr_ms, folder, label_maps) if extras is not None else None
    labels_path = folder.with_name(folder.name + LABELS_SUFFIX)
    write_label_maps(labels_path, label_maps)
    sax = next(p for p in plans if p.slot == "cine_sax")
    reference = measurements_from_masks(
        classes_from_tissues(label_maps[f"series_{sax.series_number:03d}"]), sax.pixel_spacing,
        style.slice_thickness_mm + style.slice_gap_mm, height_m=header.height_m, weight_kg=header.weight_kg)
    lv_edv, lv_esv = phantom.lv_volumes_ml()
    rv_edv, rv_esv = phantom.rv_volumes_ml()
    record_measurements = reference.values()
    record: dict[str, Any] = {
        "study_instance_uid": header.study_uid,
        "folder": rel.as_posix(),
        "impression": impression.text,
        "sentences": list(impression.sentences),
        "mentioned": impression.mentioned,
        "scanner": style.name,
        "held_out_style": style.held_out,
        "phrasing": req.phrasing,
        "labels": truth.labels,
        "truth": truth.to_dict(),
        "measured": {
            "lv_edv_ml": round(lv_edv, 1), "lv_esv_ml": round(lv_esv, 1),
            "lvef": round(100.0 * (1 - lv_esv / lv_edv), 1),
            "rv_edv_ml": round(rv_edv, 1), "rv_esv_ml": round(rv_esv, 1),
            "rvef": round(100.0 * (1 - rv_esv / rv_edv), 1),
            "lv_end_systole_fraction": round(phantom.cycle.t_es, 3),
        },
        # What a perfect segmentation of the SAX cine would measure (disc summation over the label maps): the
        # reference of the quantification model on synthetic data (`measured` is the phantom's exact volume).
        "reference_measurements": record_measurements,
        "views": sorted(set(views)),
        "label_maps": (Path(STUDIES_DIR) / labels_path.name).as_posix(),
        "seed": req.seed,
        "index": req.index,
        # The study's report as the RIS holds it (identifiers, full text): written out by export_ris.
        "ris": full_report(truth, header, impression.text, style, req.seed, req.index, record_measurements),
    }
    if distractors is not None:
        record["distractors"] = distractors
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, record_path)  # the record marks the study complete
    return record


def generate_dataset(
    out: Path,
    studies: int,
    seed: int,
    workers: int = 0,
    scanner: str | None = None,
    phrasing: Phrasing = "train",
    progress: bool = True,
    distractors: bool = True,
) -> list[dict[str, Any]]:
    """Generate `studies` studies into `out` (in parallel) and write out/reports.jsonl in index order."""
    if studies < 1:
        raise ValueError("--studies must be at least 1")
    style_pool(scanner)  # fail fast on an unknown name
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    requests = [StudyRequest(out, seed, i, scanner, phrasing, distractors) for i in range(studies)]
    records: list[dict[str, Any]] = []
    bar = tqdm(total=studies, desc="synth", unit="study", disable=not progress)
    try:
        if workers == 1:
            for req in requests:
                records.append(generate_study(req))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(generate_study, r) for r in requests]
                for fut in as_completed(futures):
                    records.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    records.sort(key=lambda r: r["index"])
    tmp = out / (REPORTS_FILE + ".tmp")
    with tmp.open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    os.replace(tmp, out / REPORTS_FILE)
    export_ris(out, records)  # beside reports.jsonl: the full reports and the RIS export (cmr.synth.ris)
    return records
