"""Benchmark `cmr dataset import --dicomweb` beside the folder import of the same studies: a private Orthanc
(with its DICOMweb plugin) is loaded by STOW-RS (not timed as import), then both imports run with the same
workers. Reports wall and CPU time of each, Orthanc's own CPU while it served the import, and the fetch stage.

Run: .venv/bin/python -m bench.import_dicomweb [--studies 12] [--workers 2] [--out docs/benchmarks/import-dicomweb.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from bench.import_speed import cpu_seconds, studies_only
from cmr.archive.dicomweb import DicomwebSource
from cmr.archive.importer import ImportRequest, ImportResult, import_archive
from cmr.config import get_settings
from cmr.machine import cpu_name
from cmr.synth.generate import generate_dataset
from ingest_svc.orthanc import OrthancServer


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _records(out: Path) -> dict[str, str]:
    """reports.jsonl by study key: the two imports must write the same records."""
    rows = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines() if line]
    return {r["study_key"]: json.dumps(r, sort_keys=True) for r in rows}


def _timed(req: ImportRequest) -> tuple[ImportResult, float, float]:
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = import_archive(req, get_settings())
    return result, time.perf_counter() - t0, cpu_seconds() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/import-dicomweb.md"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="import-dicomweb-bench-"))
    try:
        generate_dataset(tmp / "synth", args.studies, 2024, workers=args.workers, progress=False)
        studies = studies_only(tmp / "synth", tmp / "studies")
        export = tmp / "synth" / "ris" / "reports.hl7"
        files = {d.name: sorted(f for f in d.resolve().rglob("*") if f.is_file()) for d in sorted(studies.iterdir())}
        n_files = sum(len(v) for v in files.values())
        n_bytes = sum(f.stat().st_size for v in files.values() for f in v)
        with OrthancServer() as pacs:
            t0 = time.perf_counter()
            stow = DICOMwebClient(pacs.dicomweb_url, session=requests.Session())
            for paths in files.values():
                stow.store_instances([pydicom.dcmread(f) for f in paths])
            stow_s = time.perf_counter() - t0
            folders = _timed(ImportRequest(studies, export, tmp / "from_folders", workers=args.workers,
                                           progress=False))
            assert pacs.pid is not None
            orthanc0 = _process_cpu_s(pacs.pid)
            source = DicomwebSource.from_settings(pacs.dicomweb_url, get_settings())
            web = _timed(ImportRequest(None, export, tmp / "from_pacs", workers=args.workers, progress=False,
                                       dicomweb=source))
            orthanc_cpu = _process_cpu_s(pacs.pid) - orthanc0
        same = _records(tmp / "from_folders") == _records(tmp / "from_pacs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.studies
    rows = []
    for name, (result, wall, cpu), extra in (("folders", folders, 0.0), ("DICOMweb (Orthanc)", web, orthanc_cpu)):
        fetch = result.card["stage_seconds"].get("fetch", 0.0)
        rows.append(f"| {name} | {result.imported}/{n} | {wall:.1f} | {60 * result.imported / wall:.1f} | "
                    f"{cpu:.1f} | {extra:.1f} | {fetch / n:.2f} |")
    lines = [
        "# `cmr dataset import --dicomweb` speed", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end); {args.workers} worker processes; {n} synthetic studies (all "
        f"scanner styles, distractor series), {n_files} files, {n_bytes / 1e6:.0f} MB; HL7 export. Orthanc "
        f"(Debian, DICOMweb plugin) on the same machine, loaded by STOW-RS in {stow_s:.1f} s beforehand. "
        f"Produced by `python -m bench.import_dicomweb` on {time.strftime('%Y-%m-%d')}.", "",
        "| source | imported | wall s | studies/min (wall) | importer CPU s | Orthanc CPU s | fetch s/study (wall) |",
        "|---|---|---|---|---|---|---|",
        *rows, "",
        f"Exclusions: folders {len(folders[0].card['exclusions'])}, DICOMweb {len(web[0].card['exclusions'])}; "
        f"both wrote the same records (reports.jsonl): {'yes' if same else 'NO'}.", "",
        "Importer CPU = this process and its workers (user + system); Orthanc's CPU is its own process while it "
        "answered the QIDO-RS listing and the WADO-RS fetches. The fetch stage's wall seconds are per study, "
        "inside a worker, and include waiting for cores that Orthanc and the other worker hold.", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
