"""Run the CMR-CLIP evaluation: embed test sets with a model, then zero-shot, few-shot, retrieval and
robustness, as the results dict `cmr.eval.report` renders (schema in its docstring).

Zero-shot uses the *held-out* prompt bank (phrasings never seen in training impressions): for each finding a
positive and a negative prompt ensemble, score = cos(exam, positive) - cos(exam, negative).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from cmr.data.cache import ExamCache, build_cache
from cmr.data.records import StudyRecord, label_matrix, labels_for_key
from cmr.eval import metrics as M
from cmr.labels import FINDINGS, PAPER_FINDINGS
from cmr.model.clip import CMRCLIP
from cmr.model.inference import embed_exam_arrays, embed_texts
from cmr.findings.prompts import prompt_sets

SHOTS = (1, 2, 4, 8, 16, 32)
Numbers = Literal["reference", "measured"]
PHRASING = "heldout"  # zero-shot prompts from the phrase bank never used in training impressions


@dataclass
class TestSet:
    name: str
    records: list[StudyRecord]
    pixels: np.ndarray  # uint8 [N, T, H, W] (memmap rows of usable studies)
    mask: np.ndarray
    measurements: np.ndarray | None = None  # [N, M] measurement-token values of the model (NaN = not measured)

    @classmethod
    def load(cls, data_dir: Path, model: CMRCLIP, name: str | None = None, progress: bool = True,
             numbers: Numbers = "reference") -> TestSet:
        """`numbers` for a model with measurement tokens: "reference" = the records' numbers (a synthetic study's
        perfect segmentation), "measured" = what the shipped segmenter measures on each study, as served."""
        cache: ExamCache = build_cache(data_dir, model.spec, progress=progress)
        ok = np.flatnonzero(cache.ok)
        recs = [cache.records[i] for i in ok]
        if name is None:
            held = {r.held_out_style for r in recs}
            name = "heldout-style" if held == {True} else "in-style" if held == {False} else Path(data_dir).name
        meas = None
        if model.measurement_names and numbers == "measured":
            from cmr.eval.measured import measure_studies
            from cmr.model.measurements import measurement_matrix
            from cmr.quant.segmenter import load_segmenter

            got = measure_studies({r.folder: Path(data_dir) / r.folder for r in recs}, load_segmenter(), progress,
                                  desc=f"measure {Path(data_dir).name}")
            meas = measurement_matrix([got[r.folder][0].values() for r in recs], model.measurement_names)
        elif model.measurement_names:
            meas = cache.measurements(model.measurement_names)[ok]
        return cls(name, recs, np.asarray(cache.pixels[ok]), cache.mask[ok], meas)

    @classmethod
    def concat(cls, name: str, sets: Sequence[TestSet]) -> TestSet:
        meas = (None if any(s.measurements is None for s in sets)
                else np.concatenate([s.measurements for s in sets]))  # type: ignore[misc]
        return cls(name, [r for s in sets for r in s.records], np.concatenate([s.pixels for s in sets]),
                   np.concatenate([s.mask for s in sets]), meas)

    def embed(self, model: CMRCLIP) -> np.ndarray:
        """Embeddings of the whole set, each exam with its measurements."""
        return embed_exam_arrays(model, self.pixels, self.mask, measurements=self.measurements)


def zero_shot(model: CMRCLIP, image_emb: np.ndarray, records: list[StudyRecord], n_boot: int = 1000,
              phrasing: str = PHRASING) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ps in prompt_sets(phrasing):
        key = ps.key
        y = labels_for_key(key, records)
        s = M.zero_shot_scores(image_emb, embed_texts(model, list(ps.positives)), embed_texts(model, list(ps.negatives)))
        auc = M.auroc(y, s)
        ci = M.bootstrap_auroc_ci(y, s, n_boot=n_boot) if auc is not None else None
        out[key] = {"auroc": auc, "ci": list(ci) if ci else None, "n_pos": int(y.sum())}
    return out


def few_shot_all(image_emb: np.ndarray, records: list[StudyRecord], draws: int, seed: int) -> dict[str, Any]:
    labels = label_matrix(records, FINDINGS)
    return {f: {str(k): v for k, v in M.few_shot(image_emb, labels[:, j], SHOTS, draws, seed).items()}
            for j, f in enumerate(FINDINGS)}


def retrieval_both(image_emb: np.ndarray, text_emb: np.ndarray, records: list[StudyRecord]) -> dict[str, Any]:
    labels = label_matrix(records, PAPER_FINDINGS)  # "same findings" = same vector over the paper's seven
    return {
        "image_to_text": {**M.retrieval(image_emb, text_emb), **M.clinical_match(image_emb, text_emb, labels)},
        "text_to_image": {**M.retrieval(text_emb, image_emb), **M.clinical_match(text_emb, image_emb, labels)},
    }


def robustness(model: CMRCLIP, ts: TestSet, n: int = 200, seed: int = 0) -> dict[str, Any]:
    """Mean cosine of each exam's embedding to itself after perturbation."""
    rng = np.random.default_rng(seed)
    idx = np.arange(min(n, len(ts.records)))
    px, mk = ts.pixels[idx], ts.mask[idx]
    meas = None if ts.measurements is None else ts.measurements[idx]
    base = embed_exam_arrays(model, px, mk, measurements=meas)
    slots = model.spec.slots
    bounds = np.cumsum([0] + [s.length for s in slots])

    def cos(p: np.ndarray, m: np.ndarray) -> float:
        return float(M.cosine_rows(base, embed_exam_arrays(model, p, m, measurements=meas)).mean())

    shuffled = px.copy()
    for i in range(len(idx)):  # shuffle frame order inside each slot (time and slice order lost)
        for a, b in zip(bounds[:-1], bounds[1:]):
            shuffled[i, a:b] = shuffled[i, a + rng.permutation(b - a)]
    dropped = mk & (rng.random(mk.shape) >= 0.25)
    dropped[~dropped.any(1)] = mk[~dropped.any(1)]
    out: dict[str, Any] = {"shuffle_frames": cos(shuffled, mk), "drop_25pct_frames": cos(px, dropped), "drop_view": {}}
    for k, s in enumerate(slots):
        m = mk.copy()
        m[:, bounds[k] : bounds[k + 1]] = False
        keep = m.any(1)
        emb = embed_exam_arrays(model, px[keep], m[keep], measurements=None if meas is None else meas[keep])
        out["drop_view"][s.name] = float(M.cosine_rows(base[keep], emb).mean())
    out["drop_view_mean"] = float(np.mean(list(out["drop_view"].values())))
    return out


