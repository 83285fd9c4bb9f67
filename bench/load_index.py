"""The index the load benchmark searches, built through the services: real synthetic CMR studies encoded by
EncoderService (their exam tensors from the data set's cache when it has one, else the DICOM uploaded) and
upserted through SearchService, then padded with extra vectors so the HNSW graph is not trivially small.

Padding points are noisy copies of the real embeddings (image and report vectors, cosine about 0.9 to their
source, renormalised), so they fall in the same clusters as real exams and make a search walk a realistically
crowded neighbourhood; they carry their source's payload under a new random UID."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmr.data.records import labels_of
from cmr.rpc.messages import from_vector, to_parts, to_vector
from cmr.v1 import common_pb2, search_pb2
from encoder_svc.client import EncoderClient
from search_svc.client import SearchClient

BATCH = 128          # exams per Upsert (the service takes up to 512; with an attention model's parts one is ~17 KB)
NOISE_PER_DIM = 0.03  # padding noise: |noise| ~ 0.03 * sqrt(256) ~ 0.5 -> cosine ~ 0.9 to the source


@dataclass
class IndexInfo:
    real: int               # studies encoded by the encoder service
    padded: int             # extra noisy copies
    total: int              # exams in the index after the build
    study_keys: list[str]   # keys of the real studies (what the simulated users open)
    texts: list[str]        # query phrases: distinct impression sentences of the real studies
    source: str             # where the real studies came from


def _vendor_field(scanner: str) -> tuple[str, float]:
    """'siemens_skyra_3T' -> ('siemens', 3.0)."""
    m = re.search(r"_(\d+(?:\.\d+)?)T$", scanner)
    return scanner.split("_", 1)[0], float(m.group(1)) if m else 0.0


def sentences(impressions: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for text in impressions:
        for s in re.split(r"(?<=\.)\s+", text.strip()):
            if len(s) > 8:
                seen.setdefault(s, None)
    return list(seen)


def real_upserts(encoder: EncoderClient, dataset: Path, n: int,
                 progress: Callable[[int], None] | None = None) -> list[search_pb2.ExamUpsert]:
    """n studies of a `cmr synth` data set as upserts (encoded through the encoder service)."""
    from cmr.data import ExamCache, read_records
    from cmr.dicom.exam import ExamSpec

    info = encoder.model_info()
    version = info.model.version
    records = read_records(dataset)[:n]
    spec = ExamSpec.from_dict(json.loads(info.exam_spec_json))
    cached = (dataset / "cache" / info.spec_id / "done.npy").exists()
    cache = ExamCache.open(dataset, spec) if cached else None
    texts = encoder.encode_texts([r.impression for r in records])
    out = []
    for i, r in enumerate(records):
        vendor, field = _vendor_field(r.scanner)
        if cache is not None and cache.done[i]:
            emb, parts = encoder.encode_exam_parts(cache.pixels[i], cache.mask[i], spec_id=info.spec_id)
            uid, date, views = r.study_instance_uid, "", []
        else:  # no cache: the DICOM files are uploaded and decoded by the service
            enc = encoder.encode_study(dataset / r.folder)
            emb, uid, date, views = enc.embedding, enc.study.study_instance_uid, enc.study.study_date, list(enc.study.slots_present)
            vendor, field, parts = enc.study.manufacturer or vendor, enc.study.field_strength_t or field, enc.parts
        out.append(search_pb2.ExamUpsert(
            study_instance_uid=uid, image_embedding=to_vector(emb), report_embedding=to_vector(texts[i]),
            impression=r.impression, study_date=date, vendor=vendor, field_strength_t=field, views=views,
            labels=labels_of({"labels": r.labels}), model_version=version, parts=parts))
        if progress:
            progress(i + 1)
    return out


def _noisy(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w = v + rng.normal(0.0, NOISE_PER_DIM, v.shape).astype(np.float32)
    return w / np.linalg.norm(w)


def _noisy_parts(src: search_pb2.ExamUpsert,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[common_pb2.EmbeddingPart]]:
    """A noisy copy of an exam vector with parts that still sum to it (the noise joins the last part), so a
    padded index stores as much per point as a real one."""
    v = from_vector(src.image_embedding)
    w = v + rng.normal(0.0, NOISE_PER_DIM, v.shape).astype(np.float32)
    norm = float(np.linalg.norm(w))
    parts = [from_vector(p.vector) / norm for p in src.parts]
    if parts:
        parts[-1] = parts[-1] + (w - v) / norm
    return w / norm, to_parts([p.name for p in src.parts], [p.kind for p in src.parts], parts)


def padding(real: Sequence[search_pb2.ExamUpsert], n: int, seed: int = 0) -> list[search_pb2.ExamUpsert]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = real[int(rng.integers(len(real)))]
        e = search_pb2.ExamUpsert()
        e.CopyFrom(src)
        e.study_instance_uid = f"2.25.{int(rng.integers(1 << 62))}{i}"  # a fresh UID: a new index entry
        image, parts = _noisy_parts(src, rng)
        e.image_embedding.CopyFrom(to_vector(image))
        del e.parts[:]
        e.parts.extend(parts)
        e.report_embedding.CopyFrom(to_vector(_noisy(from_vector(src.report_embedding), rng)))
        out.append(e)
    return out


def build_index(encoder: EncoderClient, search: SearchClient, dataset: Path, n_real: int, total: int, *,
                progress: Callable[[int, int], None] | None = None) -> IndexInfo:
    """Encode and upsert n_real studies, then pad to `total` exams; progress(done, total) as it goes."""
    real = real_upserts(encoder, dataset, n_real, (lambda k: progress(k, total)) if progress else None)
    keys: list[str] = []
    for s in range(0, len(real), BATCH):
        keys += list(search.upsert(real[s:s + BATCH]).study_keys)
    pad = max(0, total - len(real))
    for s in range(0, pad, BATCH):
        search.upsert(padding(real, min(BATCH, pad - s), seed=s))
        if progress:
            progress(len(real) + min(s + BATCH, pad), total)
    return IndexInfo(len(real), pad, int(search.stats().exams), keys, sentences([e.impression for e in real]),
                     str(dataset))
