"""Cheap distinct studies for ingestion tests and benchmarks: a few series of a generated study copied with a
new StudyInstanceUID (and series/instance/frame-of-reference UIDs) and a new patient identity, so that 150
studies cost seconds to make and about a third of a second each to ingest. The patient's name and ID are
distinctive (and repeated in the report and a free-text header) so that a leak is found by a substring search."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

SMALL_SERIES = ("cine_lax", "lge_lax")  # one single-slice long-axis cine (25 phases) and one LGE image


@dataclass(frozen=True)
class Variant:
    path: Path
    uid: str
    patient_name: str
    patient_id: str
    impression: str
    labels: tuple[str, ...]


@functools.lru_cache(maxsize=64)
def _series_dirs(study: Path) -> dict[str, list[Path]]:
    """{'cine_lax' | 'cine_sax' | 'lge_lax' | 'lge_sax' | 'localizer': series folders} of a synthetic study.
    Cine is told by several distinct trigger times (some scanner styles omit CardiacNumberOfImages)."""
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in study.iterdir() if p.is_dir()):
        files = sorted(d.iterdir())
        heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        triggers = {str(h.get("TriggerTime", "")) for h in heads}
        positions = {tuple(h.get("ImagePositionPatient", ()) or ()) for h in heads}
        desc = str(heads[0].get("SeriesDescription", "")).lower()
        if len(triggers) > 1:
            kind = "cine_lax" if len(positions) == 1 else "cine_sax"
        elif any(w in desc for w in ("loc", "scout", "survey", "3-plane", "tri")):
            kind = "localizer"
        else:
            kind = "lge_lax" if len(files) == 1 else "lge_sax"
        out.setdefault(kind, []).append(d)
    return out


def patient_identity(index: int) -> tuple[str, str]:
    # Distinctive, so a leak is found by a plain substring search.
    h = hashlib.sha1(str(index).encode()).hexdigest()
    return f"Zorblatt{h[:4]}^Quenby{h[4:8]}", f"PHI{h[8:16].upper()}"


def make_variant(src: Path, dest: Path, index: int, *, kinds: tuple[str, ...] = SMALL_SERIES,
                 impression: str = "", labels: tuple[str, ...] = ()) -> Variant:
    """Copy the `kinds` series of synthetic study `src` into `dest` as a new study."""
    groups = _series_dirs(src)
    uid = generate_uid(entropy_srcs=["ingest-test", str(index), str(dest)])
    name, pid = patient_identity(index)
    dest.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        for series_dir in groups.get(kind, [])[:1]:
            series_uid = generate_uid(entropy_srcs=[uid, series_dir.name])
            out_dir = dest / series_dir.name
            out_dir.mkdir(exist_ok=True)
            for f in sorted(series_dir.iterdir()):
                ds = pydicom.dcmread(f)
                ds.StudyInstanceUID = uid
                ds.SeriesInstanceUID = series_uid
                ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, f.name])
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[uid, "for"])
                ds.PatientName = name
                ds.PatientID = pid
                ds.OtherPatientIDs = f"{pid}-MRN"
                ds.ImageComments = f"patient {name.replace('^', ' ')} id {pid}"  # free text that must go
                ds.save_as(out_dir / f.name, enforce_file_format=True)
    text = impression or "Normal study."
    # The report mentions the patient too: the worker must clean it before the index sees it.
    text = f"{text} (patient {name.split('^')[1]} {name.split('^')[0]}, MRN {pid})"
    return Variant(dest, uid, name, pid, text, labels)


def synth_records(synth_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (synth_dir / "reports.jsonl").read_text().splitlines() if line.strip()]


def labels_of(rec: dict[str, object]) -> tuple[str, ...]:
    lab = rec["labels"]
    assert isinstance(lab, dict)
    keys = ("lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation", "lv_hypertrophy", "lge",
            "aortic_dilation")
    return tuple(k for k in keys if lab.get(k)) + (f"disease:{lab['disease']}",)


def single_frame_records(synth_dir: Path) -> list[dict[str, object]]:
    """Records of the studies written one image per file (the enhanced multi-frame scanner style keeps a whole
    series in one file, which cannot be cut down to a small study by copying folders)."""
    folders = _single_frame_folders(synth_dir)
    return [r for r in synth_records(synth_dir) if str(r["folder"]) in folders]


@functools.lru_cache(maxsize=8)
def _single_frame_folders(synth_dir: Path) -> frozenset[str]:
    # Reading every study's headers takes ~10 s on a loaded 2-core machine; a generated data set does not
    # change, and every make_variants() call of a test session asks again.
    return frozenset(str(r["folder"]) for r in synth_records(synth_dir)
                     if "cine_lax" in _series_dirs(synth_dir / str(r["folder"])))


def make_variants(synth_dir: Path, out: Path, n: int, start: int = 0) -> list[Variant]:
    records = single_frame_records(synth_dir)
    variants = []
    for i in range(start, start + n):
        rec = records[i % len(records)]
        src = synth_dir / str(rec["folder"])
        variants.append(make_variant(src, out / f"study_{i:04d}", i, impression=str(rec["impression"]),
                                     labels=labels_of(rec)))
    return variants


__all__ = ["SMALL_SERIES", "Variant", "labels_of", "make_variant", "make_variants", "patient_identity",
           "single_frame_records", "synth_records"]
