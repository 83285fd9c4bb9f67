"""Agreement of the segmenter with reference masks that may be used for anything: the phantom's own label
maps (synthetic studies written by `cmr synth`) and the CC0 Sunnybrook contours. Checkpoints are chosen on
these, never on ACDC (evaluation only; cmr.eval.real_quant measures on it the same way)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cmr.dicom.reader import load_study
from cmr.quant.labels import LV_CAVITY, LV_MYOCARDIUM, classes_from_tissues
from cmr.quant.measure import StudyMeasurement, measure_study
from cmr.quant.metrics import dice, error_summary, mean_or_none, volume_dice
from cmr.quant.segmenter import Segmenter
from cmr.realdata.sunnybrook import SunnybrookStack
from cmr.synth.generate import POSITIONS_SUFFIX, REPORTS_FILE, read_label_maps


def _slice_masks(sm: StudyMeasurement) -> dict[tuple[str, int], np.ndarray]:
    """(series key, slice index in the series) -> predicted masks [phases, rows, cols]."""
    return {(s.key, i): m for (s, i), m in zip(sm.slices, sm.masks)}


def sunnybrook_agreement(seg: Segmenter, stacks: Sequence[SunnybrookStack], progress: bool = False) -> dict[str, Any]:
    """LV cavity Dice on every contoured image, myocardium Dice where both contours exist, and LVEF against
    the contour LVEF (the same slices and phases the readers contoured)."""
    per: list[dict[str, Any]] = []
    for st in tqdm(stacks, desc="sunnybrook", disable=not progress):
        study = load_study(st.dicom_dir)
        sm = measure_study(study, seg)
        masks = _slice_masks(sm)
        cine = [s for s, _ in sm.slices]
        series = cine[0] if cine else None
        lv_d, myo_d = [], []
        ref_ef = auto_ef_same_slices = None
        if series is not None:
            located = st.locate(series)
            for (k, p), im in located.items():
                pred = masks.get((series.key, k))
                if pred is None:
                    continue
                if im.endo is not None:
                    lv_d.append(dice(pred[p] == LV_CAVITY, im.endo, 1))
                ref = im.labels()
                if ref is not None:
                    myo_d.append(dice(pred[p], ref, LV_MYOCARDIUM))
            ref = st.reference_lvef(series)
            if ref is not None:
                ref_ef, ed, es = ref
                ks = sorted({k for (k, p) in located if p in (ed, es)})
                vol = {p: sum(float((masks[(series.key, k)][p] == LV_CAVITY).sum()) for k in ks
                              if (series.key, k) in masks) for p in (ed, es)}
                auto_ef_same_slices = 100.0 * (1 - vol[es] / vol[ed]) if vol[ed] > 0 else None
        per.append({"stack": st.name, "lv_cavity_dice": mean_or_none(lv_d), "lv_myocardium_dice": mean_or_none(myo_d),
                    "n_contoured": len(lv_d), "reference_lvef": ref_ef, "lvef": sm.measurements.lvef_pct,
                    "lvef_contoured_slices": auto_ef_same_slices, "quality": sm.measurements.quality,
                    "measurements": sm.measurements.values()})
    return {
        "stacks": per,
        "lv_cavity_dice": mean_or_none(p["lv_cavity_dice"] for p in per),
        "lv_myocardium_dice": mean_or_none(p["lv_myocardium_dice"] for p in per),
        "lvef": error_summary([p["lvef"] for p in per], [p["reference_lvef"] for p in per]),
    }


def synthetic_agreement(seg: Segmenter, data_dir: Path, limit: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Dice at ED and ES against the phantom's label maps and measurement errors against the record's
    `reference_measurements`, for studies of a `cmr synth` folder that has label maps."""
    records = [json.loads(line) for line in (data_dir / REPORTS_FILE).read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("label_maps")][: limit or None]
    per: list[dict[str, Any]] = []
    for rec in tqdm(records, desc="synthetic", disable=not progress):
        study = load_study(data_dir / rec["folder"])
        sm = measure_study(study, seg)
        maps = read_label_maps(data_dir / rec["label_maps"])
        m = sm.measurements
        entry: dict[str, Any] = {"study": rec["folder"], "scanner": rec["scanner"],
                                 "measurements": m.values(), "reference": rec.get("reference_measurements", {})}
        if sm.slices and m.ed_phase is not None:
            series = sm.slices[0][0]
            name = f"series_{series.series_number:03d}"
            ref_labels = classes_from_tissues(maps[name])
            pos = maps[name + POSITIONS_SUFFIX]
            masks = _slice_masks(sm)
            pred, ref = [], []
            for i in range(series.n_slices):
                k = int(np.argmin(np.linalg.norm(pos - series.positions[i], axis=1)))
                if (series.key, i) in masks:
                    pred.append(masks[(series.key, i)])
                    ref.append(ref_labels[k])
            ref_ed = int(np.argmax([(r == LV_CAVITY).sum() for r in np.stack(ref).transpose(1, 0, 2, 3)]))
            ref_es = int(np.argmin([(r == LV_CAVITY).sum() for r in np.stack(ref).transpose(1, 0, 2, 3)]))
            p_arr, r_arr = np.stack(pred), np.stack(ref)
            entry["dice_ed"] = volume_dice(p_arr[:, ref_ed], r_arr[:, ref_ed])
            entry["dice_es"] = volume_dice(p_arr[:, ref_es], r_arr[:, ref_es])
        per.append(entry)
    out: dict[str, Any] = {"studies": per, "n": len(per)}
    for phase in ("dice_ed", "dice_es"):
        out[phase] = {k: mean_or_none(p.get(phase, {}).get(k) for p in per)
                      for k in ("rv_cavity", "lv_myocardium", "lv_cavity")}
    for k in ("lvef_pct", "rvef_pct", "lvedv_ml", "lvesv_ml", "lv_mass_g", "rvedv_ml"):
        out[k] = error_summary([p["measurements"].get(k) for p in per], [p["reference"].get(k) for p in per])
    return out
