"""Benchmark `cmr synth`: studies per minute per core at the default size, and bytes per study.

Run: .venv/bin/python bench/synth_speed.py [--studies N] [--out docs/benchmarks/synth.md]
Writes a markdown table; the machine is named from /proc/cpuinfo and os.cpu_count().
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from cmr.machine import cpu_name
from cmr.synth.generate import StudyRequest, generate_study
from cmr.synth.scanners import STYLES


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-style", type=int, default=4, help="studies per scanner style")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/synth.md"))
    args = ap.parse_args()
    times: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, list[int]] = defaultdict(list)
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        index = 0
        for style in STYLES:
            for _ in range(args.per_style):
                start = time.perf_counter()
                rec = generate_study(StudyRequest(tmp, 2024, index, style, "train"))  # one process = one core
                times[style].append(time.perf_counter() - start)
                sizes[style].append(sum(f.stat().st_size for f in (tmp / rec["folder"]).rglob("*") if f.is_file()))
                index += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    all_t = [t for ts in times.values() for t in ts]
    all_s = [s for ss in sizes.values() for s in ss]
    lines = [
        "# `cmr synth` speed (one core)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; one process (= one core), default size; "
        f"{args.per_style} studies per style, seed 2024. Produced by `bench/synth_speed.py`.",
        "",
        "| scanner style | s/study | studies/min/core | MB/study |",
        "| --- | --- | --- | --- |",
    ]
    for style in STYLES:
        t = sum(times[style]) / len(times[style])
        mb = sum(sizes[style]) / len(sizes[style]) / 1e6
        lines.append(f"| {style} | {t:.2f} | {60 / t:.1f} | {mb:.1f} |")
    t = sum(all_t) / len(all_t)
    lines.append(f"| **all (styles drawn uniformly)** | {t:.2f} | **{60 / t:.1f}** | {sum(all_s) / len(all_s) / 1e6:.1f} |")
    lines += ["", "Target (issue 2): at least 30 studies per minute per core at the default size."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
