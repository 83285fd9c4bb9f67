"""The real-data benchmark (`cmr eval-real`): one CMR-CLIP checkpoint, and beside it the untrained model of the
same architecture, on the ACDC patients (real short-axis cine; `cmr.realdata.acdc`), EVALUATION ONLY.

Embedding part (this module):
  * every patient converted to DICOM by the data's own converter, loaded with the project's loader
    (cmr.dicom), assembled with the model's exam spec and embedded (cmr.model.inference); a study that does
    not convert or load is reported in `failures`, never fatal;
  * zero-shot AUROC of 5 tasks, each scored exactly as `cmr zeroshot` scores it (the checkpoint's prompt
    ensembles and, when a calibration file lies beside it, its Platt-calibrated probabilities), with a
    bootstrap 95 % CI, and their mean;
  * a logistic-regression probe on the frozen embeddings: stratified k-fold CV, AUROC of the pooled
    out-of-fold scores per task, and the mean (C, folds and seed fixed below: never chosen on ACDC);
  * nearest-neighbour group agreement: leave-one-out cosine neighbours, the fraction of the k nearest that
    share the exam's diagnostic group, with its chance level;
  * the same checkpoint's synthetic held-out-style zero-shot figures, read from docs/model/results.json when
    that file was made with this checkpoint.

Further sections (quantification: segmentation Dice, LVEF error) plug in as callables, see `Section`:

    run_real_evaluation(ckpt, sections={"quantification": my_section})

and `cmr eval-real` picks up `cmr.eval.real_quant.section` on its own once that module exists
(`SECTION_PROVIDERS`). Results schema: `run_real_evaluation`'s docstring.
"""

from __future__ import annotations

import importlib
import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from cmr.config import Settings, get_settings
from cmr.eval import metrics as M
from cmr.realdata.acdc import (GROUP_NAMES, LICENCE, TASK_DEFINITIONS, TASK_ZERO_SHOT_KEY, TASKS, AcdcPatient,
                               ConvertedStudy, acdc_dir, convert_patients, file_sha256, list_patients,
                               select_balanced)

FORMAT = "cmr-eval-real/1"
# Fixed hyperparameters (ACDC is evaluation only: nothing here is chosen on it).
PROBE_C = 1.0  # inverse L2 strength of the logistic-regression probe, on standardised embeddings
PROBE_FOLDS = 5
PROBE_SEED = 0
PROBE_MAX_ITER = 5000
KNN_KS = (1, 5)
FEW_SHOT_K = 8  # the paper's few-shot table point (real, LV dysfunction: 0.871 at 8 shots)
FEW_SHOT_DRAWS = 20
N_BOOT = 1000
BOOT_SEED = 0
UNTRAINED_SEED = 0  # the untrained baseline of `cmr eval`: create_model(cfg, seed=0)
EMBED_BATCH = 8

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_RESULTS = REPO / "docs" / "model" / "results.json"  # the committed `cmr eval` results
SYNTHETIC_TEST_SET = "heldout-style"
NOT_EVALUATED = "not evaluated for this checkpoint"

# Sections other modules provide: name -> "module:attribute" of a `Section`; a provider whose module does not
# exist yet leaves its placeholder in the results and the markdown.
SECTION_PROVIDERS: dict[str, str] = {"quantification": "cmr.eval.real_quant:section"}
SECTION_PLACEHOLDERS: dict[str, str] = {
    "quantification": "Segmentation Dice and LVEF error against the expert ACDC masks: not part of this run "
                      "(plugged in by cmr/eval/real_quant.py through run_real_evaluation(sections=...)).",
}
SECTION_TITLES: dict[str, str] = {"quantification": "Quantification (segmentation Dice, LVEF error)"}


# --- metrics (pure functions on arrays) ------------------------------------------------------------------------
def _unit(x: ArrayLike) -> NDArray[np.float64]:
    a = np.atleast_2d(np.asarray(x, np.float64))
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def group_chance(groups: Sequence[str]) -> float | None:
    """Chance level of neighbour group agreement: mean over exams of (n_group - 1) / (n - 1)."""
    g = np.asarray(list(groups))
    n = g.size
    if n < 2:
        return None
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    return float(((counts[inv] - 1) / (n - 1)).mean())


def knn_group_agreement(emb: ArrayLike, groups: Sequence[str], ks: Sequence[int] = KNN_KS) -> dict[str, Any]:
    """Leave-one-out cosine neighbours: for each exam the k most similar other exams, and the fraction of them
    in the exam's own group, averaged over exams. k is capped at n - 1. Ties at the k-th place are broken by
    the lower index (stable sort), so the result is deterministic.

    Returns {"k=<k>": {"k": int, "agreement": float}, ..., "chance": float, "n": int}."""
    x = _unit(emb)
    g = np.asarray(list(groups))
    n = x.shape[0]
    if g.size != n:
        raise ValueError(f"{g.size} groups for {n} embeddings")
    out: dict[str, Any] = {"n": int(n), "chance": group_chance(g)}
    if n < 2:
        for k in ks:
            out[f"k={k}"] = {"k": 0, "agreement": None}
        return out
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        kk = min(int(k), n - 1)
        same = g[order[:, :kk]] == g[:, None]
        out[f"k={k}"] = {"k": kk, "agreement": float(same.mean())}
    return out