def evaluate_model(model: CMRCLIP, label: str, sets: Sequence[TestSet], *, draws: int = 20, seed: int = 0,
                   with_robustness: bool = True, progress: bool = True) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    model.eval()
    for ts in tqdm(sets, desc=f"evaluate {label}", unit="set", disable=not progress):
        img = ts.embed(model)
        txt = embed_texts(model, [r.impression for r in ts.records])
        entry: dict[str, Any] = {"model": label, "test_set": ts.name, "n_studies": len(ts.records),
                                 "zero_shot": zero_shot(model, img, ts.records),
                                 "retrieval": retrieval_both(img, txt, ts.records),
                                 # Diagnostic: prompts in the training phrasing. The gap to "zero_shot" is what
                                 # unseen wording costs (text-side generalisation), not what the images hold.
                                 "zero_shot_seen_phrasing": zero_shot(model, img, ts.records, n_boot=200,
                                                                      phrasing="train")}
        is_pool = ts.name.startswith("pool")  # the union of the test sets: retrieval only adds something there
        if not is_pool:
            entry["few_shot"] = few_shot_all(img, ts.records, draws, seed)
        if with_robustness and not is_pool:
            entry["robustness"] = robustness(model, ts, seed=seed)
        entries[f"{label} / {ts.name}"] = entry
    return entries


@torch.no_grad()  # scoped: a library call must not switch autograd off for the rest of the process
def evaluate_supervised(model: Any, label: str, sets: Sequence[TestSet], n_boot: int = 1000) -> dict[str, Any]:
    """The supervised ceiling: AUROC of its own label predictions, in the zero-shot slots of the table."""
    entries: dict[str, Any] = {}
    for ts in sets:
        probs = model.predict(ts.pixels, ts.mask)
        zs: dict[str, Any] = {}
        for key in (ps.key for ps in prompt_sets()):
            y = labels_for_key(key, ts.records)
            auc = M.auroc(y, probs[key])
            ci = M.bootstrap_auroc_ci(y, probs[key], n_boot=n_boot) if auc is not None else None
            zs[key] = {"auroc": auc, "ci": list(ci) if ci else None, "n_pos": int(y.sum())}
        entries[f"{label} / {ts.name}"] = {"model": label, "test_set": ts.name, "n_studies": len(ts.records),
                                           "zero_shot": zs}
    return entries


def run_evaluation(models: dict[str, CMRCLIP], data_dirs: Sequence[Path], *, draws: int = 20, seed: int = 0,
                   progress: bool = True, meta: dict[str, Any] | None = None,
                   supervised: dict[str, Any] | None = None, numbers: Numbers = "reference") -> dict[str, Any]:
    """Evaluate each model (label -> model) on each data directory, plus their union as the retrieval pool.

    `supervised` (label -> SupervisedExamClassifier) adds the label-trained ceiling on the same test sets;
    `numbers` says where a measuring model's numbers come from (TestSet.load)."""
    if not models:
        raise ValueError("no model to evaluate")
    t0 = time.perf_counter()
    first = next(iter(models.values()))
    sets = [TestSet.load(d, first, progress=progress, numbers=numbers) for d in data_dirs]
    if len(sets) > 1:
        sets.append(TestSet.concat("pool (all test sets)", sets))
    entries: dict[str, Any] = {}
    for i, (label, model) in enumerate(models.items()):
        if model.spec != first.spec:
            raise ValueError(f"model {label!r} uses another exam spec; evaluate it separately")
        entries.update(evaluate_model(model, label, sets, draws=draws, seed=seed, with_robustness=i == 0,
                                      progress=progress))
    for label, sup in (supervised or {}).items():
        if sup.cfg.model.exam != first.spec:
            raise ValueError(f"supervised model {label!r} uses another exam spec")
        entries.update(evaluate_supervised(sup, label, [s for s in sets if not s.name.startswith("pool")]))
    first_label = next(iter(models))
    held = [s.name for s in sets if s.name == "heldout-style"]
    primary = f"{first_label} / {held[0] if held else sets[0].name}"
    return {"primary": primary, "entries": entries,
            "meta": {**(meta or {}), "data": [str(d) for d in data_dirs], "few_shot_draws": draws, "seed": seed,
                     "zero_shot_prompts": "heldout phrase bank (cmr.synth.report.finding_prompts/disease_prompts)",
                     "measurement_numbers": numbers if first.measurement_names else None,
                     "clinical_match_findings": list(PAPER_FINDINGS),
                     "machine": f"{platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} threads".strip(),
                     "eval_seconds": round(time.perf_counter() - t0, 1)}}
