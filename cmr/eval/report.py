"""Render CMR-CLIP evaluation results as a markdown report and figures, next to the paper's published numbers.

Results dict schema (JSON-compatible; written by the evaluation run, read here):

    {
      "primary": "<entry name>",            # the entry the target checks are computed on (held-out-style set)
      "entries": {
        "<entry name>": {                   # e.g. "cmr-clip-small / heldout-style"; one model on one test set
          "model": "cmr-clip-small",
          "test_set": "heldout-style",
          "n_studies": 1000,
          "zero_shot": {                    # key: a finding of cmr.labels.FINDINGS, or "disease:<name>"
            "<key>": {"auroc": float | None, "ci": [lo, hi] | None, "n_pos": int}
          },
          "few_shot": {                     # optional; metrics.few_shot() output per finding, k as str or int
            "<finding>": {"<k>": {"prototype": {"mean": float, "std": float, "n_draws": int},
                                  "linear":    {"mean": float, "std": float, "n_draws": int}}}
          },
          "retrieval": {                    # optional; metrics.retrieval() | metrics.clinical_match()
            "image_to_text": {"R@1", "R@5", "R@10", "median_rank", "mean_rank", "n",
                              "match@k", "precision@k", "chance_precision", "chance_match", "k"},
            "text_to_image": {...same keys...}
          },
          "robustness": {                   # optional; mean cosine, perturbed vs intact exam embedding
            "shuffle_frames": float, "drop_25pct_frames": float,
            "drop_view": {"<slot>": float}, "drop_view_mean": float
          }
        }
      },
      "meta": {...}                         # free-form: checkpoint, data, time, machine
    }

Missing optional sections are simply left out of the report. matplotlib is imported inside the plot functions
(Agg canvas, no pyplot state) so that importing cmr.eval stays light for services that only need metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cmr.eval.paper import PAPER_FEW_SHOT_LV_DYSFUNCTION, PAPER_ZERO_SHOT_AUC, PAPER_ZERO_SHOT_MEAN
from cmr.labels import DISEASES, FINDINGS, PAPER_FINDINGS

__all__ = [
    "DISPLAY_NAMES",
    "TargetCheck",
    "display_name",
    "paper_findings_few_shot",
    "paper_findings_zero_shot_mean",
    "plot_few_shot",
    "plot_zero_shot",
    "results_to_markdown",
    "target_checks",
]

Results = Mapping[str, Any]

DISPLAY_NAMES: Final[dict[str, str]] = {
    "lv_dysfunction": "LV dysfunction",
    "rv_dysfunction": "RV dysfunction",
    "lv_dilation": "LV dilation",
    "rv_dilation": "RV dilation",
    "lv_hypertrophy": "LV hypertrophy",
    "lge": "LGE present",
    "aortic_dilation": "Aortic dilation",
    "la_enlargement": "LA enlargement",
    "pericardial_effusion": "Pericardial effusion",
    "disease:normal": "Normal study",
    "disease:ischemic": "Ischemic cardiomyopathy",
    "disease:nicm": "Non-ischemic dilated CM",
    "disease:hcm": "HCM",
    "disease:amyloidosis": "Amyloidosis",
    "disease:myocarditis": "Myocarditis",
    "disease:pulmonary_hypertension": "Pulmonary hypertension",
    "disease:arvc": "ARVC",
}

# Targets of this project (not the paper's numbers, which these deliberately exceed).
TARGET_ZERO_SHOT_MEAN: Final[float] = 0.90
TARGET_ZERO_SHOT_MIN: Final[float] = 0.80
TARGET_FEW_SHOT_32_PROTOTYPE: Final[float] = 0.93
TARGET_TEXT_TO_IMAGE_MATCH10: Final[float] = 0.80

CLASSIFIERS: Final[tuple[str, ...]] = ("prototype", "linear")
DIRECTION_NAMES: Final[dict[str, str]] = {"image_to_text": "Image → text", "text_to_image": "Text → image"}
NA = "–"


def display_name(key: str) -> str:
    """Human-readable name of a zero-shot key (a finding or "disease:<name>"); unknown keys are prettified."""
    if key in DISPLAY_NAMES:
        return DISPLAY_NAMES[key]
    return key.removeprefix("disease:").replace("_", " ").capitalize()


def _fmt(x: float | None, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NA
    return f"{x:.{nd}f}"


def _entries(results: Results) -> Mapping[str, Mapping[str, Any]]:
    entries = results.get("entries", {})
    if not isinstance(entries, Mapping):
        raise ValueError("results['entries'] must be a mapping of entry name -> entry")
    return entries


def _primary(results: Results) -> tuple[str, Mapping[str, Any]]:
    name = results.get("primary")
    entries = _entries(results)
    if name not in entries:
        raise ValueError(f"results['primary'] = {name!r} is not one of the entries {sorted(entries)}")
    return str(name), entries[name]


def _auroc_of(entry: Mapping[str, Any], key: str) -> float | None:
    cell = entry.get("zero_shot", {}).get(key)
    if not cell or cell.get("auroc") is None:
        return None
    return float(cell["auroc"])


def _zero_shot_keys(results: Results) -> list[str]:
    """Zero-shot keys present in any entry: paper findings (paper order), other findings, diseases, rest."""
    present: set[str] = set()
    for e in _entries(results).values():
        present.update(e.get("zero_shot", {}))
    known = [*PAPER_FINDINGS, *(f for f in FINDINGS if f not in PAPER_FINDINGS)]
    known += [f"disease:{d}" for d in DISEASES]
    ordered = [k for k in known if k in present]
    return ordered + sorted(present - set(ordered))


def paper_findings_zero_shot_mean(entry: Mapping[str, Any]) -> tuple[float | None, int]:
    """Mean zero-shot AUROC over the paper's seven findings that have one, and how many had one."""
    vals = [v for f in PAPER_FINDINGS if (v := _auroc_of(entry, f)) is not None]
    return (sum(vals) / len(vals) if vals else None), len(vals)


