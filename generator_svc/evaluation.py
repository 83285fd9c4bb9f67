"""Evaluation of the drafting modes on a test set (`cmr eval-drafts`): retrieval (the nearest indexed report),
consensus (what the k nearest agree on) and CMR-TARGET, scored against the reference impressions (BLEU-1..4,
ROUGE-L, METEOR) and clinically against the reference labels (per-finding F1 from the rule-based labeller,
disease accuracy, hallucination rate).

Retrieval is computed exactly as the search service does it, in process: the study's CMR-CLIP image
embedding against the text embeddings of the indexed impressions (the index = the training studies, so no
test report is ever retrieved). CMR-TARGET drafts from the frozen exam tokens, greedy unless asked otherwise.

The scores above are of the drafts as the modes write them. The stated numbers (LVEF, RVEF, volumes, mass)
are scored separately on the first `measure_studies` test studies, before and after grounding the drafts in
the segmenter's measurements, as the service does (`generator_svc.grounding_eval`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cmr.labels import FINDINGS
from cmr.reports import clinical_scores
from cmr.reports.text_metrics import BLEU_ORDERS, normalise, text_scores
from generator_svc.retrieval import Neighbour, consensus_draft, nearest_draft

MODES = ("retrieval", "consensus", "target")
LABELS = {"retrieval": "Retrieval (nearest report)", "consensus": "Consensus (k nearest)", "target": "CMR-TARGET"}


@dataclass(frozen=True)
class DraftSet:
    mode: str
    texts: list[str]


def _join(sentences: Sequence[str]) -> str:
    return " ".join(sentences)


def retrieval_drafts(image_emb: np.ndarray, report_emb: np.ndarray, impressions: Sequence[str],
                     keys: Sequence[str], k: int) -> tuple[list[str], list[str]]:
    """(nearest-report drafts, consensus drafts) of each query image embedding."""
    q = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    g = report_emb / np.linalg.norm(report_emb, axis=1, keepdims=True)
    scores = q @ g.T
    nearest, consensus = [], []
    for row in scores:
        top = np.argsort(-row)[:k]
        neighbours = [Neighbour(keys[j], impressions[j], float(row[j])) for j in top]
        nearest.append(_join([s.text for s in nearest_draft(neighbours[:1])]))
        consensus.append(_join([s.text for s in consensus_draft(neighbours)]))
    return nearest, consensus


def score_drafts(drafts: Sequence[str], references: Sequence[str], labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    text = text_scores(drafts, references)
    clinical = clinical_scores(list(drafts), list(labels))
    words = {"draft_words": float(np.mean([len(normalise(d).split()) for d in drafts])),
             "reference_words": float(np.mean([len(normalise(r).split()) for r in references]))}
    return {"text": {**text.to_dict(), **words}, "clinical": clinical.to_dict()}


DEFAULT_MEASURE_STUDIES = 100  # ~5 s of segmentation each on a CPU core (cached): minutes, not the whole test set


def evaluate(generator_checkpoint: Path, index_dir: Path, test_dir: Path, *, neighbours: int = 5,
             max_studies: int | None = None, decoding: str = "greedy", progress: bool = True,
             threads: int = 0, measure_studies: int = DEFAULT_MEASURE_STUDIES, segmenter: Path | None = None,
             measure_workers: int = 1) -> dict[str, Any]:
    """Drafts of every usable test study in each mode, and their scores; the stated numbers before and after
    grounding on the first `measure_studies` of them (0: not scored; -1: all)."""
    from cmr.data.cache import build_cache
    from cmr.generator import load_generator
    from cmr.generator.checkpoint import resolve_clip
    from cmr.generator.features import build_token_features
    from cmr.model.checkpoint import checkpoint_version, load_model
    from cmr.model.inference import embed_exam_arrays, embed_texts

    if threads:
        torch.set_num_threads(threads)
    gen = load_generator(generator_checkpoint)
    clip_path = resolve_clip(gen.config.clip)
    clip = load_model(clip_path)
    index = build_cache(index_dir, clip.spec, progress=progress)
    idx_ok = np.flatnonzero(index.ok)
    impressions = [index.records[i].impression for i in idx_ok]
    keys = [index.records[i].folder for i in idx_ok]
    report_emb = embed_texts(clip, impressions)

    feats = build_token_features(test_dir, clip, checkpoint_version(clip_path), progress=progress)
    test = build_cache(test_dir, clip.spec, progress=progress)
    ok = np.flatnonzero(feats.ok & test.ok)[: max_studies or None]
    records = [test.records[i] for i in ok]
    measured = test.measurements(clip.measurement_names)[ok] if clip.measurement_names else None
    image_emb = embed_exam_arrays(clip, test.pixels[ok], test.mask[ok], measurements=measured)
    nearest, consensus = retrieval_drafts(image_emb, report_emb, impressions, keys, neighbours)

    target: list[str] = []
    bar = tqdm(total=len(ok), desc=f"CMR-TARGET drafts ({decoding})", unit="study", disable=not progress)
    if decoding == "greedy":
        for s in range(0, len(ok), 64):
            b = ok[s : s + 64]
            tokens = torch.from_numpy(np.asarray(feats.tokens[b], dtype=np.float32))
            for report in gen.generate_batch(tokens, torch.from_numpy(feats.pad[b])):
                target.append(_join(report))
            bar.update(len(b))
    else:
        from cmr.generator import Decoding

        for i in ok:
            tokens = torch.from_numpy(np.asarray(feats.tokens[i], dtype=np.float32))
            target.append(_join(list(gen.generate(tokens, torch.from_numpy(feats.pad[i]),
                                                  Decoding(strategy=decoding, numbered=False)))))
            bar.update(1)
    bar.close()

    references = [r.impression for r in records]
    labels = [r.labels for r in records]
    drafts = {"retrieval": nearest, "consensus": consensus, "target": target}
    results: dict[str, Any] = {
        "generator": {"checkpoint": str(generator_checkpoint), "version": checkpoint_version(generator_checkpoint),
                      "clip_version": gen.clip_version, "decoding": decoding,
                      "plan_thresholds": gen.meta.get("plan_thresholds")},
        "index": {"dir": str(index_dir), "studies": len(idx_ok)},
        "test": {"dir": str(test_dir), "studies": len(ok)},
        "neighbours": neighbours,
        "modes": {m: score_drafts(drafts[m], references, labels) for m in MODES},
        "examples": [{"reference": references[i], **{m: drafts[m][i] for m in MODES}}
                     for i in _example_rows(labels)],
    }
    if measure_studies:
        from generator_svc import grounding_eval

        n = len(records) if measure_studies < 0 else min(measure_studies, len(records))
        results["grounding"] = grounding_eval.run(
            test_dir, [r.folder for r in records[:n]], {m: drafts[m][:n] for m in MODES}, labels[:n],
            checkpoint=segmenter, workers=measure_workers, progress=progress)
    return results


def _example_rows(labels: Sequence[dict[str, Any]]) -> list[int]:
    """A few studies worth reading: the first of several diseases."""
    rows, seen = [], set()
    for i, lab in enumerate(labels):
        d = lab.get("disease")
        if d not in seen:
            seen.add(d)
            rows.append(i)
        if len(rows) == 4:
            break
    return rows


# --- targets and report --------------------------------------------------------------------------------------

def _macro(results: dict[str, Any], mode: str) -> float:
    return float(results["modes"][mode]["clinical"]["macro_f1"] or 0.0)


def target_checks(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    m = results["modes"]
    t, r = m["target"], m["retrieval"]
    checks: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("BLEU-4", lambda x: x["text"]["bleu_4"]), ("ROUGE-L", lambda x: x["text"]["rouge_l"]),
        ("macro clinical F1", lambda x: x["clinical"]["macro_f1"] or 0.0)]
    out = [(f"CMR-TARGET beats retrieval on {name}", f"{get(t):.3f} vs {get(r):.3f}", get(t) > get(r))
           for name, get in checks]
    out.append(("CMR-TARGET macro clinical F1 >= 0.80", f"{_macro(results, 'target'):.3f}",
                _macro(results, "target") >= 0.80))
    th, rh = t["clinical"]["hallucination_rate"], r["clinical"]["hallucination_rate"]
    out.append(("CMR-TARGET states unsupported findings no more often than retrieval (hallucination rate)",
                f"{th:.3f} vs {rh:.3f}" if th is not None and rh is not None else "n/a",
                th is not None and rh is not None and th <= rh))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def write_report(results: dict[str, Any], out_dir: Path, machine: str) -> Path:
    """drafting.md, drafting.json and drafting.png (per-finding F1 and the language metrics by mode)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "drafting.json").write_text(json.dumps(results, indent=1))
    plot_path = out_dir / "drafting.png"
    _plot(results, plot_path)
    m = results["modes"]
    lines = [
        "# Report drafting: retrieval vs CMR-TARGET",
        "",
        f"Produced by `cmr eval-drafts` on {machine}. Test set: `{results['test']['dir']}` "
        f"({results['test']['studies']} studies, the held-out scanner style and phrasing); index for retrieval: "
        f"`{results['index']['dir']}` ({results['index']['studies']} training studies and their impressions). "
        f"CMR-TARGET `{results['generator']['version']}`, {results['generator']['decoding']} decoding, on "
        f"CMR-CLIP `{results['generator']['clip_version']}`. Consensus: k = {results['neighbours']}.",
        "",
        "## Targets",
        "",
        "| target | measured | status |",
        "| --- | --- | --- |",
        *[f"| {name} | {value} | {'met' if ok else '**not met**'} |" for name, value, ok in target_checks(results)],
        "",
        "## Language and clinical scores",
        "",
        "| mode | " + " | ".join(f"BLEU-{n}" for n in BLEU_ORDERS) + " | ROUGE-L | METEOR* | macro clinical F1 | "
        "disease accuracy | hallucination rate | words (reference) |",
        "| --- |" + " --- |" * (len(BLEU_ORDERS) + 6),
    ]
    for mode in MODES:
        t, c = m[mode]["text"], m[mode]["clinical"]
        lines.append(f"| {LABELS[mode]} | " + " | ".join(_fmt(t[f"bleu_{n}"]) for n in BLEU_ORDERS)
                     + f" | {_fmt(t['rouge_l'])} | {_fmt(t['meteor'])} | {_fmt(c['macro_f1'])} | "
                     f"{_fmt(c['disease_accuracy'])} | {_fmt(c['hallucination_rate'])} "
                     f"({c['hallucinated']}/{c['stated_present']}) | {t['draft_words']:.1f} "
                     f"({t['reference_words']:.1f}) |")
    lines += ["", "*METEOR with exact and stem matching, without WordNet synonyms (no corpus download at run time): "
              "comparable between these modes, not with published METEOR.", "",
              "Hallucination rate: of the findings a draft states present, the fraction the reference labels mark "
              "absent.", "", "## Clinical F1 per finding", "",
              "| finding | positives | " + " | ".join(LABELS[x] for x in MODES) + " |",
              "| --- | --- |" + " --- |" * len(MODES)]
    for f in FINDINGS:
        pf = {mode: m[mode]["clinical"]["per_finding"][f] for mode in MODES}
        lines.append(f"| {f} | {pf['target']['support']} | " + " | ".join(_fmt(pf[x]['f1']) for x in MODES) + " |")
    lines += ["", f"![per-finding F1 and language metrics]({plot_path.name})", ""]
    if results.get("grounding"):
        from generator_svc.grounding_eval import report_lines

        lines += report_lines(results["grounding"], LABELS)
    lines += ["## Examples", ""]
    for ex in results["examples"]:
        lines += [f"- **Reference:** {ex['reference']}"] + [f"  - *{LABELS[x]}:* {ex[x]}" for x in MODES] + [""]
    path = out_dir / "drafting.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = results["modes"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(len(FINDINGS))
    w = 0.27
    for j, mode in enumerate(MODES):
        f1 = [m[mode]["clinical"]["per_finding"][f]["f1"] or 0.0 for f in FINDINGS]
        a.bar(x + (j - 1) * w, f1, w, label=LABELS[mode])
    a.set_xticks(x, [f.replace("_", " ") for f in FINDINGS], rotation=30, ha="right")
    a.set_ylabel("clinical F1")
    a.set_ylim(0, 1)
    a.set_title("Clinical F1 per finding (held-out scanner style)")
    a.legend(fontsize=8)
    names = ["BLEU-1", "BLEU-4", "ROUGE-L", "METEOR", "macro F1"]
    vals = {mode: [m[mode]["text"]["bleu_1"], m[mode]["text"]["bleu_4"], m[mode]["text"]["rouge_l"],
                   m[mode]["text"]["meteor"], m[mode]["clinical"]["macro_f1"] or 0.0] for mode in MODES}
    x2 = np.arange(len(names))
    for j, mode in enumerate(MODES):
        b.bar(x2 + (j - 1) * w, vals[mode], w, label=LABELS[mode])
    b.set_xticks(x2, names, rotation=30, ha="right")
    b.set_ylim(0, 1)
    b.set_title("Language metrics")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["MODES", "evaluate", "retrieval_drafts", "score_drafts", "target_checks", "write_report"]
