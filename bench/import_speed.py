"""Benchmark `cmr dataset import`: studies per minute on the machine's cores, time per stage, and the report
parsers alone at the issue's size (500 reports per format).

Run: .venv/bin/python bench/import_speed.py [--data SYNTH_DIR | --studies N] [--workers 2]
     [--out docs/benchmarks/import.md]
SYNTH_DIR is a `cmr synth` output (studies/ and ris/); without it N studies are synthesised first (not timed).
Stage seconds (wall and CPU) are summed over worker processes, so wall ones add up to about workers x wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from cmr.archive.importer import ImportRequest, import_archive
from cmr.archive.reports import read_reports
from cmr.config import get_settings
from cmr.machine import cpu_name
from cmr.synth.generate import generate_dataset
from cmr.synth.ris import to_csv, to_fhir_bundle, to_hl7_message

_N_PARSE = 500


def studies_only(data: Path, into: Path) -> Path:
    """The study folders of a synth output, without the ground-truth files beside them (links, no copies)."""
    into.mkdir()
    for folder in sorted(p for p in (data / "studies").iterdir() if p.is_dir()):
        (into / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    return into


def _parse_times(entries: list[dict], tmp: Path) -> dict[str, float]:
    """Seconds to read _N_PARSE reports per format (entries repeated with distinct accession numbers)."""
    many = [{**entries[i % len(entries)], "accession": f"ACC{i:08d}", "index": i} for i in range(_N_PARSE)]
    files = {"csv": ("r.csv", to_csv(many)), "hl7": ("r.hl7", "\n".join(to_hl7_message(e) for e in many)),
             "fhir": ("r.ndjson", "".join(json.dumps(to_fhir_bundle(e)) + "\n" for e in many))}
    out = {}
    for fmt, (name, text) in files.items():
        path = tmp / name
        path.write_bytes(text.encode())
        t0 = time.perf_counter()
        got = read_reports(path, fmt)  # type: ignore[arg-type]
        out[fmt] = time.perf_counter() - t0
        assert len(got.reports) == _N_PARSE, got.failures[:3]
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="an existing `cmr synth` output to import")
    ap.add_argument("--studies", type=int, default=20, help="studies to synthesise when --data is not given")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/import.md"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="import-bench-"))
    try:
        data = args.data
        if data is None:
            data = tmp / "synth"
            generate_dataset(data, args.studies, 2024, workers=args.workers, progress=False)
        entries = [json.loads(p.read_text())["ris"] for p in sorted((data / "studies").glob("*.json"))]
        studies = studies_only(data, tmp / "studies")
        n = len(entries)
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        result = import_archive(ImportRequest(studies, data / "ris" / "reports.hl7", tmp / "out",
                                              workers=args.workers, progress=False), get_settings())
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        parse = _parse_times(entries, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stages = result.card["stage_seconds"]
    stage_cpu = result.card["stage_cpu_seconds"]
    total = sum(stages.values()) or 1.0
    total_cpu = sum(stage_cpu.values()) or 1.0
    rate = 60.0 * result.imported / wall
    # On a shared machine the wall clock counts other jobs' time; CPU seconds spread over the workers give
    # the rate these cores would reach with nothing else running.
    cpu_rate = 60.0 * result.imported / (cpu / args.workers)
    lines = [
        "# `cmr dataset import` speed", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; {args.workers} worker processes; {n} synthetic studies "
        f"(all scanner styles), HL7 export. Produced by `bench/import_speed.py` on {time.strftime('%Y-%m-%d')}.", "",
        f"Load average when it ran: {os.getloadavg()[0]:.1f} (other jobs share the machine).", "",
        "| studies | imported | wall s | studies/min (wall) | CPU s | studies/min (CPU / workers) |",
        "|---|---|---|---|---|---|",
        f"| {n} | {result.imported} | {wall:.1f} | **{rate:.1f}** | {cpu:.1f} | **{cpu_rate:.1f}** |", "",
        "Per stage (seconds summed over workers; per study = sum / studies). Wall seconds include waiting for "
        "the cores other jobs hold; CPU seconds (user + system of the worker) do not:", "",
        "| stage | wall s | wall s/study | share | CPU s | CPU s/study | CPU share |", "|---|---|---|---|---|---|---|",
        *(f"| {k} | {v:.2f} | {v / max(n, 1):.3f} | {v / total:.0%} | {stage_cpu.get(k, 0.0):.2f} | "
          f"{stage_cpu.get(k, 0.0) / max(n, 1):.3f} | {stage_cpu.get(k, 0.0) / total_cpu:.0%} |"
          for k, v in stages.items()), "",
        f"Report parsing alone, {_N_PARSE} reports per format (one process):", "",
        "| format | s | reports/s |", "|---|---|---|",
        *(f"| {k} | {v:.2f} | {_N_PARSE / v:.0f} |" for k, v in parse.items()), "",
        "Target (issue 18): >= 60 studies/min on 2 cores for 500 studies. Measured here at a smaller size (the "
        "rate per study does not depend on the count: each study is independent work in the pool).", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
