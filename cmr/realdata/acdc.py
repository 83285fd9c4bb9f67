"""ACDC (MICCAI 2017, Dijon; CC BY-NC-SA 4.0): 5 diagnostic groups of real short-axis cine, EVALUATION ONLY.

Layout of an ACDC folder (`<realdata_dir>/acdc/`, or any folder laid out the same way, e.g. a held-out set):

    labels.jsonl        one JSON object per patient: patient, group (DCM/HCM/MINF/NOR/RV), lvef, rvef, volumes
    patientNNN.npz      ed_image, es_image (uint16 [slices, rows, cols], slice 0 basal), ed_mask, es_mask
                        (0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity), es_frame
    to_dicom.py         the data's own converter: each patient as a DICOM short-axis cine study

Nothing that ships may be trained, calibrated, thresholded or tuned on this data (licence and yardstick):
this module only reads it, converts it and derives the evaluation labels with fixed rules.

Conversion: the folder's own `to_dicom.py` is run with this interpreter, one patient at a time (its `--src`
pointed at a scratch folder holding only that patient's npz), rather than reimplemented here. Reason: the
script is the data's definition of how the arrays become DICOM (assumed spacing, 20-phase ED/ES cine, the real
Sunnybrook header with its quirks); a copy would drift from it, and a held-out folder brings its own script.
The result is cached in `<data_dir>/realdata/<folder name>/<patient>/` (DICOM files only), keyed by the
sha256 of the npz (plus the converter and the header template, so a changed converter reconverts), and
committed by writing `<patient>.conversion.json` beside the folder last; an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from cmr.config import Settings, get_settings
from cmr.quant.volumes import MYOCARDIAL_DENSITY_G_PER_ML

ENV_VAR = "CMR_REALDATA_DIR"
ACDC_SUBDIR = "acdc"
LABELS_FILE = "labels.jsonl"
CONVERTER = "to_dicom.py"
# The header template to_dicom.py uses by default (a real Sunnybrook file, CC0), relative to a realdata root.
TEMPLATE_REL = Path("sunnybrook/SCD0000301_SC-HF-I-4_midslice/dicom/101.dcm")
CONVERSION_FORMAT = "cmr-acdc-conversion/1"
CONVERT_TIMEOUT_S = 600.0

GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")
GROUP_NAMES = {"DCM": "dilated cardiomyopathy", "HCM": "hypertrophic cardiomyopathy",
               "MINF": "previous myocardial infarction", "NOR": "normal", "RV": "abnormal (dilated) right ventricle"}
LV_DYSFUNCTION_LVEF = 45.0  # %, a fixed clinical cut-off (not chosen on ACDC)

# The evaluation tasks, their zero-shot key (cmr.findings prompt sets) and how each label is derived.
TASKS = ("lv_dysfunction", "lv_dilation", "lv_hypertrophy", "rv_dilation", "normal")
TASK_ZERO_SHOT_KEY = {"lv_dysfunction": "lv_dysfunction", "lv_dilation": "lv_dilation",
                      "lv_hypertrophy": "lv_hypertrophy", "rv_dilation": "rv_dilation", "normal": "disease:normal"}
TASK_DEFINITIONS = {"lv_dysfunction": f"LVEF < {LV_DYSFUNCTION_LVEF:g} % (labels.jsonl, from the expert masks)",
                    "lv_dilation": "group DCM", "lv_hypertrophy": "group HCM", "rv_dilation": "group RV",
                    "normal": "group NOR"}
LICENCE = ("ACDC (Bernard et al., IEEE TMI 37(11), 2018; University Hospital of Dijon) is licensed CC BY-NC-SA 4.0 "
           "and is used for evaluation only: nothing that ships is trained, calibrated, thresholded or tuned on it.")


class RealDataMissingError(FileNotFoundError):
    """The real-data folder is absent; the message is one line naming the path and the variable to set."""

    def __init__(self, path: Path, what: str = "ACDC folder") -> None:
        self.path = Path(path)
        super().__init__(f"{what} not found: {self.path} (set {ENV_VAR} to the folder that holds {ACDC_SUBDIR}/, "
                         f"default <repo>/../shared/realdata)")

    def __str__(self) -> str:  # FileNotFoundError would print "[Errno None] ..." otherwise
        return str(self.args[0])


class AcdcLayoutError(ValueError):
    """The folder exists but is not laid out like ACDC (labels.jsonl missing or malformed)."""


def realdata_root(settings: Settings | None = None) -> Path:
    return Path((settings or get_settings()).realdata_dir)


def acdc_dir(settings: Settings | None = None) -> Path:
    """`<realdata_dir>/acdc`; RealDataMissingError when it is not a folder."""
    folder = realdata_root(settings) / ACDC_SUBDIR
    if not folder.is_dir():
        raise RealDataMissingError(folder)
    return folder


def derive_labels(group: str, lvef: float | None) -> dict[str, bool]:
    """The five task labels of one patient (fixed rules; `lvef` in %, None counts as not < 45)."""
    return {"lv_dysfunction": lvef is not None and float(lvef) < LV_DYSFUNCTION_LVEF,
            "lv_dilation": group == "DCM", "lv_hypertrophy": group == "HCM", "rv_dilation": group == "RV",
            "normal": group == "NOR"}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(eq=False)
class AcdcPatient:
    """One patient: its labels.jsonl row, and its images and masks (read from the npz on first access)."""

    name: str
    group: str
    labels: dict[str, Any]
    npz: Path

    @property
    def lvef(self) -> float | None:
        v = self.labels.get("lvef")
        return None if v is None else float(v)

    @property
    def task_labels(self) -> dict[str, bool]:
        return derive_labels(self.group, self.lvef)

    @cached_property
    def _arrays(self) -> dict[str, NDArray[Any]]:
        with np.load(self.npz) as d:
            return {k: d[k] for k in d.files}

    @property
    def ed_image(self) -> NDArray[np.uint16]:
        return self._arrays["ed_image"]

    @property
    def es_image(self) -> NDArray[np.uint16]:
        return self._arrays["es_image"]

    @property
    def ed_mask(self) -> NDArray[np.uint8]:
        return self._arrays["ed_mask"]

    @property
    def es_mask(self) -> NDArray[np.uint8]:
        return self._arrays["es_mask"]

    @property
    def es_frame(self) -> int | None:
        v = self._arrays.get("es_frame")
        return None if v is None else int(np.asarray(v).ravel()[0])

    @cached_property
    def sha256(self) -> str:
        return file_sha256(self.npz)

    @property
    def expert_measurements(self) -> dict[str, float | None]:
        """The numbers the expert masks give (labels.jsonl: voxel counts under the assumed spacing), named as
        the segmenter's `Measurements.values()`: what a perfect segmenter would measure. Indexed values stay
        None, as they do for the segmenter (the converted headers carry no height or weight)."""
        lab = self.labels

        def num(key: str) -> float | None:
            v = lab.get(key)
            return None if v is None else float(v)

        lvef, rvef = num("lvef"), num("rvef")
        lvedv, rvedv, myo = num("lvedv_ml_assumed"), num("rvedv_ml_assumed"), num("myo_ml_assumed")
        lvesv = None if lvedv is None or lvef is None else lvedv * (1.0 - lvef / 100.0)
        rvesv = None if rvedv is None or rvef is None else rvedv * (1.0 - rvef / 100.0)
        return {"lvef_pct": lvef, "lvedv_ml": lvedv, "lvesv_ml": lvesv,
                "lvsv_ml": None if lvedv is None or lvesv is None else lvedv - lvesv,
                "lv_mass_g": None if myo is None else myo * MYOCARDIAL_DENSITY_G_PER_ML,
                "rvef_pct": rvef, "rvedv_ml": rvedv, "rvesv_ml": rvesv}


def list_patients(folder: Path | None = None, settings: Settings | None = None) -> list[AcdcPatient]:
    """Every patient of labels.jsonl (sorted by name), with `<folder>/<patient>.npz` as its data file (which
    may be absent: conversion reports that patient, it does not stop the run)."""
    folder = Path(folder) if folder is not None else acdc_dir(settings)
    if not folder.is_dir():
        raise RealDataMissingError(folder)
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise AcdcLayoutError(f"{labels} is missing: not an ACDC-style folder (labels.jsonl + patientNNN.npz)")
    out: dict[str, AcdcPatient] = {}
    for i, line in enumerate(labels.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, group = str(row["patient"]), str(row["group"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AcdcLayoutError(f"{labels}:{i}: not a patient row ({exc})") from exc
        if name in out:
            raise AcdcLayoutError(f"{labels}:{i}: patient {name} listed twice")
        out[name] = AcdcPatient(name=name, group=group, labels=row, npz=folder / f"{name}.npz")
    return [out[k] for k in sorted(out)]


def select_balanced(patients: Sequence[AcdcPatient], limit: int | None) -> list[AcdcPatient]:
    """The first `limit` patients taken round-robin over the groups (sorted), so a small subset holds every
    group: limit 10 of ACDC = 2 per group. None or >= len: all, in name order."""
    if limit is None or limit >= len(patients):
        return list(patients)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    by_group: dict[str, list[AcdcPatient]] = {}
    for p in patients:
        by_group.setdefault(p.group, []).append(p)
    queues = [list(by_group[g]) for g in sorted(by_group)]
    picked: list[AcdcPatient] = []
    while len(picked) < limit:
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return sorted(picked, key=lambda p: p.name)


# --- conversion to DICOM -------------------------------------------------------------------------------------
@dataclass
class ConvertedStudy:
    patient: AcdcPatient
    path: Path | None  # the DICOM study folder, None when conversion failed
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    n_files: int = 0


@dataclass
class Converter:
    """How a folder's patients become DICOM: its to_dicom.py, the header template, the cache folder."""

    script: Path
    template: Path
    cache_root: Path
    key_parts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_folder(cls, folder: Path, settings: Settings | None = None) -> Converter:
        settings = settings or get_settings()
        folder = Path(folder)
        script = folder / CONVERTER
        if not script.is_file():
            raise AcdcLayoutError(f"{script} is missing: the folder's own converter writes the DICOM studies")
        candidates = [folder.parent / TEMPLATE_REL, realdata_root(settings) / TEMPLATE_REL,
                      Path(__file__).resolve().parents[2] / "tests" / "data" / TEMPLATE_REL]
        template = next((c for c in candidates if c.is_file()), None)
        if template is None:
            raise AcdcLayoutError(f"no DICOM header template for {CONVERTER} ({TEMPLATE_REL} under "
                                  f"{folder.parent} or {realdata_root(settings)})")
        cache_root = Path(settings.data_dir) / "realdata" / folder.name
        return cls(script=script, template=template, cache_root=cache_root,
                   key_parts={"converter_sha256": file_sha256(script), "template_sha256": file_sha256(template)})

    def study_dir(self, patient: AcdcPatient) -> Path:
        return self.cache_root / patient.name

    def marker(self, patient: AcdcPatient) -> Path:
        return self.cache_root / f"{patient.name}.conversion.json"

    def key(self, patient: AcdcPatient) -> dict[str, str]:
        return {"npz_sha256": patient.sha256, **self.key_parts}

    def cached(self, patient: AcdcPatient) -> int | None:
        """Number of files of a valid cached conversion, else None."""
        try:
            m = json.loads(self.marker(patient).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        folder = self.study_dir(patient)
        if m.get("format") != CONVERSION_FORMAT or m.get("key") != self.key(patient) or not folder.is_dir():
            return None
        n = sum(1 for _ in folder.glob("*.dcm"))
        return n if n and n == m.get("n_files") else None

    def convert(self, patient: AcdcPatient) -> ConvertedStudy:
        t0 = time.perf_counter()
        if not patient.npz.is_file():
            return ConvertedStudy(patient, None, error=f"{patient.npz} is missing")
        n = self.cached(patient)
        if n is not None:
            return ConvertedStudy(patient, self.study_dir(patient), cached=True, n_files=n,
                                  seconds=time.perf_counter() - t0)
        self.cache_root.mkdir(parents=True, exist_ok=True)
        self.marker(patient).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{patient.name}-", dir=self.cache_root) as tmp:
            src, out = Path(tmp) / "src", Path(tmp) / "out"
            src.mkdir()
            link = src / patient.npz.name
            try:
                link.symlink_to(patient.npz.resolve())
            except OSError:
                shutil.copy2(patient.npz, link)
            cmd = [sys.executable, str(self.script), str(out), "--src", str(src), "--template", str(self.template)]
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # pydicom warns about the real header's UIDs
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S, env=env)
            except subprocess.TimeoutExpired:
                return ConvertedStudy(patient, None, error=f"{CONVERTER} took over {CONVERT_TIMEOUT_S:.0f} s",
                                      seconds=time.perf_counter() - t0)
            written = out / patient.npz.stem
            files = sorted(written.glob("*.dcm")) if written.is_dir() else []
            if proc.returncode != 0 or not files:
                tail = (proc.stderr or proc.stdout).strip().splitlines()
                why = tail[-1] if tail else f"exit code {proc.returncode}, no files written"
                return ConvertedStudy(patient, None, error=f"{CONVERTER} failed: {why}",
                                      seconds=time.perf_counter() - t0)
            dest = self.study_dir(patient)
            if dest.exists():
                shutil.rmtree(dest)  # a stale or partial conversion (its marker was not valid)
            written.rename(dest)
        marker = {"format": CONVERSION_FORMAT, "patient": patient.name, "key": self.key(patient),
                  "n_files": len(files), "npz": str(patient.npz), "converter": str(self.script),
                  "template": str(self.template), "seconds": round(time.perf_counter() - t0, 2)}
        tmp_marker = self.marker(patient).with_suffix(".tmp")
        tmp_marker.write_text(json.dumps(marker, indent=1) + "\n")
        tmp_marker.replace(self.marker(patient))
        return ConvertedStudy(patient, dest, n_files=len(files), seconds=time.perf_counter() - t0)


def convert_patients(patients: Iterable[AcdcPatient], folder: Path, settings: Settings | None = None,
                     progress: bool = True) -> list[ConvertedStudy]:
    """Each patient as a cached DICOM study (see the module docstring); failures are returned, not raised."""
    patients = list(patients)
    conv = Converter.for_folder(folder, settings)
    out = []
    bar = tqdm(patients, desc="convert ACDC to DICOM", unit="patient", disable=not progress)
    for p in bar:
        bar.set_postfix_str(p.name)
        out.append(conv.convert(p))
    return out


__all__ = [
    "ACDC_SUBDIR", "AcdcLayoutError", "AcdcPatient", "ConvertedStudy", "Converter", "ENV_VAR", "GROUPS", "LICENCE",
    "LV_DYSFUNCTION_LVEF", "RealDataMissingError", "TASKS", "TASK_DEFINITIONS", "TASK_ZERO_SHOT_KEY", "acdc_dir",
    "convert_patients", "derive_labels", "list_patients", "realdata_root", "select_balanced",
]