def _curve(fs_finding: Mapping[Any, Any], clf: str) -> dict[int, tuple[float, float]]:
    """{k: (mean, std)} of one classifier; accepts int keys (few_shot()) or str keys (after JSON)."""
    out: dict[int, tuple[float, float]] = {}
    for k, per in fs_finding.items():
        if clf in per:
            out[int(k)] = (float(per[clf]["mean"]), float(per[clf]["std"]))
    return dict(sorted(out.items()))


def paper_findings_few_shot(entry: Mapping[str, Any], clf: str) -> dict[int, tuple[float, float, int]]:
    """{k: (mean AUROC, mean draw std, n findings)} over the paper findings measured at k for one classifier.

    The std is the average of the per-finding draw-to-draw stds (a typical spread of one finding's estimate),
    not the spread between findings.
    """
    acc: dict[int, list[tuple[float, float]]] = {}
    fs = entry.get("few_shot", {})
    for f in PAPER_FINDINGS:
        for k, ms in _curve(fs.get(f, {}), clf).items():
            acc.setdefault(k, []).append(ms)
    return {
        k: (sum(m for m, _ in v) / len(v), sum(s for _, s in v) / len(v), len(v))
        for k, v in sorted(acc.items())
    }


@dataclass(frozen=True)
class TargetCheck:
    """One project target evaluated on the primary entry."""

    name: str
    threshold: float
    value: float | None  # measured; None when not measured
    passed: bool
    detail: str = ""

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        extra = f" ({self.detail})" if self.detail else ""
        return f"- **{status}** {self.name} >= {self.threshold:.2f}: measured {_fmt(self.value)}{extra}"


