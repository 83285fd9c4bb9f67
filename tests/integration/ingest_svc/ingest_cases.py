"""The ingestion tests' studies: cheap copies of generated studies (cmr/synth/study_copies.py, shared with
`cmr bench crash`), a real study with a new identity, the bad inputs, and a worker process's environment."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from cmr.config import Settings
from cmr.synth.study_copies import (  # noqa: F401 - re-exported for the tests
    SMALL_SERIES,
    Variant,
    labels_of,
    make_variant,
    make_variants,
    patient_identity,
    single_frame_records,
    synth_records,
)


def make_real_variant(src: Path, dest: Path, index: int, *, height_m: float, weight_kg: float,
                      impression: str = "Dilated left ventricle.") -> Variant:
    """Every file of a real study (a Sunnybrook stack) as a new study: new UIDs and patient identity, and the
    patient's height and weight in the headers (which de-identification removes)."""
    uid = generate_uid(entropy_srcs=["ingest-real", str(index), str(dest)])
    name, pid = patient_identity(index)
    dest.mkdir(parents=True, exist_ok=True)
    series: dict[str, str] = {}
    for f in sorted(p for p in src.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = uid
        ds.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID),
                                                 generate_uid(entropy_srcs=[uid, str(ds.SeriesInstanceUID)]))
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[uid, f.name])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = name
        ds.PatientID = pid
        ds.PatientSize = f"{height_m:.2f}"
        ds.PatientWeight = f"{weight_kg:.1f}"
        ds.save_as(dest / f.name, enforce_file_format=True)
    text = f"{impression} (patient {name.split('^')[1]} {name.split('^')[0]}, MRN {pid})"
    return Variant(dest, uid, name, pid, text, ())


def truncated_study(good: Path, dest: Path) -> Path:
    """Every file cut in half (the headers parse, the pixel data ends early)."""
    dest.mkdir(parents=True)
    for f in sorted(good.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            target = dest / f.relative_to(good)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[: len(data) // 2])
    return dest


def not_dicom_study(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "notes.txt").write_text("this is not an image\n")
    (dest / "IM0001.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    return dest


def worker_env(s: Settings) -> dict[str, str]:
    """The environment of a `python -m ingest_svc` worker (and of `cmr ingest`) for the test settings `s`: this
    process's, without its CMR_ variables, plus the test's broker, services, topics and group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({
        "CMR_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "CMR_ENCODER_URL": s.encoder_url, "CMR_SEARCH_URL": s.search_url,
        "CMR_STUDY_KEY_SECRET": s.study_key_secret, "CMR_STUDY_ROOTS": json.dumps([str(r) for r in s.study_roots]),
        "CMR_KAFKA_TOPIC_NEW": s.kafka_topic_new, "CMR_KAFKA_TOPIC_EMBEDDED": s.kafka_topic_embedded,
        "CMR_KAFKA_TOPIC_DEAD_LETTER": s.kafka_topic_dead_letter, "CMR_KAFKA_GROUP_ID": s.kafka_group_id,
        "CMR_INGEST_METRICS_PORT": "0", "CMR_KAFKA_MAX_POLL_INTERVAL_MS": "10000",
        "CMR_KAFKA_SESSION_TIMEOUT_MS": "6000", "CMR_DATA_DIR": str(s.data_dir),
        "CMR_GRPC_MAX_MESSAGE_BYTES": str(s.grpc_max_message_bytes), "CMR_TORCH_THREADS": "1"})
    return env


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    """Poll `cond` until it holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
