"""`cmr dataset import` at the issue's size: 500 synthetic studies (all scanner styles, distractor series, HL7
export), imported in chunks because this machine's disk cannot hold 500 source studies (~25 MB each) and their
imported copy at once. Each chunk is a `cmr synth` output imported into a fresh folder, which is removed before
the next; the rate is all studies over the summed import wall (and CPU) time. The studies of one import are
independent work in the pool, so chunking changes nothing per study but the pool's start-up per chunk (counted).

Run: .venv/bin/python -m bench.import_at_scale CHUNK_DIR [CHUNK_DIR ...] [--workers 2] [--keep-series exam]
     [--out docs/benchmarks/import.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.import_speed import import_once, insert_section, studies_only
from cmr.machine import cpu_name


def _chunk_row(k: int, data: Path, run: dict) -> str:
    res = run["result"]
    return (f"| {k} | {data.name} | {run['load']:.1f} | {res.imported} | {res.excluded} | "
            f"{run['wall']:.1f} | {60.0 * res.imported / run['wall']:.1f} | {run['cpu']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chunks", type=Path, nargs="+", help="`cmr synth` outputs (studies/, ris/) to import in turn")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep-series", default="exam", choices=("exam", "all"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/import.md"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows, runs = [], []
    for k, data in enumerate(args.chunks, 1):
        tmp = Path(tempfile.mkdtemp(prefix="import-scale-"))
        try:
            run = import_once(studies_only(data, tmp / "studies"), data / "ris" / "reports.hl7", tmp / "out",
                              args.workers, args.keep_series)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # disk: one imported chunk at a time
        runs.append(run)
        rows.append(_chunk_row(k, data, run))
        print(rows[-1], flush=True)
    n = sum(r["result"].imported for r in runs)
    wall, cpu = sum(r["wall"] for r in runs), sum(r["cpu"] for r in runs)
    lines = [
        f"## {n} studies, --keep-series {args.keep_series}, in {len(runs)} chunks "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; {args.workers} worker processes; load average before the "
        f"first chunk {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} (1 / 5 / 15 min), each "
        "chunk's 1-min load just before it below. `python -m bench.import_at_scale` (module doc: why chunks).", "",
        "| chunk | synth output | load | imported | excluded | wall s | studies/min (wall) | CPU s |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"**All {n} studies: {wall:.0f} s of import wall time, {60.0 * n / wall:.1f} studies/min by wall clock, "
        f"{60.0 * n / (cpu / args.workers):.1f} by CPU over the {args.workers} workers** (target, issue 18: >= 60 "
        "studies/min on 2 cores).", ""]
    insert_section(args.out, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