def probe_auroc(emb: ArrayLike, labels: ArrayLike, *, folds: int = PROBE_FOLDS, C: float = PROBE_C,  # noqa: N803
                seed: int = PROBE_SEED, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Logistic-regression probe on frozen embeddings: stratified k-fold CV (shuffled with `seed`), each fold a
    StandardScaler + LogisticRegression(C) fitted on the training part; the AUROC of the pooled out-of-fold
    decision scores, with a bootstrap 95 % CI. Folds are reduced to the minority-class count when that is
    smaller (at least 2); with fewer than 2 exams of either class the AUROC is None and `reason` says why."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _unit(emb)
    y = np.asarray(labels).astype(bool).ravel()
    if y.size != x.shape[0]:
        raise ValueError(f"{y.size} labels for {x.shape[0]} embeddings")
    n_pos, n = int(y.sum()), int(y.size)
    base: dict[str, Any] = {"auroc": None, "ci": None, "n_pos": n_pos, "n": n, "folds": 0, "C": C, "seed": seed}
    minority = min(n_pos, n - n_pos)
    if minority < 2:
        return {**base, "reason": "needs at least 2 exams of each class"}
    k = min(folds, minority)
    oof = np.zeros(n)
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=PROBE_MAX_ITER))
        clf.fit(x[train], y[train])
        oof[test] = clf.decision_function(x[test])
    auc = M.auroc(y, oof)
    ci = M.bootstrap_auroc_ci(y, oof, n_boot=n_boot, seed=BOOT_SEED) if auc is not None else None
    return {**base, "auroc": auc, "ci": list(ci) if ci else None, "folds": k}


def mean_pairwise_cosine(emb: ArrayLike) -> float | None:
    """Mean cosine between different exams: near 1 means the embeddings barely tell exams apart."""
    x = _unit(emb)
    n = x.shape[0]
    if n < 2:
        return None
    sims = x @ x.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def _mean(values: Sequence[float | None]) -> float | None:
    v = [float(x) for x in values if x is not None]
    return float(np.mean(v)) if v else None


def auroc_with_ci(y: NDArray[np.bool_], scores: NDArray[np.floating], n_boot: int = N_BOOT) -> dict[str, Any]:
    auc = M.auroc(y, scores)
    ci = M.bootstrap_auroc_ci(y, scores, n_boot=n_boot, seed=BOOT_SEED) if auc is not None else None
    return {"auroc": auc, "ci": list(ci) if ci else None, "n_pos": int(np.sum(y)), "n": int(np.size(y))}


def label_arrays(patients: Sequence[AcdcPatient]) -> dict[str, NDArray[np.bool_]]:
    return {t: np.array([p.task_labels[t] for p in patients], bool) for t in TASKS}


# --- the hook for further sections ----------------------------------------------------------------------------
@dataclass
class RealEvalContext:
    """What a section gets. `patients` are the evaluated ones (after --limit) in result order, with their
    labels.jsonl row and lazily loaded ED/ES images and expert masks; `converted` is one ConvertedStudy per
    patient (same order; `.path` the DICOM study folder, None with `.error` when conversion failed); `studies`
    maps each converted patient's name to its folder; `failures` holds patient -> reason for those that did
    not convert or load (embedding part); `docs_dir` is where figures go when markdown is written, else None."""

    patients: list[AcdcPatient]
    converted: list[ConvertedStudy]
    studies: dict[str, Path]
    failures: dict[str, str]
    folder: Path
    checkpoint: Path
    model: Any  # CMRCLIP
    settings: Settings
    docs_dir: Path | None
    progress: bool
    # patient -> Measurements, when the embedding part measured the studies (a model with measurement tokens):
    # sections reuse them instead of segmenting the same study twice.
    measured: dict[str, Any] = field(default_factory=dict)


# A section: context -> JSON-able dict. Keys it may use: "markdown" (str, rendered under the section's
# heading), "figures" (file names it wrote into ctx.docs_dir), "summary" ({label: value} one line each);
# anything else is kept in the JSON. An exception in a section is recorded as {"status": "error", ...}.
Section = Callable[[RealEvalContext], Mapping[str, Any]]


def discover_sections() -> tuple[dict[str, Section], dict[str, str]]:
    """The sections of SECTION_PROVIDERS whose module exists and defines the callable, and a note for each
    provider module that exists without it. A module that is absent is skipped; an import error inside an
    existing module is raised, not hidden."""
    out: dict[str, Section] = {}
    notes: dict[str, str] = {}
    for name, ref in SECTION_PROVIDERS.items():
        mod_name, attr = ref.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue
            raise
        fn = getattr(mod, attr, None)
        if callable(fn):
            out[name] = fn
        else:
            notes[name] = f"{mod_name} defines no `{attr}(ctx)` yet: this section was not run."
    return out, notes


def default_sections() -> dict[str, Section]:
    return discover_sections()[0]


