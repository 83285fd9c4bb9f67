"""Benchmark `cmr dataset import`: studies per minute on the machine's cores, time per stage, and the report
parsers alone at the issue's size (500 reports per format).

Run: .venv/bin/python bench/import_speed.py [--data SYNTH_DIR | --studies N] [--workers 2] [--keep-series exam,all,all,exam]
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


def import_once(studies: Path, export: Path, out: Path, workers: int, keep: str) -> dict:
    """One timed import; the load average is read just before it starts (other jobs share the machine)."""
    load = os.getloadavg()[0]
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    result = import_archive(ImportRequest(studies, export, out, workers=workers, progress=False,
                                          keep_series=keep), get_settings())  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    mb = sum(f.stat().st_size for f in (out / "studies").rglob("*") if f.is_file()) / 1e6
    return {"keep": keep, "label": keep, "load": load, "wall": wall, "cpu": cpu, "result": result, "written_mb": mb}


def _section(runs: list[dict], n: int, workers: int, parse: dict[str, float]) -> list[str]:
    """A dated markdown section: one row per --keep-series run, then CPU seconds per stage side by side."""
    stages = sorted({k for r in runs for k in r["result"].card["stage_cpu_seconds"]})
    lines = [
        f"## --keep-series {' vs '.join(dict.fromkeys(r['keep'] for r in runs))} "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, shared with other jobs; {workers} worker processes; {n} "
        "synthetic studies (all scanner styles, distractor series), HL7 export. Produced by "
        "`bench/import_speed.py`; the runs one after the other on the same studies. Wall rates depend on the "
        "load other jobs put on the machine (read just before each run); CPU rates do not.", "",
        "| --keep-series | load | imported | files written | MB written | wall s | studies/min (wall) | CPU s "
        "| studies/min (CPU / workers) |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        res = r["result"]
        files = res.card["files"]
        lines.append(f"| {r['label']} | {r['load']:.1f} | {res.imported} | {files.get('written', files['dicom'])} "
                     f"of {files['dicom']} | {r['written_mb']:.0f} | {r['wall']:.1f} | "
                     f"**{60.0 * res.imported / r['wall']:.1f}** | {r['cpu']:.1f} | "
                     f"**{60.0 * res.imported / (r['cpu'] / workers):.1f}** |")
    lines += ["", "CPU seconds per stage, summed over the workers (per study = / studies):", "",
              "| stage | " + " | ".join(f"{r['label']} CPU s | {r['label']} s/study" for r in runs) + " |",
              "|---|" + "---|---|" * len(runs)]
    for k in stages:
        cells = []
        for r in runs:
            v = r["result"].card["stage_cpu_seconds"].get(k, 0.0)
            cells.append(f"{v:.2f} | {v / max(n, 1):.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", f"Report parsing alone, {_N_PARSE} reports per format (one process): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in parse.items()) + ".", "",
              "Target (issue 18): >= 60 studies/min on 2 cores for 500 studies (the rate per study does not "
              "depend on the count: each study is independent work in the pool).", ""]
    return lines


def insert_section(path: Path, lines: list[str]) -> None:
    """The new section goes first, under the page title; earlier sections are kept below it."""
    text = path.read_text() if path.exists() else "# `cmr dataset import` speed\n"
    title, _, rest = text.partition("\n")
    path.write_text(title + "\n\n" + "\n".join(lines) + "\n" + rest.lstrip("\n"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="an existing `cmr synth` output to import")
    ap.add_argument("--studies", type=int, default=20, help="studies to synthesise when --data is not given")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep-series", default="exam,all,all,exam", help="comma-separated --keep-series options "
                    "to run, one import each on the same studies, in this order (repeats interleaved: the load "
                    "other jobs put on a shared machine drifts)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/import.md"),
                    help="markdown page; the run's section is inserted under its title")
    args = ap.parse_args()
    keeps = [k.strip() for k in args.keep_series.split(",") if k.strip()]
    if not keeps or any(k not in ("exam", "all") for k in keeps):
        ap.error("--keep-series: exam and/or all")
    tmp = Path(tempfile.mkdtemp(prefix="import-bench-"))
    try:
        data = args.data
        if data is None:
            data = tmp / "synth"
            generate_dataset(data, args.studies, 2024, workers=args.workers, progress=False)
        entries = [json.loads(p.read_text())["ris"] for p in sorted((data / "studies").glob("*.json"))]
        studies = studies_only(data, tmp / "studies")
        runs = []
        for i, keep in enumerate(keeps):
            run = import_once(studies, data / "ris" / "reports.hl7", tmp / "out", args.workers, keep)
            if keeps.count(keep) > 1:
                run["label"] = f"{keep} #{keeps[: i + 1].count(keep)}"
            runs.append(run)
            shutil.rmtree(tmp / "out")  # disk: one imported copy at a time
        parse = _parse_times(entries, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = _section(runs, len(entries), args.workers, parse)
    insert_section(args.out, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
