"""Training CMR-TARGET: teacher forcing on the report token stream, conditioned on cached frozen CMR-CLIP
exam tokens; AdamW with warmup + cosine decay over the run's budget (epochs or minutes, whichever ends
first); validation loss and the clinical scores of greedy drafts (cmr.reports.clinical_scores) every
`val_generate_every` epochs; early stopping on validation loss; best.pt (lowest validation loss) / last.pt
(every epoch, with the optimizer) checkpoints, `resume`, and a metrics.csv log:

    epoch, step, train_loss (token cross-entropy, label-smoothed), train_findings_loss (auxiliary), val_loss
    (token cross-entropy), val_macro_f1, val_hallucination_rate, val_disease_accuracy, lr, elapsed_s

Auxiliary loss (`findings_weight`): the findings and disease each training impression states, read by the
rule-based labeller (so any hospital's report text supplies them), predicted from the exam's conditioning
vector; it makes the image features the decoder sees finding-shaped early in training.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cmr.data.records import StudyRecord
from cmr.generator.checkpoint import (
    GeneratorCheckpointError,
    generator_from_payload,
    load_exam_encoder,
    read_generator_checkpoint,
    resolve_clip,
    save_generator,
)
from cmr.generator.config import TargetConfig
from cmr.generator.decoder import ReportDecoder, collate, stream_positions
from cmr.generator.decoding import greedy_batch
from cmr.generator.features import TokenFeatures, build_token_features
from cmr.generator.plan import (
    apply_thresholds,
    reader_probabilities,
    remaining_after,
    report_plans,
    truth_matrix,
    tune_thresholds,
)
from cmr.generator.targets import finding_targets
from cmr.generator.vocab import BOS, EOR, PAD, SEP, ReportVocab
from cmr.labels import FINDINGS
from cmr.train.loop import batches, lr_factor, split  # the same split rule, batches and schedule as `cmr train`
from cmr.train.trainer import TrainingError

STATE_FILE = "last.pt"
BEST_FILE = "best.pt"
METRICS_FILE = "metrics.csv"
_STREAM = tuple[list[int], list[int], list[int], list[int]]


class GeneratorTrainingError(TrainingError):
    pass


@dataclass
class GeneratorTrainResult:
    best_checkpoint: Path
    epochs: int
    best_val_loss: float
    best_val_macro_f1: float | None  # clinical macro F1 of the best checkpoint's greedy drafts (if measured)
    stopped: str  # "epochs", "time", "early_stopping"
    elapsed_s: float
    n_train: int
    n_val: int
    clip_version: str


def _param_groups(decoder: ReportDecoder, cfg: TargetConfig) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in decoder.named_parameters():
        (no_decay if p.ndim < 2 or "emb" in name else decay).append(p)
    t = cfg.train
    return [{"params": decay, "weight_decay": t.weight_decay, "lr": t.lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": t.lr}]


def _length_batches(idx: np.ndarray, lengths: dict[int, int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar report lengths (less padding: reports run from 10 to 190 tokens): a random
    order, sorted by length inside windows of 16 batches, cut into batches, and the batches shuffled."""
    order = rng.permutation(idx)
    window = batch_size * 16
    for s in range(0, len(order), window):
        chunk = order[s : s + window]
        order[s : s + window] = chunk[np.argsort([lengths[int(i)] for i in chunk], kind="stable")]
    cut = batches(order, batch_size, None, drop_last=True)
    return [cut[j] for j in rng.permutation(len(cut))]


def _memory(feats: TokenFeatures, idx: np.ndarray, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    srt = np.sort(idx)  # memmap reads in file order, then back to batch order
    inv = np.argsort(np.argsort(idx))
    tok = torch.from_numpy(np.ascontiguousarray(np.asarray(feats.tokens[srt])[inv])).to(dev).float()
    return tok, torch.from_numpy(feats.pad[idx]).to(dev)


def _reference(rec: StudyRecord) -> Any:
    """Ground-truth labels when the record has them all, else the written impression (labelled by rule)."""
    return rec.labels if all(f in rec.labels for f in FINDINGS) else rec.impression


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path

    def row(self, **kv: Any) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(kv))
            if new:
                w.writeheader()
            w.writerow({k: "" if v is None else v for k, v in kv.items()})


def _plans(plans: dict[int, np.ndarray] | None, b: np.ndarray, dev: torch.device) -> torch.Tensor | None:
    """[B, max_sentences + 1, PLAN_SIZE]: per report, what is still to be said at each sentence."""
    return None if plans is None else torch.from_numpy(np.stack([plans[int(i)] for i in b])).to(dev)