def _run_section(name: str, fn: Section, ctx: RealEvalContext) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = dict(fn(ctx))
    except Exception as exc:  # noqa: BLE001 - one section's bug must not lose the other results
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8), "seconds": round(time.perf_counter() - t0, 1)}
    result.setdefault("status", "ok")
    result.setdefault("seconds", round(time.perf_counter() - t0, 1))
    return json.loads(json.dumps(result, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


# --- synthetic reference --------------------------------------------------------------------------------------
def synthetic_reference(model_name: str, checkpoint_meta: Mapping[str, Any], checkpoint_version: str,
                        path: Path = SYNTHETIC_RESULTS) -> dict[str, Any]:
    """The checkpoint's zero-shot AUROC on the synthetic held-out-style test set from a `cmr eval` results file.

    That file (schema in cmr.eval.report) names no weights hash, so it is taken to be this checkpoint's when
    `meta.model_version` equals the checkpoint's version, or, for files without it, when its entry's model
    name is this config's and `meta.training` (epoch, step, val_loss of the run) equals the checkpoint's
    training meta. Otherwise status is "not evaluated for this checkpoint"."""
    base: dict[str, Any] = {"source": str(path), "test_set": SYNTHETIC_TEST_SET}
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {**base, "status": NOT_EVALUATED, "why": f"cannot read {path}: {type(exc).__name__}"}
    meta = res.get("meta", {}) if isinstance(res, dict) else {}
    entry_name = f"{model_name} / {SYNTHETIC_TEST_SET}"
    entry = (res.get("entries") or {}).get(entry_name) if isinstance(res, dict) else None
    if not isinstance(entry, dict) or entry.get("model") != model_name:
        return {**base, "status": NOT_EVALUATED, "why": f"no entry {entry_name!r} in {path.name}"}
    if "model_version" in meta:
        matched, how = meta["model_version"] == checkpoint_version, f"meta.model_version {meta['model_version']}"
    else:
        matched = bool(checkpoint_meta) and meta.get("training") == dict(checkpoint_meta)
        how = f"model name and training meta {meta.get('training')}"
    if not matched:
        return {**base, "status": NOT_EVALUATED, "why": f"{path.name} was made with another checkpoint ({how})"}
    zs = entry.get("zero_shot", {})
    tasks = {t: zs.get(key) for t, key in TASK_ZERO_SHOT_KEY.items()}
    return {**base, "status": "matched", "matched_by": how, "entry": entry_name,
            "n_studies": entry.get("n_studies"), "results_checkpoint": meta.get("checkpoint"),
            "zero_shot": tasks, "zero_shot_mean": _mean([(c or {}).get("auroc") for c in tasks.values()])}


# --- the run ----------------------------------------------------------------------------------------------------
def _display_path(p: Path) -> str:
    """Repository-relative when inside the repository (so committed results name no machine's paths)."""
    try:
        return str(Path(p).resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _zero_shot(clf: Any, emb: NDArray[np.float32], labels: Mapping[str, NDArray[np.bool_]],
               n_boot: int) -> tuple[dict[str, Any], NDArray[np.float64]]:
    """AUROC per task of the values `cmr zeroshot` shows: calibrated probabilities, or raw margins when the
    checkpoint has no calibration file."""
    values = clf.probabilities(emb) if clf.calibration is not None else clf.raw_scores(emb)
    out: dict[str, Any] = {}
    for t in TASKS:
        key = TASK_ZERO_SHOT_KEY[t]
        out[t] = {"key": key, **auroc_with_ci(labels[t], values[:, clf.keys.index(key)], n_boot)}
    return out, np.asarray(values, np.float64)


def evaluate_embeddings(emb: NDArray[np.float32], patients: Sequence[AcdcPatient], clf: Any,
                        n_boot: int = N_BOOT) -> dict[str, Any]:
    """All embedding metrics of one model on the embedded patients."""
    from sklearn.decomposition import PCA

    labels = label_arrays(patients)
    groups = [p.group for p in patients]
    zs, values = _zero_shot(clf, emb, labels, n_boot)
    probe = {t: probe_auroc(emb, labels[t], n_boot=n_boot) for t in TASKS}
    few = {t: M.few_shot(emb, labels[t], shots=(FEW_SHOT_K,), draws=FEW_SHOT_DRAWS, seed=0).get(FEW_SHOT_K)
           for t in TASKS}
    few_shot = {t: None if v is None else {"k": FEW_SHOT_K, **v["prototype"]} for t, v in few.items()}
    x = _unit(emb)
    pca = PCA(n_components=min(2, *x.shape), random_state=0).fit(x)
    return {
        "n": len(patients),
        "zero_shot": zs,
        "zero_shot_mean": _mean([c["auroc"] for c in zs.values()]),
        "zero_shot_scoring": ("Platt-calibrated probabilities" if clf.calibration is not None else
                              "raw margins cos(present) - cos(absent) (no calibration file beside the checkpoint)"),
        "calibration": None if clf.calibration is None else {"model_version": clf.calibration.model_version,
                                                             "fitted_on": clf.calibration.fitted_on},
        "probe": probe,
        "probe_mean": _mean([c["auroc"] for c in probe.values()]),
        "few_shot": few_shot,  # prototype AUROC over draws of FEW_SHOT_K positive + FEW_SHOT_K negative supports
        "few_shot_mean": _mean([c["mean"] if c else None for c in few_shot.values()]),
        "knn": knn_group_agreement(emb, groups),
        "mean_pairwise_cosine": mean_pairwise_cosine(emb),
        "embedding_map": {"method": "PCA of the L2-normalised embeddings",
                          "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
                          "points": [[round(float(a), 5) for a in row] for row in pca.transform(x)]},
        "scores": {t: [round(float(v), 5) for v in values[:, clf.keys.index(TASK_ZERO_SHOT_KEY[t])]] for t in TASKS},
    }


def _embed(model: Any, exams: Sequence[Any], label: str, progress: bool,
           measured: NDArray[np.float32] | None = None, frames: bool = True) -> NDArray[np.float32]:
    """Embeddings of `exams` with `measured` numbers; `frames=False` masks every frame (the numbers alone)."""
    from cmr.model.inference import embed_exam_arrays, embed_exams

    out = []
    for s in tqdm(range(0, len(exams), EMBED_BATCH), desc=f"embed ({label})", unit="batch", disable=not progress):
        batch = exams[s : s + EMBED_BATCH]
        numbers = None if measured is None else measured[s : s + EMBED_BATCH]
        if frames:
            out.append(embed_exams(model, batch, numbers))
        else:
            px = np.stack([e.pixels for e in batch])
            out.append(embed_exam_arrays(model, px, np.zeros(px.shape[:2], bool), measurements=numbers))
    return np.concatenate(out) if out else np.zeros((0, model.cfg.embed_dim), np.float32)


def measure_patients(loaded: Mapping[str, Any], settings: Settings, progress: bool,
                     folders: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """patient -> (Measurements, seconds) of the loaded study by the shipped (or configured) segmenter, as the
    encoder service measures before it embeds; a study it cannot measure gets its reason, never an exception.
    With `folders` (patient -> converted study folder) each result is kept beside its study
    (`cmr.eval.measured`), so evaluating another CLIP checkpoint does not segment the same studies again."""
    from cmr.eval.measured import measure_studies
    from cmr.quant.segmenter import load_segmenter

    seg = load_segmenter(getattr(settings, "segmenter_checkpoint", None))
    return measure_studies({name: (folders or {}).get(name) for name in loaded}, seg, progress, loaded=loaded)


def run_real_evaluation(checkpoint: Path | None = None, *, data: Path | None = None, limit: int | None = None,
                        untrained: bool = True, sections: Mapping[str, Section] | None = None,
                        docs_dir: Path | None = None, settings: Settings | None = None, progress: bool = True,
                        n_boot: int = N_BOOT, synthetic_results: Path = SYNTHETIC_RESULTS) -> dict[str, Any]:
    """Evaluate `checkpoint` (default: the shipped one) and the untrained model on an ACDC-style folder (`data`,
    default `<realdata_dir>/acdc`). `sections` (name -> Section) add further parts; None = those of
    SECTION_PROVIDERS that exist, {} = none (placeholders stay "not run"). Raises RealDataMissingError / AcdcLayoutError / CheckpointError for unusable
    input; single studies that fail are in `failures`.

    Results (JSON-able):
        {"format": "cmr-eval-real/1",
         "data": {"folder", "n_listed", "n_selected", "n_embedded", "limit", "groups": {group: n}, "tasks":
                  {task: definition}, "labels_sha256", "licence", "provenance"},
         "patients": [{"name", "group", "lvef", "labels": {task: bool}, "embedded": bool}],   # selected, sorted
         "embedded": [name, ...],          # row order of every per-exam list below
         "failures": {name: reason},
         "models": {"checkpoint"|"untrained": {"label", "n", "zero_shot": {task: {"key", "auroc", "ci", "n_pos",
                    "n"}}, "zero_shot_mean", "zero_shot_scoring", "calibration", "probe": {task: {"auroc", "ci",
                    "n_pos", "n", "folds", "C", "seed"[, "reason"]}}, "probe_mean", "knn": {"k=1": {"k",
                    "agreement"}, "k=5": {...}, "chance", "n"}, "embedding_map": {"method", "explained_variance",
                    "points"}, "scores": {task: [value per embedded exam]}}},
         "synthetic": {"status": "matched" | "not evaluated for this checkpoint", "zero_shot": {task: cell},
                       "zero_shot_mean", ...},
         "sections": {"quantification": {"status": "not run" | "ok" | "error", ...}},
         "meta": {"checkpoint", "checkpoint_version", "model", "training", "untrained_seed", "probe", "machine",
                  "torch_threads", "started", "timings_s": {...}}}
    """
    from cmr.findings import classifier_for_model as classifier_for
    from cmr.dicom import StudyLoadError, load_study
    from cmr.findings import ZeroShotClassifier
    from cmr.machine import describe_machine
    from cmr.model.checkpoint import (DEFAULT_CHECKPOINT, checkpoint_version, create_model, load_model,
                                      read_checkpoint)
    from cmr.model.inference import embed_texts

    settings = settings or get_settings()
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    timings: dict[str, float] = {}
    folder = Path(data) if data is not None else acdc_dir(settings)
    listed = list_patients(folder)
    patients = select_balanced(listed, limit)
    if not patients:
        raise ValueError(f"{folder}: labels.jsonl lists no patient")
    ckpt = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    model = load_model(ckpt)
    ckpt_meta = read_checkpoint(ckpt).get("meta", {})
    version = checkpoint_version(ckpt)
    timings["load_model"] = time.perf_counter() - t_start

    t = time.perf_counter()
    converted = convert_patients(patients, folder, settings, progress=progress)
    timings["convert"] = time.perf_counter() - t
    failures: dict[str, str] = {c.patient.name: c.error or "not converted" for c in converted if c.path is None}
    studies = {c.patient.name: c.path for c in converted if c.path is not None}

    t = time.perf_counter()
    exams, embedded, loaded = [], [], {}
    for p in tqdm([p for p in patients if p.name in studies], desc="load studies", unit="study",
                  disable=not progress):
        try:
            study = load_study(studies[p.name])
            exams.append(study.to_exam(model.spec))
            embedded.append(p)
            loaded[p.name] = study
        except StudyLoadError as exc:
            failures[p.name] = f"load: {exc.reason}"
    timings["load_studies"] = time.perf_counter() - t
    measured: dict[str, Any] = {}
    measured_matrix = expert_matrix = None
    if model.measurement_names:  # the served path: measure, then embed the pixels with the numbers
        from cmr.model.measurements import measurement_matrix

        t = time.perf_counter()
        measured = measure_patients(loaded, settings, progress, folders=studies)
        measured_matrix = measurement_matrix([measured[p.name][0].values() for p in embedded],
                                             model.measurement_names)
        # The segmentation ceiling: the same model given the expert masks' numbers instead of the segmenter's.
        expert_matrix = measurement_matrix([p.expert_measurements for p in embedded], model.measurement_names)
        timings["measure_studies"] = time.perf_counter() - t
    del loaded

    model_runs: dict[str, tuple[str, Any, Any]] = {"checkpoint": (model.cfg.name, model, classifier_for(model, ckpt))}
    if untrained:
        base = create_model(model.cfg, seed=UNTRAINED_SEED).eval()
        # No calibration: the checkpoint's fit belongs to its own weights (cmr zeroshot without a calibration file).
        model_runs["untrained"] = (f"{model.cfg.name} untrained", base,
                                   ZeroShotClassifier.build(lambda texts: embed_texts(base, texts), None))
    models: dict[str, Any] = {}
    if measured_matrix is not None:  # ablations: what the pixels alone and the numbers alone carry
        model_runs["checkpoint_pixels_only"] = (f"{model.cfg.name} without its measurement tokens", model,
                                                model_runs["checkpoint"][2])
        model_runs["checkpoint_numbers_only"] = (f"{model.cfg.name} from its measurement tokens alone", model,
                                                 model_runs["checkpoint"][2])
        model_runs["checkpoint_expert_numbers"] = (f"{model.cfg.name} given the expert masks' numbers", model,
                                                   model_runs["checkpoint"][2])
    numbers_of = {"checkpoint_pixels_only": None, "checkpoint_expert_numbers": expert_matrix}
    for role, (label, m, clf) in model_runs.items():
        t = time.perf_counter()
        emb = _embed(m, exams, label, progress, numbers_of.get(role, measured_matrix),
                     frames=role != "checkpoint_numbers_only")
        timings[f"embed_{role}"] = time.perf_counter() - t
        t = time.perf_counter()
        models[role] = ({"label": label, **evaluate_embeddings(emb, embedded, clf, n_boot)} if embedded else
                        {"label": label, "n": 0})
        timings[f"metrics_{role}"] = time.perf_counter() - t

    calibration = models["checkpoint"].get("calibration")
    if calibration:  # cmr zeroshot uses the file beside the checkpoint whatever it says; say whether it fits
        calibration["matches_checkpoint"] = calibration["model_version"] == version
    synthetic = synthetic_reference(model.cfg.name, ckpt_meta, version, synthetic_results)
    ctx = RealEvalContext(patients=patients, converted=converted, studies=studies, failures=dict(failures),
                          folder=folder, checkpoint=ckpt, model=model, settings=settings, docs_dir=docs_dir,
                          progress=progress, measured=measured)
    chosen, notes = discover_sections() if sections is None else (dict(sections), {})
    section_results: dict[str, Any] = {name: {"status": "not run", "note": notes.get(name, note)}
                                       for name, note in SECTION_PLACEHOLDERS.items()}
    for name, fn in chosen.items():
        t = time.perf_counter()
        section_results[name] = _run_section(name, fn, ctx)
        timings[f"section_{name}"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start

    groups: dict[str, int] = {}
    for p in patients:
        groups[p.group] = groups.get(p.group, 0) + 1
    emb_names = {p.name for p in embedded}
    conv_s = [c.seconds for c in converted if c.path is not None and not c.cached]
    return {
        "format": FORMAT,
        "data": {"folder": str(folder), "n_listed": len(listed), "n_selected": len(patients),
                 "n_embedded": len(embedded), "limit": limit, "groups": dict(sorted(groups.items())),
                 "group_names": {g: GROUP_NAMES.get(g, g) for g in sorted(groups)}, "tasks": TASK_DEFINITIONS,
                 "labels_sha256": file_sha256(folder / "labels.jsonl"), "licence": LICENCE,
                 "provenance": ("ACDC (MICCAI 2017, University Hospital of Dijon; Siemens 1.5 T / 3 T), ED and ES "
                                "short-axis volumes with expert masks, converted to DICOM by the folder's "
                                "to_dicom.py: 20-phase cine (each phase the nearer of ED/ES), 1.5625 mm pixels "
                                "and 10 mm slice gap assumed, header from a real Sunnybrook GE file (vendor tags "
                                "do not describe these scans)"),
                 "conversion": {"cache": str(Path(settings.data_dir) / "realdata" / folder.name),
                                "converted_now": len(conv_s), "cached": sum(c.cached for c in converted)}},
        "patients": [{"name": p.name, "group": p.group, "lvef": p.lvef, "labels": p.task_labels,
                      "embedded": p.name in emb_names} for p in patients],
        "embedded": [p.name for p in embedded],
        "failures": failures,
        "models": models,
        "synthetic": synthetic,
        "sections": section_results,
        "meta": {"checkpoint": _display_path(ckpt), "checkpoint_version": version, "model": model.cfg.name,
                 "training": ckpt_meta, "untrained_seed": UNTRAINED_SEED if untrained else None,
                 "probe": {"model": "StandardScaler + LogisticRegression", "C": PROBE_C, "folds": PROBE_FOLDS,
                           "seed": PROBE_SEED, "auroc_of": "pooled out-of-fold decision scores"},
                 "bootstrap": {"n_boot": n_boot, "seed": BOOT_SEED}, "knn_ks": list(KNN_KS),
                 "machine": describe_machine(), "python": platform.python_version(),
                 "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "started": started,
                 "timings_s": {k: round(v, 1) for k, v in timings.items()}},
    }


# --- report --------------------------------------------------------------------------------------------------
NA = "–"
FIG_ZERO_SHOT = "real_data_zero_shot.png"
FIG_EMBEDDINGS = "real_data_embeddings.png"
TASK_NAMES = {"lv_dysfunction": "LV dysfunction", "lv_dilation": "LV dilation", "lv_hypertrophy": "LV hypertrophy",
              "rv_dilation": "RV dilation", "normal": "Normal study"}


def _f(x: float | None, nd: int = 3) -> str:
    return NA if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _cell(c: Mapping[str, Any] | None) -> str:
    if not c or c.get("auroc") is None:
        return NA
    ci = c.get("ci")
    return f"{c['auroc']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{c['auroc']:.3f}"


def _counts(results: Mapping[str, Any], task: str) -> str:
    pats = [p for p in results.get("patients", []) if p.get("embedded")]
    return f"{sum(bool(p['labels'][task]) for p in pats)}/{len(pats)}"


def _calibration_note(model: Mapping[str, Any]) -> str:
    cal = model.get("calibration")
    if not cal:
        return ""
    fits = "fitted for this checkpoint" if cal.get("matches_checkpoint") else \
        f"fitted for {cal.get('model_version')}, NOT this checkpoint"
    return f" (the calibration file beside it, {fits} on synthetic {cal.get('fitted_on')})"


# The ablations of a measuring checkpoint, in column order: what the pixels alone and the numbers alone carry, and
# what the expert masks' numbers would give (the ceiling a perfect segmenter would reach with this model).
ABLATION_NAMES: dict[str, str] = {"checkpoint_pixels_only": "pixels only", "checkpoint_numbers_only": "numbers only",
                                  "checkpoint_expert_numbers": "expert numbers"}


def real_results_to_markdown(results: Mapping[str, Any]) -> str:
    """docs/model/real-data.md: one table (checkpoint on ACDC | untrained on ACDC | checkpoint on synthetic
    held-out), the figures, data provenance and licence, sections, machine and timings."""
    meta, data = results.get("meta", {}), results.get("data", {})
    models = results.get("models", {})
    ck, un = models.get("checkpoint", {}), models.get("untrained")
    syn = results.get("synthetic", {})
    matched = syn.get("status") == "matched"
    syn_na = NOT_EVALUATED if not matched else None
    n = data.get("n_embedded", 0)
    # ACDC columns: the checkpoint, its ablations (a model with measurement tokens: ABLATION_NAMES), the untrained one.
    ablations = [models[r] for r in ABLATION_NAMES if models.get(r)]
    acdc: list[Mapping[str, Any] | None] = [ck, *ablations, un]
    head = [f"{ck.get('label', meta.get('model', 'checkpoint'))} on ACDC (n = {n})",
            *[f"{a.get('label')} on ACDC (n = {n})" for a in ablations],
            f"untrained on ACDC (n = {n})" if un else "untrained on ACDC",
            f"{ck.get('label', 'checkpoint')} on synthetic held-out"
            + (f" (n = {syn.get('n_studies')})" if matched else "")]

    def per_model(cell: Callable[[Mapping[str, Any]], str]) -> list[str]:
        return [cell(m) if m else NA for m in acdc]

    rows: list[list[str]] = []
    for t in TASKS:
        syn_cell = syn_na or _cell((syn.get("zero_shot") or {}).get(t))
        rows.append([f"Zero-shot AUROC: {TASK_NAMES[t]} ({TASK_DEFINITIONS[t].split(' (')[0]}; {_counts(results, t)})",
                     *per_model(lambda m: _cell(m.get("zero_shot", {}).get(t))), syn_cell])
    rows.append(["**Zero-shot mean (5 tasks)**", *per_model(lambda m: f"**{_f(m.get('zero_shot_mean'))}**"),
                 syn_na or f"**{_f(syn.get('zero_shot_mean'))}**"])
    syn_other = syn_na or f"{NA} (not measured by `cmr eval`)"
    rows.append([f"Probe mean AUROC (logistic regression, {PROBE_FOLDS}-fold CV, C = {PROBE_C:g})",
                 *per_model(lambda m: _f(m.get("probe_mean"))), syn_other])
    rows.append([f"Few-shot mean AUROC ({FEW_SHOT_K}-shot prototype, {FEW_SHOT_DRAWS} draws)",
                 *per_model(lambda m: _f(m.get("few_shot_mean"))), syn_other])
    chance = (ck.get("knn") or {}).get("chance")
    for k in KNN_KS:
        kk = (ck.get("knn") or {}).get(f"k={k}", {})
        rows.append([f"kNN group agreement, k = {kk.get('k', k)} (chance {_f(chance)})",
                     *per_model(lambda m: _f((m.get("knn") or {}).get(f"k={k}", {}).get("agreement"))), syn_other])

    lines = ["# CMR-CLIP on real scans (ACDC)", "",
             f"`cmr eval-real` of `{meta.get('checkpoint')}` (version `{meta.get('checkpoint_version')}`) and the "
             f"untrained model of the same architecture (`create_model(cfg, seed={meta.get('untrained_seed')})`, "
             "the baseline of `cmr eval`), on "
             f"{n} real ACDC patients ({', '.join(f'{g} {c}' for g, c in data.get('groups', {}).items())}). "
             "Zero-shot: AUROC [bootstrap 95 % CI] of the values `cmr zeroshot` shows: for the checkpoint, "
             f"{ck.get('zero_shot_scoring', NA)}{_calibration_note(ck)}; for the untrained model, raw margins. "
             "Probe: pooled out-of-fold AUROC of a logistic regression on the frozen embeddings, hyperparameters "
             "fixed in code. kNN: leave-one-out cosine neighbours sharing the exam's diagnostic group "
             "(chance = mean over exams of (n_group - 1) / (n - 1)). The synthetic column is the same "
             "checkpoint's held-out-style zero-shot result from [results.json](results.json)"
             + (f" (matched by {syn.get('matched_by')})." if matched else f": {syn.get('why', NOT_EVALUATED)}."),
             "", "| | " + " | ".join(head) + " |", "| --- | " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    shown = [m for m in acdc if m]
    roles = " / ".join(["checkpoint", *(ABLATION_NAMES[r] for r in ABLATION_NAMES if models.get(r)),
                        *(["untrained"] if un else [])])
    probe_line = ", ".join(f"{TASK_NAMES[t]} " + " / ".join(_f((m.get("probe") or {}).get(t, {}).get("auroc"))
                                                          for m in shown) for t in TASKS)
    lines += [f"Probe AUROC per task ({roles}): {probe_line}.", ""]
    spread = [f"{m.get('label')} {_f(m.get('mean_pairwise_cosine'))}" for m in shown]
    lines += ["Mean cosine between two different exams' embeddings (near 1: exams barely told apart): "
              + ", ".join(spread) + ".", ""]
    if results.get("failures"):
        lines += [f"Studies not evaluated ({len(results['failures'])}): "
                  + "; ".join(f"{k}: {v}" for k, v in results["failures"].items()), ""]
    else:
        lines += ["Every selected study converted, loaded and was embedded.", ""]
    lines += [f"![zero-shot AUROC, checkpoint vs untrained]({FIG_ZERO_SHOT})", "",
              f"![2-D PCA of the ACDC embeddings by group]({FIG_EMBEDDINGS})", ""]

    for name, sec in (results.get("sections") or {}).items():
        lines += [f"## {SECTION_TITLES.get(name, name.replace('_', ' ').capitalize())}", ""]
        status = sec.get("status")
        if status == "not run":
            lines += [f"*{sec.get('note', 'not part of this run')}*", ""]
        elif status == "error":
            lines += [f"**This section failed:** `{sec.get('error')}`", ""]
        else:
            if sec.get("markdown"):
                lines += [str(sec["markdown"]).rstrip(), ""]
            for k, v in (sec.get("summary") or {}).items():
                lines.append(f"- {k}: {v}")
            for fig in sec.get("figures") or []:
                lines += ["", f"![{name}]({fig})"]
            lines.append("")

    timings = meta.get("timings_s", {})
    limit = data.get("limit")
    limited = "" if limit is None else f" with --limit {limit}"
    lines += ["## Data", "",
              f"- Folder: `{data.get('folder')}` ({data.get('n_listed')} patients listed, {data.get('n_selected')} "
              f"selected{limited}, {n} embedded); labels.jsonl sha256 `{str(data.get('labels_sha256'))[:16]}`.",
              f"- {data.get('provenance', '')}.",
              "- Task labels: " + "; ".join(f"{TASK_NAMES[t]} = {d}" for t, d in TASK_DEFINITIONS.items()) + ".",
              f"- Licence: {data.get('licence', LICENCE)}",
              "", "## Run", "",
              f"- Machine: {meta.get('machine')}; torch {meta.get('torch')}, {meta.get('torch_threads')} threads; "
              f"started {meta.get('started')}.",
              "- Timings (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()) + ".",
              f"- Conversion cache: `{(data.get('conversion') or {}).get('cache')}` "
              f"({(data.get('conversion') or {}).get('converted_now')} converted in this run, "
              f"{(data.get('conversion') or {}).get('cached')} reused).",
              f"- Fixed settings: probe C = {PROBE_C:g}, {PROBE_FOLDS} folds, seed {PROBE_SEED}; bootstrap "
              f"{(meta.get('bootstrap') or {}).get('n_boot')} resamples, seed {BOOT_SEED}.",
              "- Reproduce: `cmr eval-real --out docs/model/real-data.json --docs docs/model`.", ""]
    return "\n".join(lines)


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_real_zero_shot(results: Mapping[str, Any], path: Path) -> Path:
    """Bars of zero-shot AUROC per task and the mean, checkpoint vs untrained, with the bootstrap CI whiskers."""
    models = results.get("models", {})
    fig = _new_figure(8.0, 4.2)
    ax = fig.add_subplot()
    roles = [r for r in ("checkpoint", "untrained") if r in models and models[r].get("zero_shot")]
    names = [TASK_NAMES[t] for t in TASKS] + ["mean"]
    width = 0.8 / max(1, len(roles))
    for j, role in enumerate(roles):
        m = models[role]
        xs, ys, lo, hi = [], [], [], []
        for i, t in enumerate(TASKS):
            c = m["zero_shot"][t]
            if c.get("auroc") is None:
                continue
            ci = c.get("ci") or [c["auroc"]] * 2
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(c["auroc"])
            lo.append(max(0.0, c["auroc"] - ci[0]))
            hi.append(max(0.0, ci[1] - c["auroc"]))
        ax.bar(xs, ys, width=width * 0.9, yerr=[lo, hi], capsize=3, label=m.get("label", role),
               color="#2e86c1" if role == "checkpoint" else "#aab7b8")
        if m.get("zero_shot_mean") is not None:
            ax.bar([len(TASKS) - 0.4 + width * (j + 0.5)], [m["zero_shot_mean"]], width=width * 0.9,
                   color="#2e86c1" if role == "checkpoint" else "#aab7b8", hatch="//", edgecolor="white")
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), names, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("zero-shot AUROC (95 % bootstrap CI)")
    ax.set_title(f"Zero-shot on ACDC (n = {results.get('data', {}).get('n_embedded')})")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


GROUP_COLOURS = {"DCM": "#c0392b", "HCM": "#8e44ad", "MINF": "#d35400", "NOR": "#27ae60", "RV": "#2980b9"}


def plot_real_embeddings(results: Mapping[str, Any], path: Path) -> Path:
    """2-D PCA of the ACDC embeddings, one panel per model, points coloured by diagnostic group."""
    models = {r: m for r, m in results.get("models", {}).items() if m.get("embedding_map")}
    group_of = {p["name"]: p["group"] for p in results.get("patients", [])}
    groups = [group_of[n] for n in results.get("embedded", [])]
    fig = _new_figure(4.2 * max(1, len(models)) + 1.2, 4.0)
    for j, (role, m) in enumerate(models.items()):
        ax = fig.add_subplot(1, len(models), j + 1)
        pts = np.asarray(m["embedding_map"]["points"], float).reshape(len(groups), -1)
        if pts.shape[1] < 2:
            pts = np.pad(pts, ((0, 0), (0, 2 - pts.shape[1])))
        for g in sorted(set(groups)):
            sel = np.array([x == g for x in groups])
            ax.scatter(pts[sel, 0], pts[sel, 1], s=22, label=g, color=GROUP_COLOURS.get(g))
        ax.ticklabel_format(style="sci", scilimits=(-2, 3))
        ev = m["embedding_map"].get("explained_variance", [])
        ax.set_xlabel(f"PC1 ({ev[0]:.0%})" if ev else "PC1")
        ax.set_ylabel(f"PC2 ({ev[1]:.0%})" if len(ev) > 1 else "PC2")
        ax.set_title(m.get("label", role), fontsize="medium")
    if models:
        fig.axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_real_docs(results: Mapping[str, Any], docs_dir: Path) -> list[Path]:
    """real-data.md and its two figures into `docs_dir`."""
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    md = docs_dir / "real-data.md"
    md.write_text(real_results_to_markdown(results))
    return [md, plot_real_zero_shot(results, docs_dir / FIG_ZERO_SHOT),
            plot_real_embeddings(results, docs_dir / FIG_EMBEDDINGS)]


__all__ = [
    "FORMAT", "KNN_KS", "PROBE_C", "PROBE_FOLDS", "PROBE_SEED", "RealEvalContext", "SECTION_PROVIDERS", "Section",
    "default_sections", "evaluate_embeddings", "group_chance", "knn_group_agreement", "plot_real_embeddings",
    "plot_real_zero_shot", "probe_auroc", "real_results_to_markdown", "run_real_evaluation", "synthetic_reference",
    "write_real_docs",
]
