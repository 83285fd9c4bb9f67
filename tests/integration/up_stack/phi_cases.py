"""The PHI leak test's planted identities and the places a leak would show: studies whose headers carry
recognisable fake patient names, ids and birth dates (also in free-text fields), and a search for any of them in
bytes gathered from the index, the Kafka topics, the audit trail, the service logs and the UI."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


@dataclass(frozen=True)
class PlantedStudy:
    path: Path
    uid: str
    needles: tuple[str, ...]  # every spelling a leak could take


def plant(src: Path, dest: Path, k: int) -> PlantedStudy:
    """A copy of study `src` as a new study of patient 'Zorblatt^Quenby<k>', id PHI-LEAK-<k>, born 1913-04-1<k>."""
    last, first, pid, birth = "Zorblatt", f"Quenby{k}", f"PHI-LEAK-{k}", f"1913041{k}"
    uid = generate_uid(entropy_srcs=["phi-leak", str(k)])
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        out = dest / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds = pydicom.dcmread(f)
        except pydicom.errors.InvalidDicomError:
            shutil.copy(f, out)  # sidecars (the generator's json) are not headers
            continue
        ds.StudyInstanceUID = uid
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid, str(f.parent.name)])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[uid, str(f)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = f"{last}^{first}"
        ds.PatientID = pid
        ds.PatientBirthDate = birth
        ds.OtherPatientIDs = f"{pid}-MRN"
        ds.StudyDescription = f"CMR {last} {first}"
        ds.ImageComments = f"patient {first} {last} id {pid} born {birth}"
        ds.save_as(out, enforce_file_format=True)
    birth_iso = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"
    return PlantedStudy(dest, uid, (last, first, pid, birth, birth_iso))


def leaks(blob: bytes, needles: tuple[str, ...]) -> list[str]:
    low = blob.lower()
    return [n for n in needles if n.lower().encode() in low]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}