def target_checks(results: Results) -> list[TargetCheck]:
    """The project's four targets on results["primary"]. A target whose inputs are incomplete FAILs."""
    _, e = _primary(results)
    checks: list[TargetCheck] = []
    n_paper = len(PAPER_FINDINGS)

    mean, n = paper_findings_zero_shot_mean(e)
    missing = [display_name(f) for f in PAPER_FINDINGS if _auroc_of(e, f) is None]
    miss = f"missing: {', '.join(missing)}" if missing else ""
    checks.append(TargetCheck(
        f"Mean zero-shot AUROC over the {n_paper} paper findings", TARGET_ZERO_SHOT_MEAN, mean,
        mean is not None and n == n_paper and mean >= TARGET_ZERO_SHOT_MEAN, miss,
    ))

    vals = {f: v for f in PAPER_FINDINGS if (v := _auroc_of(e, f)) is not None}
    worst = min(vals, key=lambda f: vals[f]) if vals else None
    low = vals[worst] if worst is not None else None
    detail = f"lowest: {display_name(worst)}" if worst is not None else ""
    if missing:
        detail = "; ".join(x for x in (detail, miss) if x)
    checks.append(TargetCheck(
        f"Lowest zero-shot AUROC of the {n_paper} paper findings", TARGET_ZERO_SHOT_MIN, low,
        low is not None and not missing and low >= TARGET_ZERO_SHOT_MIN, detail,
    ))

    proto = paper_findings_few_shot(e, "prototype").get(32)
    fs_val = proto[0] if proto else None
    fs_n = proto[2] if proto else 0
    detail = "not measured" if proto is None else (f"{fs_n}/{n_paper} findings" if fs_n < n_paper else "")
    checks.append(TargetCheck(
        f"32-shot prototype AUROC, mean over the {n_paper} paper findings", TARGET_FEW_SHOT_32_PROTOTYPE,
        fs_val, fs_val is not None and fs_n == n_paper and fs_val >= TARGET_FEW_SHOT_32_PROTOTYPE, detail,
    ))

    t2i = e.get("retrieval", {}).get("text_to_image", {})
    m10 = t2i.get("match@k")
    k = t2i.get("k")
    ok_k = k is not None and int(k) == 10
    detail = "not measured" if m10 is None else ("" if ok_k else f"measured at k={k}, not 10")
    checks.append(TargetCheck(
        "Text → image clinical match@10", TARGET_TEXT_TO_IMAGE_MATCH10,
        None if m10 is None else float(m10),
        m10 is not None and ok_k and float(m10) >= TARGET_TEXT_TO_IMAGE_MATCH10, detail,
    ))
    return checks


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _zero_shot_cell(entry: Mapping[str, Any], key: str) -> str:
    cell = entry.get("zero_shot", {}).get(key)
    if not cell:
        return NA
    text = _fmt(cell.get("auroc"))
    ci = cell.get("ci")
    if ci is not None and cell.get("auroc") is not None:
        text += f" [{ci[0]:.3f}–{ci[1]:.3f}]"
    if cell.get("n_pos") is not None:
        text += f" ({int(cell['n_pos'])}+)"
    return text


def _zero_shot_section(results: Results) -> list[str]:
    entries = _entries(results)
    keys = _zero_shot_keys(results)
    if not keys:
        return []
    names = list(entries)
    header = ["Finding", *(f"`{n}`" for n in names), "Paper internal", "Paper external"]
    rows: list[list[str]] = []

    def paper_cols(key: str) -> list[str]:
        p = PAPER_ZERO_SHOT_AUC.get(key)
        return [_fmt(p[0]), _fmt(p[1])] if p else [NA, NA]

    paper_keys = [k for k in keys if k in PAPER_FINDINGS]
    for key in paper_keys:
        rows.append([display_name(key), *(_zero_shot_cell(entries[n], key) for n in names), *paper_cols(key)])
    mean_cells = []
    for n in names:
        m, cnt = paper_findings_zero_shot_mean(entries[n])
        partial = m is not None and cnt < len(PAPER_FINDINGS)
        mean_cells.append(_fmt(m) + (f" ({cnt}/{len(PAPER_FINDINGS)})" if partial else ""))
    rows.append([f"**Mean of the {len(PAPER_FINDINGS)} paper findings**", *mean_cells,
                 _fmt(PAPER_ZERO_SHOT_MEAN[0]), _fmt(PAPER_ZERO_SHOT_MEAN[1])])
    for key in keys:
        if key not in PAPER_FINDINGS:
            rows.append([display_name(key), *(_zero_shot_cell(entries[n], key) for n in names), NA, NA])
    return [
        "## Zero-shot AUROC",
        "",
        "Cells: AUROC [95% bootstrap CI] (positives). Diseases are one-vs-rest.",
        "",
        *_table(header, rows),
        "",
    ]


def _ms(x: tuple[float, float] | tuple[float, float, int] | None) -> str:
    return NA if x is None else f"{x[0]:.3f} ± {x[1]:.3f}"


