"""`cmr bench quant`: how long segmenting and measuring one study takes on this machine (target: < 2 s on
2 CPU cores), by stage, in bfloat16 and float32, for the stack sizes users have.

Studies: synthetic ones of every scanner style (8-12 slices x 20-30 phases) and, when the shared real data
is present, the two full Sunnybrook stacks (11-13 slices x 20 phases, GE 1.5 T). Each study is loaded once,
then measured `repeats` times; the median is reported. Loading the DICOM (the study loader) is timed apart:
it is paid once per study by every consumer, whether it measures or not.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from cmr.dicom.reader import load_study
from cmr.machine import cpu_name
from cmr.quant.measure import measure_study
from cmr.quant.segmenter import Segmenter, bf16_supported, load_segmenter
from cmr.synth.generate import generate_dataset
from cmr.synth.scanners import STYLES

REPO = Path(__file__).resolve().parents[1]
console = Console(stderr=True)
TARGET_S = 2.0


@dataclass
class StudyTiming:
    study: str
    slices: int
    phases: int
    images: int
    load_s: float
    measure_s: dict[str, float]  # mode -> median seconds (segment + measure, DICOM already loaded)
    stages_s: dict[str, float]  # locate / curve / segment / clean_up / measure of the default mode


@dataclass
class QuantBench:
    machine: str
    threads: int
    bf16_available: bool
    segmenter: str
    repeats: int
    studies: list[StudyTiming] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _studies(work: Path, quick: bool) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    styles = list(STYLES)[:2] if quick else list(STYLES)
    for k, style in enumerate(styles):
        d = work / style
        generate_dataset(d, 1, 500 + k, workers=1, scanner=style, progress=False)
        out.append((f"synthetic {style}", d / "studies" / "study_00000"))
    shared = Path(os.environ.get("CMR_REALDATA_DIR") or REPO.parent / "shared" / "realdata") / "sunnybrook"
    for name in ("SCD0000201_SC-HF-I-2", "SCD0000401_SC-HF-I-5"):
        if (shared / name / "dicom").is_dir() and not (quick and out and name.endswith("5")):
            out.append((f"Sunnybrook {name}", shared / name / "dicom"))
    return out


def run(quick: bool = False, out_dir: Path | None = None, repeats: int | None = None) -> QuantBench:
    repeats = repeats or (2 if quick else 5)
    out_dir = out_dir or REPO / "docs" / "benchmarks"
    seg = load_segmenter()
    bf16 = bf16_supported()
    # label -> (bfloat16, every phase at full resolution); the first is what the services run.
    modes = {"default": (bf16, False), "all phases": (bf16, True)}
    if bf16:
        modes["default, float32"] = (False, False)
    default = "default"
    res = QuantBench(machine=f"{cpu_name()}, {os.cpu_count()} cores, {platform.machine()}",
                     threads=torch.get_num_threads(), bf16_available=bf16_supported(), segmenter=seg.version,
                     repeats=repeats)
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        for name, path in _studies(Path(tmp), quick):
            t0 = time.perf_counter()
            study = load_study(path)
            load_s = time.perf_counter() - t0
            times: dict[str, float] = {}
            stages: dict[str, list[float]] = {}
            for label, (bf16, all_phases) in modes.items():
                s = Segmenter(seg.net, seg.cfg, name=seg.name, version=seg.version, bf16=bf16, tta=seg.tta)
                measure_study(study, s, all_phases=all_phases)  # warm-up (first call allocates)
                runs = []
                for _ in range(repeats):
                    t1 = time.perf_counter()
                    sm = measure_study(study, s, all_phases=all_phases)
                    runs.append(time.perf_counter() - t1)
                    if label == default:
                        for k, v in sm.seconds.items():
                            stages.setdefault(k, []).append(v)
                times[label] = float(np.median(runs))
            sm = measure_study(study, seg)
            n_slices = len(sm.slices)
            n_phases = max((s.n_phases for s, _ in sm.slices), default=0)
            res.studies.append(StudyTiming(name, n_slices, n_phases, n_slices * n_phases, round(load_s, 3),
                                           {k: round(v, 3) for k, v in times.items()},
                                           {k: round(float(np.median(v)), 3) for k, v in stages.items()}))
            console.print(f"{name}: {n_slices}x{n_phases} images, load {load_s:.2f} s, "
                          + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    worst = max(s.measure_s[default] for s in res.studies)
    res.summary = {"mode": default, "median_s": float(np.median([s.measure_s[default] for s in res.studies])),
                   "worst_s": worst, "target_s": TARGET_S, "meets_target": worst < TARGET_S,
                   "load_average": [round(x, 2) for x in os.getloadavg()]}
    _write(res, out_dir)
    return res


def _write(res: QuantBench, out_dir: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "quant.json").write_text(json.dumps(asdict(res), indent=2) + "\n")
    precisions = list(res.studies[0].measure_s) if res.studies else []  # the modes
    lines = [
        "# Segmentation and measurement speed (`cmr bench quant`)",
        "",
        f"Machine: {res.machine}; torch threads {res.threads}; bfloat16 "
        f"{'available' if res.bf16_available else 'not available (float32 only)'}. Segmenter {res.segmenter}. "
        f"Median of {res.repeats} runs per study after a warm-up; load average at the end "
        f"{res.summary.get('load_average')}.",
        "",
        f"Target: one study segmented (every slice and phase) and measured in under {TARGET_S:g} s. "
        f"Worst study here: **{res.summary.get('worst_s', 0):.2f} s** ({res.summary.get('mode')}): "
        f"{'met' if res.summary.get('meets_target') else 'NOT met'}.",
        "",
        "| study | slices x phases | images | DICOM load (s) | " + " | ".join(f"{p} (s)" for p in precisions)
        + " | locate / curve / segment / clean-up / measure (s) |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in precisions) + " | --- |",
    ]
    for s in res.studies:
        st = s.stages_s
        lines.append(f"| {s.study} | {s.slices} x {s.phases} | {s.images} | {s.load_s:.2f} | "
                     + " | ".join(f"{s.measure_s[p]:.2f}" for p in precisions)
                     + f" | {st.get('locate', 0):.2f} / {st.get('curve', 0):.2f} / {st.get('segment', 0):.2f} / "
                       f"{st.get('clean_up', 0):.2f} / "
                       f"{st.get('measure', 0):.3f} |")
    lines += ["", "![time per study](quant.png)", "",
              "Times are `cmr.quant.measure.measure_study` on a loaded study (the study loader's time is shown apart). "
              "**default** (what the services and `cmr measure` run): localisation (middle slices, whole field of "
              "view), the volume-curve pass over every slice and phase at 1.7 mm, then ED and ES at full "
              "resolution with test-time augmentation, the 3-D clean-up and the measurements. **all phases**: "
              "every slice and phase at full resolution (`--all-phases`, `--masks`, the UI's cine loop)."]
    (out_dir / "quant.md").write_text("\n".join(lines) + "\n")
    fig = Figure(figsize=(7.5, 0.45 * len(res.studies) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = [s.study for s in res.studies]
    left = np.zeros(len(names))
    for stage, colour in (("locate", "#95a5a6"), ("curve", "#f39c12"), ("segment", "#c0392b"), ("clean_up", "#2e6fd1"),
                          ("measure", "#27ae60")):
        vals = np.array([s.stages_s.get(stage, 0.0) for s in res.studies])
        ax.barh(names, vals, left=left, color=colour, label=stage)
        left += vals
    ax.axvline(TARGET_S, color="k", ls="--", lw=0.8, label=f"target {TARGET_S:g} s")
    ax.set_xlabel(f"seconds per study ({res.summary.get('mode')} mode, {res.threads} threads)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "quant.png", dpi=110)