@torch.no_grad()
def evaluate_loss(decoder: ReportDecoder, feats: TokenFeatures, idx: np.ndarray, streams: dict[int, _STREAM],
                  dev: torch.device, batch_size: int = 64, plans: dict[int, np.ndarray] | None = None) -> float:
    """Mean token cross-entropy (no label smoothing, no dropout) of the reports `idx` (written from `plans`,
    the reports' own, when the decoder takes a plan)."""
    decoder.eval()
    total, count = 0.0, 0
    for b in batches(idx, batch_size, None, drop_last=False):
        mem, pad = _memory(feats, b, dev)
        tok, sent, pos, tgt = (x.to(dev) for x in collate([streams[int(i)] for i in b]))
        logits = decoder(tok, sent, pos, mem, pad, plan=_plans(plans, b, dev))
        total += float(F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD, reduction="sum"))
        count += int((tgt != PAD).sum())
    return total / max(1, count)


@torch.no_grad()
def evaluate_drafts(decoder: ReportDecoder, vocab: ReportVocab, cfg: TargetConfig, feats: TokenFeatures,
                    idx: np.ndarray, dev: torch.device, batch_size: int = 64) -> dict[str, float | None]:
    """Clinical scores of greedy drafts of the studies `idx` against their labels (or impressions)."""
    from cmr.reports import clinical_scores

    def replan(plan: torch.Tensor, ids: list[int]) -> torch.Tensor:
        return remaining_after(plan, vocab.decode(ids))

    texts: list[str] = []
    for b in batches(idx, batch_size, None, drop_last=False):
        mem, pad = _memory(feats, b, dev)
        for report in greedy_batch(decoder, mem, pad, cfg.model.max_sentences, cfg.model.max_tokens, replan):
            texts.append(vocab.format_report([vocab.decode(s) for s in report]))
    scores = clinical_scores(texts, [_reference(feats.records[int(i)]) for i in idx])
    return {"macro_f1": scores.macro_f1, "hallucination_rate": scores.hallucination_rate,
            "disease_accuracy": scores.disease_accuracy}