def _few_shot_section(results: Results) -> list[str]:
    out: list[str] = []
    for name, e in _entries(results).items():
        fs = e.get("few_shot")
        if not fs:
            continue
        mean_curves = {c: paper_findings_few_shot(e, c) for c in CLASSIFIERS}
        lv = {c: _curve(fs.get("lv_dysfunction", {}), c) for c in CLASSIFIERS}
        ks = sorted({k for c in CLASSIFIERS for k in (*mean_curves[c], *lv[c])}
                    | set(PAPER_FEW_SHOT_LV_DYSFUNCTION))
        header = ["k (per class)", "Paper findings mean: prototype", "Paper findings mean: linear",
                  "LV dysfunction: prototype", "LV dysfunction: linear", "Paper LV dysfunction (prototype)"]
        rows = []
        for k in ks:
            means = []
            for c in CLASSIFIERS:
                v = mean_curves[c].get(k)
                cell = _ms(v)
                if v is not None and v[2] < len(PAPER_FINDINGS):
                    cell += f" ({v[2]}/{len(PAPER_FINDINGS)})"
                means.append(cell)
            rows.append([str(k), *means, _ms(lv["prototype"].get(k)), _ms(lv["linear"].get(k)),
                         _fmt(PAPER_FEW_SHOT_LV_DYSFUNCTION.get(k))])
        out += [f"### `{name}`", "",
                "AUROC mean ± std over draws (std of the mean row: average per-finding std).", "",
                *_table(header, rows), ""]

        findings = [f for f in (*PAPER_FINDINGS, *FINDINGS) if f in fs]
        findings = list(dict.fromkeys(findings)) + sorted(set(fs) - set(findings))
        all_ks = sorted({k for f in findings for c in CLASSIFIERS for k in _curve(fs[f], c)})
        rows = []
        for f in findings:
            curves = {c: _curve(fs[f], c) for c in CLASSIFIERS}
            cells = []
            for k in all_ks:
                p, li = curves["prototype"].get(k), curves["linear"].get(k)
                cells.append(NA if p is None and li is None else
                             f"{_fmt(p[0] if p else None)} / {_fmt(li[0] if li else None)}")
            rows.append([display_name(f), *cells])
        out += ["Per finding, mean AUROC prototype / linear:", "",
                *_table(["Finding", *(f"k={k}" for k in all_ks)], rows), ""]
    return ["## Few-shot AUROC (balanced k positives + k negatives)", "", *out] if out else []


def _retrieval_section(results: Results) -> list[str]:
    rows = []
    for name, e in _entries(results).items():
        for direction, r in e.get("retrieval", {}).items():
            rows.append([
                f"`{name}`", DIRECTION_NAMES.get(direction, direction.replace("_", " ")),
                str(r.get("n", NA)), _fmt(r.get("R@1")), _fmt(r.get("R@5")), _fmt(r.get("R@10")),
                _fmt(r.get("median_rank"), 1), str(r.get("k", NA)), _fmt(r.get("match@k")),
                _fmt(r.get("precision@k")), _fmt(r.get("chance_match")), _fmt(r.get("chance_precision")),
            ])
    if not rows:
        return []
    header = ["Entry", "Direction", "n", "R@1", "R@5", "R@10", "Median rank", "k", "Clinical match@k",
              "Precision@k", "Chance match@k", "Chance precision@k"]
    return ["## Retrieval", "",
            "Clinical match: a retrieved study has exactly the query study's finding vector.", "",
            *_table(header, rows), ""]


def _robustness_section(results: Results) -> list[str]:
    entries = {n: e["robustness"] for n, e in _entries(results).items() if e.get("robustness")}
    if not entries:
        return []
    slots = sorted({s for r in entries.values() for s in r.get("drop_view", {})})
    header = ["Entry", "Shuffle frames", "Drop 25% frames", "Drop view (mean)", *(f"Drop {s}" for s in slots)]
    rows = [[f"`{n}`", _fmt(r.get("shuffle_frames")), _fmt(r.get("drop_25pct_frames")),
             _fmt(r.get("drop_view_mean")), *(_fmt(r.get("drop_view", {}).get(s)) for s in slots)]
            for n, r in entries.items()]
    return ["## Robustness", "",
            "Mean cosine between the embeddings of the perturbed and the intact exam.", "",
            *_table(header, rows), ""]


def results_to_markdown(results: Results) -> str:
    """The full markdown report: entries, zero-shot, few-shot, retrieval, robustness, target checks, meta."""
    primary, _ = _primary(results)
    lines = ["# CMR-CLIP evaluation", ""]
    for name, e in _entries(results).items():
        star = " (primary)" if name == primary else ""
        lines.append(f"- `{name}`{star}: model {e.get('model', NA)}, test set {e.get('test_set', NA)}, "
                     f"{e.get('n_studies', NA)} studies")
    lines.append("")
    lines += _zero_shot_section(results)
    lines += _few_shot_section(results)
    lines += _retrieval_section(results)
    lines += _robustness_section(results)
    lines += [f"## Targets (on `{primary}`)", "", *(c.line() for c in target_checks(results)), ""]
    meta = results.get("meta")
    if meta:
        lines += ["## Run", ""]
        for k, v in meta.items():
            lines.append(f"- {k}: {v if isinstance(v, str | int | float) else json.dumps(v, default=str)}")
        lines.append("")
    return "\n".join(lines)


def _new_figure(width: float, height: float) -> Any:
    # A bare Figure on an Agg canvas: no pyplot global state, no display needed, safe in threads and servers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    return p


