"""Embedding studies and texts with a trained model: the shared entry point of `cmr embed`, the evaluation
and the services. Everything returned is L2-normalised float32 numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cmr.dicom import Exam, StudySource, load_study
from cmr.model.clip import CMRCLIP

MAX_TEXT_CHARS = 10_000  # one impression is a few hundred characters; refuse what cannot be one


def exam_batch(exams: Sequence[Exam], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    px = torch.from_numpy(np.stack([e.pixels for e in exams])).to(device)
    mk = torch.from_numpy(np.stack([e.mask for e in exams])).to(device)
    return px, mk


@torch.no_grad()
def embed_exam_arrays(model: CMRCLIP, pixels: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """pixels [N, T, H, W] (uint8 0..255 or float 0..1), mask [N, T] -> [N, D]."""
    out = []
    for s in range(0, len(pixels), batch_size):
        px = torch.from_numpy(np.asarray(pixels[s : s + batch_size]))
        px = px.float().div_(255.0) if px.dtype == torch.uint8 else px.float()
        mk = torch.from_numpy(np.asarray(mask[s : s + batch_size])).bool()
        out.append(model.encode_exam(px.to(model.device), mk.to(model.device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.embed_dim), np.float32)


@torch.no_grad()
def embed_exams(model: CMRCLIP, exams: Sequence[Exam]) -> np.ndarray:
    for e in exams:
        if e.spec != model.spec:
            raise ValueError("exam was built with a different exam spec than the model's; use model.spec")
    px, mk = exam_batch(exams, model.device)
    return model.encode_exam(px, mk).float().cpu().numpy()


def embed_studies(model: CMRCLIP, sources: Sequence[StudySource]) -> np.ndarray:
    """Load each study (raises StudyLoadError for unusable input) and embed it."""
    return embed_exams(model, [load_study(s).to_exam(model.spec) for s in sources])


def check_texts(texts: Sequence[str]) -> list[str]:
    cleaned = [t.strip() for t in texts]
    if not cleaned:
        raise ValueError("no text given")
    for t in cleaned:
        if not t:
            raise ValueError("empty text: give a phrase such as 'dilated LV with reduced ejection fraction'")
        if len(t) > MAX_TEXT_CHARS:
            raise ValueError(f"text of {len(t)} characters is too long (limit {MAX_TEXT_CHARS})")
    return cleaned


@torch.no_grad()
def embed_texts(model: CMRCLIP, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    texts = check_texts(texts)
    out = [model.encode_text(list(texts[s : s + batch_size])).float().cpu().numpy()
           for s in range(0, len(texts), batch_size)]
    return np.concatenate(out)

