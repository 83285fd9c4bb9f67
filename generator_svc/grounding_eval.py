"""The numbers drafts state, before and after grounding (part of `cmr eval-drafts`).

For each test study the shipped (or a given) segmenter measures the study (`cmr.quant.measure_study`, cached per
segmenter version in `<test>/cache/measurements/`, so a re-run measures nothing again); each mode's draft is
grounded in those measurements exactly as the service does it (`cmr.generator.grounding`). Per mode and per
quantity: how many drafts state it, and how often the stated value is within tolerance of (a) the measurement
and (b) on synthetic data the ground truth - the phantom's LVEF / RVEF (`truth.lvef`, `truth.rvef`) and, for
volumes and mass, what a perfect segmentation of the SAX cine measures (`reference_measurements`). Tolerances:
5 percentage points for ejection fractions, 10 % of the reference for volumes and mass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cmr.generator.grounding import ground_text, stated_values
from cmr.quant.volumes import Measurements

# The quantities scored, in table order, with their tolerance.
NUMBER_FIELDS: tuple[str, ...] = ("lvef_pct", "rvef_pct", "lvedv_ml", "lvedvi_ml_m2", "lvesv_ml", "lv_mass_g",
                                  "rvedvi_ml_m2")
NAMES = {"lvef_pct": "LVEF", "rvef_pct": "RVEF", "lvedv_ml": "LVEDV", "lvedvi_ml_m2": "LVEDVi", "lvesv_ml": "LVESV",
         "lv_mass_g": "LV mass", "rvedvi_ml_m2": "RVEDVi"}
EF_TOLERANCE_POINTS = 5.0
VOLUME_TOLERANCE = 0.10


def within(field: str, stated: float, reference: float) -> bool:
    if field.endswith("ef_pct"):
        return abs(stated - reference) <= EF_TOLERANCE_POINTS
    return abs(stated - reference) <= VOLUME_TOLERANCE * abs(reference)


def truth_of(record: dict[str, Any]) -> dict[str, float]:
    """Ground truth of a synthetic record: LVEF/RVEF of the phantom, volumes and mass of a perfect segmentation;
    {} for data without them."""
    ref = record.get("reference_measurements") or {}
    out = {f: float(ref[f]) for f in NUMBER_FIELDS if ref.get(f) is not None}
    truth = record.get("truth") or {}
    for f, k in (("lvef_pct", "lvef"), ("rvef_pct", "rvef")):
        if truth.get(k) is not None:
            out[f] = float(truth[k])
    return out


def raw_records(data_dir: Path) -> dict[str, dict[str, Any]]:
    """reports.jsonl rows by folder (with the fields StudyRecord does not keep: truth, reference_measurements)."""
    rows = [json.loads(line) for line in (Path(data_dir) / "reports.jsonl").read_text().splitlines() if line.strip()]
    return {str(r["folder"]): r for r in rows}


# --- measuring the test studies ------------------------------------------------------------------------------

_measurer = None


def _init_worker(checkpoint: str | None) -> None:
    global _measurer
    import torch

    from cmr.rpc.measuring import StudyMeasurer

    torch.set_num_threads(1)
    _measurer = StudyMeasurer(checkpoint)


def _measure_one(path: str) -> dict[str, Any]:
    from cmr.dicom import load_study
    from cmr.rpc.measuring import failed_measurement

    assert _measurer is not None
    try:
        study = load_study(Path(path))
    except Exception as exc:  # noqa: BLE001 - a study the loader refuses is scored as not measured
        return failed_measurement(type(exc).__name__).to_dict()
    return _measurer.measure(study).measurements.to_dict()


def segmenter_version(checkpoint: Path | None) -> str:
    from cmr.quant.segmenter import SHIPPED
    from cmr.model.checkpoint import checkpoint_version

    return checkpoint_version(Path(checkpoint) if checkpoint is not None else SHIPPED)


def measure_studies(data_dir: Path, folders: Sequence[str], checkpoint: Path | None = None, *, workers: int = 1,
                    progress: bool = True) -> tuple[list[Measurements], str]:
    """Measurements of `folders` (in order) and the segmenter version; cached in
    `data_dir/cache/measurements/<version>.jsonl`, so only studies not measured before are."""
    version = segmenter_version(checkpoint)
    cache = Path(data_dir) / "cache" / "measurements" / f"{version.replace('@', '_')}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            try:
                row = json.loads(line)
                done[row["folder"]] = row["measurements"]
            except (ValueError, KeyError):
                continue  # a line cut by an interrupted run: measured again
    todo = [f for f in dict.fromkeys(folders) if f not in done]
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(todo), desc=f"measuring ({version})", unit="study", disable=not progress)
        args = [str(Path(data_dir) / f) for f in todo]
        with cache.open("a") as out, ProcessPoolExecutor(max(1, workers), initializer=_init_worker,
                                                         initargs=(None if checkpoint is None else str(checkpoint),)
                                                         ) as pool:
            for folder, m in zip(todo, pool.map(_measure_one, args)):
                done[folder] = m
                out.write(json.dumps({"folder": folder, "measurements": m}) + "\n")
                out.flush()
                bar.update()
        bar.close()
    return [Measurements.from_dict(done[f]) for f in folders], version


# --- scoring -----------------------------------------------------------------------------------------------


def number_agreement(drafts: Sequence[str], measured: Sequence[Measurements], truths: Sequence[dict[str, float]]
                     ) -> dict[str, dict[str, int]]:
    """Per quantity: drafts stating it, and of those, how many are within tolerance of the measurement / truth
    (counted where that reference exists)."""
    out: dict[str, dict[str, int]] = {}
    for f in NUMBER_FIELDS:
        c = {"drafts": len(drafts), "stated": 0, "measured_compared": 0, "measured_within": 0,
             "truth_compared": 0, "truth_within": 0}
        for text, m, t in zip(drafts, measured, truths):
            v = stated_values(text).get(f)
            if v is None:
                continue
            c["stated"] += 1
            mv = getattr(m, f) if m is not None and m.quality in ("ok", "check") else None
            if mv is not None:
                c["measured_compared"] += 1
                c["measured_within"] += within(f, v, float(mv))
            if f in t:
                c["truth_compared"] += 1
                c["truth_within"] += within(f, v, t[f])
        out[f] = c
    return out


def segmenter_agreement(measured: Sequence[Measurements], truths: Sequence[dict[str, float]]) -> dict[str, dict[str, int]]:
    """The measurements themselves against the truth: the ceiling of a grounded draft."""
    out: dict[str, dict[str, int]] = {}
    for f in NUMBER_FIELDS:
        c = {"measured": 0, "compared": 0, "within": 0}
        for m, t in zip(measured, truths):
            v = getattr(m, f) if m.quality in ("ok", "check") else None
            if v is None:
                continue
            c["measured"] += 1
            if f in t:
                c["compared"] += 1
                c["within"] += within(f, float(v), t[f])
        out[f] = c
    return out


def evaluate_grounding(drafts: dict[str, Sequence[str]], measured: Sequence[Measurements],
                       truths: Sequence[dict[str, float]], labels: Sequence[dict[str, Any]],
                       segmenter: str) -> dict[str, Any]:
    """Before/after grounding, per mode: number agreement, what grounding did, and clinical scores."""
    from cmr.reports import clinical_scores

    quality = {q: sum(1 for m in measured if m.quality == q) for q in ("ok", "check", "failed")}
    modes: dict[str, Any] = {}
    for mode, texts in drafts.items():
        grounded = [ground_text(t, m) for t, m in zip(texts, measured)]
        after = [g.text for g in grounded]
        actions: dict[str, int] = {}
        for g in grounded:
            for k, v in g.counts().items():
                actions[k] = actions.get(k, 0) + v
        before_c, after_c = clinical_scores(list(texts), list(labels)), clinical_scores(after, list(labels))
        modes[mode] = {
            "before": number_agreement(texts, measured, truths),
            "after": number_agreement(after, measured, truths),
            "actions": actions,
            "clinical": {"before": {"macro_f1": before_c.macro_f1, "hallucination_rate": before_c.hallucination_rate},
                         "after": {"macro_f1": after_c.macro_f1, "hallucination_rate": after_c.hallucination_rate}},
            "example": {"draft": texts[0], "grounded": after[0]} if texts else None,
        }
    return {"segmenter": segmenter, "studies": len(measured), "quality": quality,
            "segmenter_vs_truth": segmenter_agreement(measured, truths), "modes": modes,
            "tolerance": {"ef_points": EF_TOLERANCE_POINTS, "volume_fraction": VOLUME_TOLERANCE}}


def run(test_dir: Path, folders: Sequence[str], drafts: dict[str, Sequence[str]], labels: Sequence[dict[str, Any]],
        *, checkpoint: Path | None = None, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Measure the studies (cached), ground every mode's drafts and score the numbers."""
    measured, version = measure_studies(test_dir, folders, checkpoint, workers=workers, progress=progress)
    rows = raw_records(test_dir)
    truths = [truth_of(rows.get(f, {})) for f in folders]
    return evaluate_grounding(drafts, measured, truths, labels, version)