def _r(x: float | None, nd: int = 5) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def train_generator(cfg: TargetConfig, data_dir: Path, out: Path, resume: bool = False, *, workers: int = 0,
                    progress: bool = True, device: str | None = None) -> GeneratorTrainResult:
    """Train CMR-TARGET on the studies and impressions of `data_dir`; checkpoints and metrics go to `out`."""
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, Path(data_dir), Path(out), resume, workers, progress, device)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TargetConfig, data_dir: Path, out: Path, resume: bool, workers: int, progress: bool,
           device: str | None) -> GeneratorTrainResult:
    from cmr.model.checkpoint import CheckpointError, checkpoint_version

    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise GeneratorTrainingError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not state_path.exists():
        raise GeneratorTrainingError(f"nothing to resume: {state_path} does not exist")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t = cfg.train

    try:
        clip_path = resolve_clip(cfg.clip)
    except FileNotFoundError as exc:
        raise GeneratorTrainingError(str(exc)) from exc
    clip_version = checkpoint_version(clip_path)
    st: dict[str, Any] | None = None
    if resume:
        try:
            st = read_generator_checkpoint(state_path)
        except GeneratorCheckpointError as exc:
            raise GeneratorTrainingError(str(exc)) from exc
        if "train_state" not in st:
            raise GeneratorTrainingError(f"{state_path} holds no training state to resume from")
        if st["clip_version"] != clip_version:
            raise GeneratorTrainingError(
                f"{state_path} was trained on CMR-CLIP {st['clip_version']}, but the config's CLIP ({cfg.clip}) is "
                f"{clip_version}: a resumed run must keep its CLIP model; start a new --out to train on this one")
        if st["config"].get("model") != asdict(cfg.model):
            raise GeneratorTrainingError(f"{state_path} was trained with another decoder config; resume it with the same --config")
    out.mkdir(parents=True, exist_ok=True)

    try:
        encoder = load_exam_encoder(clip_path, dev)  # the frozen image side only: no text backbone to load
    except CheckpointError as exc:
        raise GeneratorTrainingError(str(exc)) from exc
    feats = build_token_features(data_dir, encoder, clip_version, workers=workers, batch_size=t.feature_batch_size,
                                 progress=progress)
    del encoder
    ok = np.flatnonzero(feats.ok)
    if len(ok) < 2:
        raise GeneratorTrainingError(f"{data_dir}: only {len(ok)} usable studies")
    tr, va = split(len(ok), t.val_fraction, t.seed)
    train_idx, val_idx = ok[tr], ok[va]
    records = feats.records

    vocab = (ReportVocab.from_dict(st["vocab"]) if st is not None
             else ReportVocab.build(cfg.model.tokenizer, [records[int(i)].impression for i in train_idx]))
    streams: dict[int, _STREAM] = {}
    for i in np.concatenate([train_idx, val_idx]):
        sentences = vocab.encode_report(records[int(i)].impression, cfg.model.max_sentences, cfg.model.max_tokens)
        streams[int(i)] = stream_positions(sentences, BOS, SEP, EOR)

    lengths = {i: len(v[0]) for i, v in streams.items()}
    aux = {int(i): finding_targets(records[int(i)]) for i in train_idx} if t.findings_weight > 0 else {}
    plans = None
    if cfg.model.plan:
        rows = cfg.model.max_sentences + 1
        plans = {i: report_plans([vocab.decode(ids) for ids in vocab.encode_report(
            records[i].impression, cfg.model.max_sentences, cfg.model.max_tokens)], rows) for i in streams}

    torch.manual_seed(t.seed)
    decoder = ReportDecoder(cfg.model, len(vocab), int(feats.tokens.shape[-1])).to(dev)
    opt = torch.optim.AdamW(_param_groups(decoder, cfg), betas=(0.9, 0.98), eps=1e-6)
    epoch, step, elapsed, best, bad = 0, 0, 0.0, float("inf"), 0
    best_f1: float | None = None
    if st is not None:
        decoder.load_state_dict(st["state"])
        ts = st["train_state"]
        opt.load_state_dict(ts["optimizer"])
        epoch, step, elapsed, best, bad, best_f1 = (ts["epoch"], ts["step"], ts["elapsed"], ts["best"], ts["bad"],
                                                    ts.get("best_f1"))
        if progress:
            print(f"resuming {out} at epoch {epoch} (step {step}, best val loss {best:.4f})")

    steps_per_epoch = max(1, len(train_idx) // t.batch_size)
    total_steps = t.epochs * steps_per_epoch
    budget_s = t.max_minutes * 60.0
    log = _Log(out / METRICS_FILE)
    stopped = "epochs"
    t0 = time.perf_counter() - elapsed
    gen_every = t.val_generate_every if len(val_idx) else 0
    gen_idx = val_idx[: t.val_generate_max]

    def progress_now() -> float:
        p = step / max(1, total_steps)
        if budget_s > 0:
            p = max(p, (time.perf_counter() - t0) / budget_s)
        return p

    def save(path: Path, meta: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        save_generator(path, decoder, vocab, cfg, clip_version,
                       meta={**meta, "clip_path": str(clip_path), "data_dir": str(data_dir)}, extra=extra)

    while epoch < t.epochs:
        decoder.train()
        rng = np.random.default_rng(t.seed + epoch)
        losses: list[float] = []  # token cross-entropy (as trained: with label smoothing)
        aux_losses: list[float] = []
        bar = tqdm(_length_batches(train_idx, lengths, t.batch_size, rng), desc=f"epoch {epoch + 1}/{t.epochs}",
                   unit="batch", disable=not progress, leave=False)
        for b in bar:
            mem, pad = _memory(feats, b, dev)
            if t.memory_drop > 0:  # hide some frames from cross-attention (never the CLS token)
                drop = torch.rand(pad.shape, device=dev) < t.memory_drop
                drop[:, 0] = False
                pad = pad | drop
            mem_seen, pad_seen = mem, pad  # what the finding reader reads: never blinded
            if t.image_drop > 0 and plans is not None:  # some reports: no image at all, only the plan
                blind = torch.rand(pad.shape[0], device=dev) < t.image_drop
                mem = mem.masked_fill(blind[:, None, None], 0.0)
                pad = pad | (blind[:, None] & (torch.arange(pad.shape[1], device=dev) > 0)[None])
            tok, sent, pos, tgt = (x.to(dev) for x in collate([streams[int(i)] for i in b]))
            for g in opt.param_groups:
                g["lr"] = t.lr * lr_factor(progress_now(), step, t.warmup_steps)
            plan = _plans(plans, b, dev)
            if plan is None:
                logits, finding_logits = decoder(tok, sent, pos, mem, pad, with_findings=True)
            else:
                logits = decoder(tok, sent, pos, mem, pad, plan=plan)
                finding_logits = decoder.read_findings(mem_seen, pad_seen)
            token_loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD,
                                         label_smoothing=t.label_smoothing)
            loss = token_loss
            if t.findings_weight > 0:
                present = torch.tensor([aux[int(i)][0] for i in b], device=dev)
                disease = torch.tensor([aux[int(i)][1] for i in b], device=dev)
                nf = len(FINDINGS)
                aux_loss = F.binary_cross_entropy_with_logits(finding_logits[:, :nf], present)
                if bool((disease >= 0).any()):
                    aux_loss = aux_loss + F.cross_entropy(finding_logits[:, nf:], disease, ignore_index=-100)
                loss = loss + t.findings_weight * aux_loss
                aux_losses.append(float(aux_loss.detach()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(decoder.parameters(), t.grad_clip)
            opt.step()
            step += 1
            losses.append(float(token_loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if budget_s > 0 and time.perf_counter() - t0 >= budget_s:
                stopped = "time"
                break
        bar.close()
        epoch += 1
        val = evaluate_loss(decoder, feats, val_idx, streams, dev, plans=plans) if len(val_idx) else float("nan")
        clinical: dict[str, float | None] = {"macro_f1": None, "hallucination_rate": None, "disease_accuracy": None}
        if gen_every and epoch % gen_every == 0:
            clinical = evaluate_drafts(decoder, vocab, cfg, feats, gen_idx, dev)
        improved = len(val_idx) == 0 or val < best - 1e-4
        if improved:
            best, bad, best_f1 = (val if len(val_idx) else best), 0, clinical["macro_f1"]
            save(out / BEST_FILE, {"epoch": epoch, "step": step, "val_loss": _r(val),
                                   "val_macro_f1": _r(clinical["macro_f1"])})
        else:
            bad += 1
        elapsed = time.perf_counter() - t0
        train_loss = float(np.mean(losses)) if losses else float("nan")
        log.row(epoch=epoch, step=step, train_loss=_r(train_loss),
                train_findings_loss=_r(float(np.mean(aux_losses))) if aux_losses else None, val_loss=_r(val),
                val_macro_f1=_r(clinical["macro_f1"], 4), val_hallucination_rate=_r(clinical["hallucination_rate"], 4),
                val_disease_accuracy=_r(clinical["disease_accuracy"], 4), lr=opt.param_groups[0]["lr"],
                elapsed_s=round(elapsed, 1))
        if progress:
            f1 = clinical["macro_f1"]
            print(f"epoch {epoch}: train loss {train_loss:.4f}  val loss {val:.4f}"
                  f"{'' if f1 is None else f'  val clinical F1 {f1:.3f}'}{'  *' if improved else ''}"
                  f"  ({elapsed / 60:.1f} min)")
        save(state_path, {"epoch": epoch, "step": step, "val_loss": _r(val)},
             extra={"train_state": {"optimizer": opt.state_dict(), "epoch": epoch, "step": step, "elapsed": elapsed,
                                    "best": best, "bad": bad, "best_f1": best_f1}})
        if stopped == "time":
            break
        if bad >= t.patience:
            stopped = "early_stopping"
            break
        if budget_s > 0 and elapsed >= budget_s:
            stopped = "time"
            break
    if cfg.model.plan and len(val_idx) and (out / BEST_FILE).exists():
        _tune_best(out / BEST_FILE, feats, val_idx, dev)
    return GeneratorTrainResult(out / BEST_FILE, epoch, best, best_f1, stopped, time.perf_counter() - t0,
                                len(train_idx), len(val_idx), clip_version)


def _tune_best(path: Path, feats: TokenFeatures, val_idx: np.ndarray, dev: torch.device) -> None:
    """The best checkpoint's plan thresholds, tuned on the validation split (`cmr train-generator
    --tune-data` retunes them on a larger held-out set)."""
    payload = read_generator_checkpoint(path)
    gen = generator_from_payload(payload, str(path))
    gen.decoder.to(dev)
    tuned = tune_thresholds(reader_probabilities(gen.decoder, feats, val_idx, dev),
                            truth_matrix(feats.records, val_idx), source="validation split")
    apply_thresholds(gen.decoder, tuned)
    save_generator(path, gen.decoder, gen.vocab, gen.config, gen.clip_version,
                   meta={**gen.meta, "plan_thresholds": tuned.to_dict()})
