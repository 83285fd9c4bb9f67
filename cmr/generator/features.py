"""Exam token features of a data directory, computed once with the frozen CMR-CLIP image encoder.

CMR-TARGET never trains the image encoder, so its input per study is constant: the [1+T, W] token features
of `CMRCLIP.exam_tokens` and their padding mask. They are cached as a float16 memory map next to the exam
cache, one folder per exam spec and CLIP checkpoint version:

    DATA/cache/<spec id>/target-tokens/<clip version>/{tokens.f16, pad.npy, ok.npy, index.json}

index.json (written last) records the study folders, the shape and the version; a cache whose study list or
version differs is rebuilt. Studies the exam loader rejected keep zeros and `ok = False`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cmr.data.cache import build_cache, spec_id
from cmr.data.records import StudyRecord
from cmr.model.clip import CMRCLIP
from cmr.model.image_encoder import ExamEncoder

FORMAT = "cmr-target-tokens/1"


@dataclass
class TokenFeatures:
    root: Path
    records: list[StudyRecord]
    tokens: np.ndarray  # float16 [N, S, W] (memory map)
    pad: np.ndarray  # bool [N, S], True where padded
    ok: np.ndarray  # bool [N]
    clip_version: str


def _safe(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", version)


def _encoder(clip: CMRCLIP | ExamEncoder) -> ExamEncoder:
    return clip.visual if isinstance(clip, CMRCLIP) else clip


def token_cache_dir(data_dir: Path, clip: CMRCLIP | ExamEncoder, clip_version: str) -> Path:
    return Path(data_dir) / "cache" / spec_id(_encoder(clip).spec) / "target-tokens" / _safe(clip_version)


def _open(root: Path, folders: list[str], clip_version: str, shape: tuple[int, int, int]) -> TokenFeatures | None:
    index_path = root / "index.json"
    if not index_path.exists():
        return None
    try:
        index = json.loads(index_path.read_text())
    except ValueError:
        return None
    if (index.get("format") != FORMAT or index.get("folders") != folders or index.get("clip_version") != clip_version
            or tuple(index.get("shape", ())) != shape):
        return None
    tokens = np.memmap(root / "tokens.f16", dtype=np.float16, mode="r", shape=shape)
    return TokenFeatures(root, [], tokens, np.load(root / "pad.npy"), np.load(root / "ok.npy"), clip_version)


@torch.no_grad()
def build_token_features(data_dir: Path, clip: CMRCLIP | ExamEncoder, clip_version: str, *, workers: int = 0,
                         batch_size: int = 32, progress: bool = True) -> TokenFeatures:
    """Token features of every study of `data_dir` (exam cache first, then one pass of the frozen image
    encoder: a CMRCLIP or its `visual` ExamEncoder), cached on disk. `clip_version` names the weights
    (`cmr.model.checkpoint.checkpoint_version`); the caller vouches that it is theirs."""
    data_dir = Path(data_dir)
    encoder = _encoder(clip)
    exams = build_cache(data_dir, encoder.spec, workers=workers, progress=progress)
    folders = [r.folder for r in exams.records]
    names = encoder.measurement_names
    shape = (len(folders), encoder.spec.length + 1 + len(names), encoder.width)
    measured = exams.measurements(names) if names else None
    root = token_cache_dir(data_dir, clip, clip_version)
    cached = _open(root, folders, clip_version, shape)
    if cached is not None:
        cached.records = exams.records
        return cached
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.json").unlink(missing_ok=True)
    ok = exams.ok.copy()
    tokens = np.memmap(root / "tokens.f16", dtype=np.float16, mode="w+", shape=shape)
    pad = np.ones(shape[:2], dtype=bool)
    idx = np.flatnonzero(ok)
    was_training = encoder.training
    encoder.eval()
    dev = encoder.cls.device
    bar = tqdm(total=len(idx), desc=f"exam tokens {data_dir.name}", unit="study", disable=not progress)
    try:
        for s in range(0, len(idx), batch_size):
            b = idx[s : s + batch_size]
            px = torch.from_numpy(np.asarray(exams.pixels[b])).to(dev).float().div_(255.0)
            mk = torch.from_numpy(exams.mask[b]).to(dev)
            ms = None if measured is None else torch.from_numpy(measured[b]).to(dev)
            tok, p = encoder.forward_tokens(px, mk, ms)
            tok = tok.float().masked_fill(p[..., None], 0.0)
            tokens[b] = np.clip(tok.cpu().numpy(), -65000.0, 65000.0).astype(np.float16)
            pad[b] = p.cpu().numpy()
            bar.update(len(b))
    finally:
        bar.close()
        encoder.train(was_training)
    tokens.flush()
    np.save(root / "pad.npy", pad)
    np.save(root / "ok.npy", ok)
    (root / "index.json").write_text(json.dumps({"format": FORMAT, "clip_version": clip_version, "folders": folders,
                                                 "shape": list(shape)}))
    del tokens
    out = _open(root, folders, clip_version, shape)
    assert out is not None
    out.records = exams.records
    return out