# --- report ------------------------------------------------------------------------------------------------

def _cell(within_: int, compared: int) -> str:
    return "-" if compared == 0 else f"{within_}/{compared} ({100.0 * within_ / compared:.0f}%)"


def report_lines(g: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The "Stated numbers" section of drafting.md."""
    tol = g["tolerance"]
    q = g["quality"]
    lines = [
        "## Stated numbers: before and after grounding", "",
        f"The first {g['studies']} test studies, measured by `{g['segmenter']}` (quality ok {q['ok']}, check "
        f"{q['check']}, failed {q['failed']}); each draft grounded as the service does it "
        "(`cmr.generator.grounding`). A stated value counts as right within "
        f"{tol['ef_points']:g} points (EF) or {100 * tol['volume_fraction']:g} % (volumes, mass) of the measurement, "
        "and of the truth: the phantom's LVEF/RVEF, and for volumes and mass what a perfect segmentation of the SAX "
        "cine measures (`reference_measurements`). Cells: within / drafts stating it (and having that reference).",
        "",
        "| mode | draft | " + " | ".join(f"{NAMES[f]} stated | vs measured | vs truth" for f in ("lvef_pct", "rvef_pct"))
        + " |",
        "| --- | --- |" + " --- |" * 6,
    ]
    for mode, r in g["modes"].items():
        for when in ("before", "after"):
            a = r[when]
            cells = []
            for f in ("lvef_pct", "rvef_pct"):
                c = a[f]
                cells += [f"{c['stated']}/{c['drafts']}", _cell(c["measured_within"], c["measured_compared"]),
                          _cell(c["truth_within"], c["truth_compared"])]
            lines.append(f"| {labels[mode]} | {'as drafted' if when == 'before' else 'grounded'} | "
                         + " | ".join(cells) + " |")
    vols = [f for f in NUMBER_FIELDS if not f.endswith("ef_pct")]
    lines += ["", "Volumes and mass (stated: within 10 % of measured / of truth):", "",
              "| mode | draft | " + " | ".join(NAMES[f] for f in vols) + " |", "| --- | --- |" + " --- |" * len(vols)]
    for mode, r in g["modes"].items():
        for when in ("before", "after"):
            a = r[when]
            cells = [f"{a[f]['stated']}: {_cell(a[f]['measured_within'], a[f]['measured_compared'])} / "
                     f"{_cell(a[f]['truth_within'], a[f]['truth_compared'])}" if a[f]["stated"] else "0"
                     for f in vols]
            lines.append(f"| {labels[mode]} | {'as drafted' if when == 'before' else 'grounded'} | "
                         + " | ".join(cells) + " |")
    s = g["segmenter_vs_truth"]
    lines += ["", "The measurements themselves against the truth (the ceiling of a grounded draft): "
              + ", ".join(f"{NAMES[f]} {_cell(s[f]['within'], s[f]['compared'])}" for f in NUMBER_FIELDS) + ".", "",
              "What grounding did, and the clinical scores of the same studies before / after:", "",
              "| mode | numbers replaced | removed | added | phrases rewritten | sentences flagged | sentences dropped "
              "| macro clinical F1 | hallucination rate |", "| --- |" + " --- |" * 8]

    def f3(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for mode, r in g["modes"].items():
        a, c = r["actions"], r["clinical"]
        lines.append(f"| {labels[mode]} | {a.get('replaced', 0)} | {a.get('removed', 0)} | {a.get('added', 0)} | "
                     f"{a.get('rewritten', 0)} | {a.get('review', 0)} | {a.get('dropped', 0)} | "
                     f"{f3(c['before']['macro_f1'])} / {f3(c['after']['macro_f1'])} | "
                     f"{f3(c['before']['hallucination_rate'])} / {f3(c['after']['hallucination_rate'])} |")
    examples = [(mode, r["example"]) for mode, r in g["modes"].items() if r.get("example")]
    if examples:
        lines += ["", "The first study, as drafted and grounded:", ""]
        for mode, ex in examples:
            lines += [f"- *{labels[mode]}:* {ex['draft']}", f"  - *grounded:* {ex['grounded']}"]
    return lines + [""]


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


__all__ = ["NUMBER_FIELDS", "evaluate_grounding", "measure_studies", "number_agreement", "report_lines", "run",
           "segmenter_agreement", "truth_of", "within"]
