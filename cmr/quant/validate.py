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
from cmr.quant.measure import Stack, measure_study, segment_phases, stack_of
from cmr.quant.metrics import dice, error_summary, mean_or_none, volume_dice
from cmr.quant.segmenter import Segmenter
from cmr.realdata.sunnybrook import SunnybrookStack
from cmr.synth.generate import POSITIONS_SUFFIX, REPORTS_FILE, read_label_maps


def _masks_by_slice(stack: Stack, masks: list[np.ndarray]) -> dict[tuple[str, int], np.ndarray]:
    """(series key, slice index in the series) -> masks [frames, rows, cols]."""
    return {(s.key, i): m for (s, i), m in zip(stack.refs, masks)}


def sunnybrook_agreement(seg: Segmenter, stacks: Sequence[SunnybrookStack], progress: bool = False) -> dict[str, Any]:
    """LV cavity Dice on every contoured image, myocardium Dice where both contours exist (full-resolution
    masks of the contoured phases), and the automatic pipeline's LVEF against the contour LVEF."""
    per: list[dict[str, Any]] = []
    for st in tqdm(stacks, desc="sunnybrook", disable=not progress):
        study = load_study(st.dicom_dir)
        sm = measure_study(study, seg)
        lv_d, myo_d = [], []
        ref_ef = auto_ef_same_slices = None
        series = sm.slices[0][0] if sm.slices else None
        located = st.locate(series) if series is not None else {}
        phases = sorted({p for (_, p) in located})
        got = segment_phases(study, seg, phases) if phases else None
        if got is not None and series is not None:
            stack, masks = got
            by_slice = _masks_by_slice(stack, masks)
            for (k, p), im in located.items():
                pred = by_slice.get((series.key, k))
                if pred is None:
                    continue
                frame = pred[phases.index(p)]
                if im.endo is not None:
                    lv_d.append(dice(frame == LV_CAVITY, im.endo, 1))
                ref = im.labels()
                if ref is not None:
                    myo_d.append(dice(frame, ref, LV_MYOCARDIUM))
            ref = st.reference_lvef(series)
            if ref is not None:
                ref_ef, ed, es = ref
                ks = sorted({k for (k, p) in located if p in (ed, es)})
                vol = {p: sum(float((by_slice[(series.key, k)][phases.index(p)] == LV_CAVITY).sum()) for k in ks
                              if (series.key, k) in by_slice) for p in (ed, es)}
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
        stack = stack_of(study)
        if not isinstance(stack, str):
            series = stack.refs[0][0]
            name = f"series_{series.series_number:03d}"
            ref_labels = classes_from_tissues(maps[name])  # [planes, phases, rows, cols], planned order
            pos = maps[name + POSITIONS_SUFFIX]
            plane = [int(np.argmin(np.linalg.norm(pos - s.positions[i], axis=1))) for s, i in stack.refs]
            ref = ref_labels[plane]  # in stack order
            lv = (ref == LV_CAVITY).sum(axis=(0, 2, 3))
            ref_ed, ref_es = int(np.argmax(lv)), int(np.argmin(lv))
            got = segment_phases(study, seg, [ref_ed, ref_es])
            if got is not None:
                pred = np.stack(got[1])  # [slices, 2, rows, cols]
                entry["dice_ed"] = volume_dice(pred[:, 0], ref[:, ref_ed])
                entry["dice_es"] = volume_dice(pred[:, 1], ref[:, ref_es])
        per.append(entry)
    out: dict[str, Any] = {"studies": per, "n": len(per)}
    for phase in ("dice_ed", "dice_es"):
        out[phase] = {k: mean_or_none(p.get(phase, {}).get(k) for p in per)
                      for k in ("rv_cavity", "lv_myocardium", "lv_cavity")}
    for k in ("lvef_pct", "rvef_pct", "lvedv_ml", "lvesv_ml", "lv_mass_g", "rvedv_ml"):
        out[k] = error_summary([p["measurements"].get(k) for p in per], [p["reference"].get(k) for p in per])
    return out
