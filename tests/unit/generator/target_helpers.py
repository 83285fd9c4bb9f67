"""Helpers of the CMR-TARGET unit tests: a small vocabulary from written impressions and randomly initialised
tiny decoders (no data set, no CLIP model). Imported by the tests (a unique module name, unlike conftest)."""

from __future__ import annotations

import torch

from cmr.generator.config import DecoderConfig, TargetConfig
from cmr.generator.decoder import ReportDecoder
from cmr.generator.model import TargetGenerator
from cmr.generator.vocab import ReportVocab

IMPRESSIONS = [
    "1. Mildly dilated LV (LVEDVi 110 mL/m2) with moderately impaired systolic function (LVEF 38%).\n"
    "2. Subendocardial LGE in the LAD territory.\n3. No pericardial effusion.",
    "1. Normal cardiac MRI study.\n2. The right ventricle is not dilated.",
    "Asymmetric septal hypertrophy measuring 21.7 mm, septal:lateral ratio 2.3. Dilated left atrium. "
    "Findings are in keeping with hypertrophic cardiomyopathy.",
    "1. Normal biventricular size and function (LVEF 61%).\n2. No late gadolinium enhancement.",
]
MEMORY_WIDTH = 16
MEMORY_TOKENS = 6


def make_generator(vocab: ReportVocab, max_tokens: int = 8, max_sentences: int = 4, seed: int = 0) -> TargetGenerator:
    cfg = TargetConfig(clip="shipped", model=DecoderConfig(layers=2, width=32, heads=4, dropout=0.0,
                                                           max_tokens=max_tokens, max_sentences=max_sentences))
    torch.manual_seed(seed)
    decoder = ReportDecoder(cfg.model, len(vocab), MEMORY_WIDTH)
    return TargetGenerator(decoder, vocab, cfg, "cmr-clip-test@000000000000")


def exam(seed: int = 0, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random exam tokens [S, W] (or [B, S, W]) and a padding mask with one missing frame."""
    g = torch.Generator().manual_seed(seed)
    shape = (MEMORY_TOKENS, MEMORY_WIDTH) if batch is None else (batch, MEMORY_TOKENS, MEMORY_WIDTH)
    tokens = torch.randn(*shape, generator=g)
    pad = torch.zeros(shape[:-1], dtype=torch.bool)
    pad[..., 3] = True
    return tokens, pad