def plot_zero_shot(results: Results, path: str | Path) -> Path:
    """Grouped horizontal bars of zero-shot AUROC per finding/disease, one bar per entry (with CI whiskers),
    the paper's internal/external AUROC as markers and chance (0.5) dashed. Writes a PNG; returns its path."""
    entries = _entries(results)
    keys = _zero_shot_keys(results)
    names = list(entries)
    fig = _new_figure(10.0, 1.5 + max(1, len(keys)) * (0.25 + 0.15 * max(1, len(names))))
    ax = fig.add_subplot()
    bar_h = 0.8 / max(1, len(names))
    lowest = 0.5
    for j, name in enumerate(names):
        ys, xs, errs = [], [], [[], []]
        for i, key in enumerate(keys):
            cell = entries[name].get("zero_shot", {}).get(key) or {}
            if cell.get("auroc") is None:
                continue
            a = float(cell["auroc"])
            ci = cell.get("ci") or [a, a]
            ys.append(i - 0.4 + bar_h * (j + 0.5))
            xs.append(a)
            errs[0].append(max(0.0, a - ci[0]))
            errs[1].append(max(0.0, ci[1] - a))
            lowest = min(lowest, a, ci[0])
        ax.barh(ys, xs, height=bar_h * 0.9, xerr=errs, capsize=2, label=name, error_kw={"lw": 0.8})
    for m, (col, marker, label) in enumerate(((0, "D", "paper internal"), (1, "X", "paper external"))):
        pts = [(i, PAPER_ZERO_SHOT_AUC[k][col]) for i, k in enumerate(keys) if k in PAPER_ZERO_SHOT_AUC]
        if pts:
            ax.scatter([x for _, x in pts], [i for i, _ in pts], marker=marker,
                       color="black" if m == 0 else "dimgray", s=30, zorder=3, label=label)
            lowest = min(lowest, *(x for _, x in pts))
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(keys)), [display_name(k) for k in keys])
    ax.invert_yaxis()  # first finding on top, in table order
    ax.set_xlim(max(0.0, min(0.4, lowest - 0.05)), 1.0)
    ax.set_xlabel("Zero-shot AUROC")
    ax.set_title("CMR-CLIP zero-shot AUROC")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # outside: never hides a bar
    return _save(fig, path)


def plot_few_shot(results: Results, path: str | Path) -> Path:
    """AUROC vs shots per class (log2 axis) with ±std bands, prototype (solid) and linear (dashed) per entry;
    left panel the mean over the paper findings, right panel LV dysfunction; the paper's LV dysfunction
    prototype curve as reference in both. Writes a PNG (with a note if no entry has few-shot results)."""
    fig = _new_figure(11.0, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    paper_k = sorted(PAPER_FEW_SHOT_LV_DYSFUNCTION)
    all_k: set[int] = set(paper_k)
    any_curve = False
    for j, (name, e) in enumerate(_entries(results).items()):
        fs = e.get("few_shot")
        if not fs:
            continue
        color = f"C{j % 10}"
        for c, style in zip(CLASSIFIERS, ("-", "--"), strict=True):
            panels = (
                {k: (m, s) for k, (m, s, _) in paper_findings_few_shot(e, c).items()},
                _curve(fs.get("lv_dysfunction", {}), c),
            )
            for ax, curve in zip(axes, panels, strict=True):
                if not curve:
                    continue
                any_curve = True
                ks = sorted(curve)
                all_k.update(ks)
                mean = [curve[k][0] for k in ks]
                std = [curve[k][1] for k in ks]
                ax.plot(ks, mean, style, marker="o", ms=3, color=color, label=f"{name}: {c}")
                ax.fill_between(ks, [m - s for m, s in zip(mean, std, strict=True)],
                                [m + s for m, s in zip(mean, std, strict=True)], color=color, alpha=0.12)
    titles = (f"Mean over the {len(PAPER_FINDINGS)} paper findings", "LV dysfunction")
    for ax, title in zip(axes, titles, strict=True):
        ax.plot(paper_k, [PAPER_FEW_SHOT_LV_DYSFUNCTION[k] for k in paper_k], ":", marker="^", color="black",
                label="paper LV dysfunction (prototype)")
        ax.axhline(0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(all_k), [str(k) for k in sorted(all_k)])
        ax.set_xlabel("shots per class (k)")
        ax.set_title(title)
        ax.set_ylim(top=1.0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUROC")
    axes[1].legend(loc="lower right", fontsize="small")
    if not any_curve:
        axes[0].text(0.5, 0.5, "no few-shot results", transform=axes[0].transAxes, ha="center")
    return _save(fig, path)
