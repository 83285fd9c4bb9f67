"""The quantification part of `cmr eval-real`: the segmenter against expert masks on real scans.

- ACDC (evaluation only): 3-D Dice of LV cavity, LV myocardium and RV cavity at the reference ED and ES
  frames, LVEF and RVEF from the automatic pipeline (ED/ES found from its own volume curve) against the
  mask LVEF/RVEF of labels.jsonl, volumes and mass against the masks' (same assumed spacing on both sides),
  and how well each measurement alone separates the diagnostic groups (AUROC, no threshold);
- Sunnybrook (CC0): LV cavity and myocardium Dice on the contoured images, LVEF against the contour LVEF;
- a synthetic held-out-style set: Dice against the phantom's label maps, errors against its reference;
- the time to segment and measure one study.

Figures are drawn from Sunnybrook images only (CC0): ACDC images are not redistributed in our docs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cmr.dicom.reader import load_study
from cmr.eval import metrics as M
from cmr.quant.labels import LV_CAVITY, RV_CAVITY
from cmr.quant.measure import Stack, measure_study, segment_phases, stack_of
from cmr.quant.metrics import error_summary, mean_or_none, volume_dice
from cmr.quant.segmenter import Segmenter
from cmr.quant.validate import sunnybrook_agreement, synthetic_agreement
from cmr.quant.volumes import Measurements
from cmr.realdata.acdc import ConvertedStudy
from cmr.realdata.sunnybrook import SunnybrookStack

# ACDC DICOM written by to_dicom.py: 20 phases, ES images at phases 6..11, ED at the others (so the pipeline's
# ED/ES are right when ES falls in 6..11 and ED outside).
ACDC_ED_PHASE = 0
ACDC_ES_PHASE = 8
STRUCTURES = ("lv_cavity", "lv_myocardium", "rv_cavity")


def _in_npz_order(stack: Stack, masks: list[np.ndarray]) -> np.ndarray:
    """Masks [slices, frames, rows, cols] in the npz slice order (slice 0 at the base = the first position
    along the stack normal, as to_dicom.py writes them)."""
    series = stack.refs[0][0]
    order = np.argsort([float(s.positions[i] @ series.normal) for s, i in stack.refs])
    return np.stack([masks[k] for k in order])


def acdc_patient(study: ConvertedStudy, seg: Segmenter,
                 measured: tuple[Measurements, float] | None = None) -> dict[str, Any]:
    """One patient's quantification entry; `measured` = (this segmenter's measurements of the study, seconds
    they took) when the caller already has them (`cmr eval-real` measures before it embeds)."""
    p = study.patient
    t0 = time.perf_counter()
    loaded = load_study(study.path)  # type: ignore[arg-type]
    t_load = time.perf_counter() - t0
    if measured is not None and measured[0].model == seg.version:
        m, t_measure = measured
    else:
        t1 = time.perf_counter()
        m = measure_study(loaded, seg).measurements
        t_measure = time.perf_counter() - t1
    expert = p.expert_measurements
    entry: dict[str, Any] = {
        "patient": p.name, "group": p.group, "quality": m.quality, "quality_reasons": m.quality_reasons,
        "measured": m.values(),
        "reference": {k: expert[k] for k in ("lvef_pct", "rvef_pct", "lvedv_ml", "rvedv_ml", "lv_mass_g")},
        "seconds_load": round(t_load, 3), "seconds_measure": round(t_measure, 3),
    }
    # Segmentation quality at the reference frames (full resolution, as measured); the LVEF above is the
    # whole pipeline's, with ED/ES found from its own curve.
    entry["ed_es_found"] = [m.ed_phase, m.es_phase]
    entry["ed_es_correct"] = (m.ed_phase is not None and m.es_phase is not None
                              and not 6 <= m.ed_phase <= 11 and 6 <= m.es_phase <= 11)
    got = segment_phases(loaded, seg, [ACDC_ED_PHASE, ACDC_ES_PHASE])
    if got is not None and {mk.shape for mk in got[1]} == {got[1][0].shape}:
        pred = _in_npz_order(*got)
        ed_ref, es_ref = p.ed_mask, p.es_mask
        if pred.shape[0] == ed_ref.shape[0] and pred.shape[2:] == ed_ref.shape[1:]:
            entry["dice_ed"] = volume_dice(pred[:, 0], ed_ref)
            entry["dice_es"] = volume_dice(pred[:, 1], es_ref)
            entry["slices_missed_ed"] = slices_missed(pred[:, 0], ed_ref)
            entry["slices_drawn_ed"] = {name: int(sum((ed_ref[k] == c).any() for k in range(len(ed_ref))))
                                        for name, c in CAVITIES}
        else:
            entry["dice_error"] = f"predicted stack {pred.shape} does not match the reference {ed_ref.shape}"
    return entry


# The structures whose whole-slice misses are counted (a missed cavity is what lowers the volumes).
CAVITIES: tuple[tuple[str, int], ...] = (("lv_cavity", LV_CAVITY), ("rv_cavity", RV_CAVITY))


def slices_missed(pred: np.ndarray, ref: np.ndarray) -> dict[str, list[int]]:
    """Per structure, the slices [slices, rows, cols] where the expert drew it and the prediction has none of
    it: whole missed slices, the failure that makes volumes low (a Dice cannot say whether its loss is
    edges everywhere or slices gone)."""
    return {name: [k for k in range(len(ref)) if (ref[k] == c).any() and not (pred[k] == c).any()]
            for name, c in CAVITIES}


def _auroc(y: Sequence[bool], score: Sequence[float | None]) -> dict[str, Any] | None:
    pairs = [(bool(a), float(s)) for a, s in zip(y, score) if s is not None]
    if not pairs:
        return None
    yy = np.array([a for a, _ in pairs])
    ss = np.array([s for _, s in pairs])
    auc = M.auroc(yy, ss)
    if auc is None:
        return None
    ci = M.bootstrap_auroc_ci(yy, ss, n_boot=1000)
    return {"auroc": auc, "ci": list(ci) if ci else None, "n": len(pairs), "n_pos": int(yy.sum())}


def measurement_aurocs(per: list[dict[str, Any]]) -> dict[str, Any]:
    """How well one measured number separates each ACDC task (threshold-free, so nothing is fitted)."""
    def col(k: str) -> list[float | None]:
        return [q["measured"].get(k) for q in per]

    lvef = col("lvef_pct")
    lvedv, rvedv, mass = col("lvedv_ml"), col("rvedv_ml"), col("lv_mass_g")
    ratio = [None if (r is None or v is None or not v) else r / v for r, v in zip(rvedv, lvedv)]
    mass_ratio = [None if (ms is None or v is None or not v) else ms / v for ms, v in zip(mass, lvedv)]
    groups = [q["group"] for q in per]
    ref_lvef = [q["reference"]["lvef_pct"] for q in per]
    return {
        "lv_dysfunction": {"score": "-LVEF", **(_auroc([r is not None and r < 45 for r in ref_lvef],
                                                       [None if v is None else -v for v in lvef]) or {})},
        "lv_dilation": {"score": "LVEDV", **(_auroc([g == "DCM" for g in groups], lvedv) or {})},
        "lv_hypertrophy": {"score": "LV mass / LVEDV", **(_auroc([g == "HCM" for g in groups], mass_ratio) or {})},
        "rv_dilation": {"score": "RVEDV / LVEDV", **(_auroc([g == "RV" for g in groups], ratio) or {})},
        "normal": {"score": "LVEF", **(_auroc([g == "NOR" for g in groups], lvef) or {})},
    }


def evaluate_quantification(acdc: Sequence[ConvertedStudy], seg: Segmenter, *,
                            sunnybrook: Sequence[SunnybrookStack] = (), synthetic: Path | None = None,
                            synthetic_limit: int | None = None, progress: bool = True,
                            measured: Mapping[str, tuple[Measurements, float]] | None = None) -> dict[str, Any]:
    """The whole quantification section of the real-data results."""
    t0 = time.perf_counter()
    per: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for st in tqdm(acdc, desc="quantify ACDC", unit="study", disable=not progress):
        if st.path is None:
            failed.append({"patient": st.patient.name, "error": st.error or "not converted"})
            continue
        try:
            per.append(acdc_patient(st, seg, (measured or {}).get(st.patient.name)))
        except Exception as exc:  # one bad study is reported, the benchmark goes on
            failed.append({"patient": st.patient.name, "error": f"{type(exc).__name__}: {exc}"})
    out: dict[str, Any] = {"segmenter": seg.version, "segmenter_meta": {k: seg.meta.get(k) for k in
                                                                        ("trained_on", "selected_on", "step")},
                           "acdc": {"patients": per, "failed": failed, "n": len(per)}}
    a = out["acdc"]
    for phase in ("dice_ed", "dice_es"):
        a[phase] = {k: mean_or_none(q.get(phase, {}).get(k) for q in per) for k in STRUCTURES}
        a[phase + "_median"] = {k: (float(np.median(v)) if (v := [q[phase][k] for q in per
                                                                   if q.get(phase, {}).get(k) is not None]) else None)
                                for k in STRUCTURES}
    for k in ("lvef_pct", "rvef_pct", "lvedv_ml", "rvedv_ml", "lv_mass_g"):
        a[k] = error_summary([q["measured"].get(k) for q in per], [q["reference"].get(k) for q in per])
    a["by_group"] = {g: {"lvef_mae": error_summary([q["measured"]["lvef_pct"] for q in per if q["group"] == g],
                                                   [q["reference"]["lvef_pct"] for q in per if q["group"] == g])["mae"],
                         "lv_cavity_dice_ed": mean_or_none(q.get("dice_ed", {}).get("lv_cavity") for q in per
                                                           if q["group"] == g)}
                     for g in sorted({q["group"] for q in per})}
    a["measurement_auroc"] = measurement_aurocs(per) if per else {}
    # Share of the expert's slices (at ED) where a structure was missed whole, over all patients.
    a["slices_missed_ed"] = {}
    for name, _ in CAVITIES:
        drawn = sum(q["slices_drawn_ed"][name] for q in per if "slices_drawn_ed" in q)
        missed = sum(len(q["slices_missed_ed"][name]) for q in per if "slices_missed_ed" in q)
        a["slices_missed_ed"][name] = {"missed": missed, "drawn": drawn, "share": missed / drawn if drawn else None}
    a["ed_es_correct"] = mean_or_none(float(q["ed_es_correct"]) for q in per)
    times = [q["seconds_measure"] for q in per]
    a["seconds_measure"] = {"median": float(np.median(times)) if times else None,
                            "max": float(np.max(times)) if times else None}
    if sunnybrook:
        out["sunnybrook"] = sunnybrook_agreement(seg, list(sunnybrook), progress=progress)
    if synthetic is not None and synthetic.is_dir():
        out["synthetic"] = synthetic_agreement(seg, synthetic, limit=synthetic_limit, progress=progress)
        out["synthetic"]["folder"] = str(synthetic)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


# --- the `cmr eval-real` section ---------------------------------------------------------------------------------

TARGETS = {"lv_cavity": 0.90, "lv_myocardium": 0.80, "rv_cavity": 0.80, "lvef_mae": 5.0, "rvef_mae": 8.0,
           "sunnybrook_lvef_error": 5.0, "seconds": 2.0}
SYNTHETIC_STUDIES = 8
SYNTHETIC_SEED = 202


def _synthetic_set(settings: Any, progress: bool) -> Path:
    """A held-out-style synthetic set with label maps, written once under the data folder."""
    from cmr.synth.generate import REPORTS_FILE, generate_dataset
    from cmr.synth.scanners import HELD_OUT_STYLE

    folder = Path(settings.data_dir) / "realdata" / f"synthetic_{HELD_OUT_STYLE}_{SYNTHETIC_SEED}"
    if not (folder / REPORTS_FILE).is_file():
        generate_dataset(folder, SYNTHETIC_STUDIES, SYNTHETIC_SEED, scanner=HELD_OUT_STYLE, progress=progress)
    return folder


def _sunnybrook_root(settings: Any) -> Path | None:
    shared = Path(settings.realdata_dir) / "sunnybrook"
    if shared.is_dir():
        return shared
    in_repo = Path(__file__).resolve().parents[2] / "tests" / "data" / "sunnybrook"
    return in_repo if in_repo.is_dir() else None


def section(ctx: Any) -> dict[str, Any]:
    """cmr.eval.real's "quantification" section (see cmr.eval.real.Section)."""
    from cmr.quant.segmenter import load_segmenter
    from cmr.realdata.sunnybrook import find_stacks

    seg = load_segmenter(getattr(ctx.settings, "segmenter_checkpoint", None))
    sb_root = _sunnybrook_root(ctx.settings)
    stacks = find_stacks(sb_root) if sb_root is not None else []
    res = evaluate_quantification(ctx.converted, seg, sunnybrook=stacks,
                                  synthetic=_synthetic_set(ctx.settings, ctx.progress), progress=ctx.progress,
                                  measured=getattr(ctx, "measured", None))
    res["sunnybrook_folder"] = None if sb_root is None else str(sb_root)
    figures: list[str] = []
    if ctx.docs_dir is not None:
        figures = write_figures(res, stacks, seg, Path(ctx.docs_dir))
    res["figures"] = figures
    res["markdown"] = render_markdown(res)
    res["summary"] = summary(res)
    return res


def _f(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def summary(res: dict[str, Any]) -> dict[str, str]:
    a = res["acdc"]
    sb = res.get("sunnybrook", {})
    return {
        "ACDC Dice ED (LV / myo / RV)": " / ".join(_f(a["dice_ed"][k]) for k in STRUCTURES),
        "ACDC Dice ES (LV / myo / RV)": " / ".join(_f(a["dice_es"][k]) for k in STRUCTURES),
        "ACDC LVEF MAE (points)": _f(a["lvef_pct"]["mae"], 1),
        "ACDC RVEF MAE (points)": _f(a["rvef_pct"]["mae"], 1),
        "Sunnybrook LVEF |error| (points)": _f(sb.get("lvef", {}).get("mae"), 1),
        "seconds per study (median)": _f(a["seconds_measure"]["median"], 2),
    }


def render_markdown(res: dict[str, Any]) -> str:
    a = res["acdc"]
    sb = res.get("sunnybrook")
    syn = res.get("synthetic")
    t = TARGETS
    lines = [
        f"Segmenter `{res['segmenter']}`: {res['segmenter_meta'].get('trained_on') or 'training data not recorded'}; "
        f"checkpoint chosen on {res['segmenter_meta'].get('selected_on') or '-'}. ACDC was used for none of it.",
        "",
        f"ACDC: {a['n']} patients segmented ({len(a['failed'])} failed). Dice is the 3-D Dice over the stack at the "
        "reference ED and ES frames; LVEF/RVEF come from the automatic pipeline (ED/ES found from its own volume "
        "curve) against the expert masks' values (labels.jsonl). Volumes and mass use the spacing the DICOM "
        "conversion assumes (1.5625 mm, 10 mm) on both sides.",
        "",
        "| | ACDC (real, evaluation only) | Sunnybrook (real, CC0) | synthetic held-out style | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for phase in ("ed", "es"):
        for k, name in (("lv_cavity", "LV cavity"), ("lv_myocardium", "LV myocardium"), ("rv_cavity", "RV cavity")):
            sb_v = "-"
            if sb is not None and phase == "ed" and k in ("lv_cavity", "lv_myocardium"):
                sb_v = _f(sb[f"{k}_dice"]) + (" (ED+ES contours)" if k == "lv_cavity" else " (ED)")
            syn_v = _f(syn[f"dice_{phase}"][k]) if syn else "-"
            lines.append(f"| Dice {name}, {phase.upper()} | {_f(a[f'dice_{phase}'][k])} (median "
                         f"{_f(a[f'dice_{phase}_median'][k])}) | {sb_v} | {syn_v} | >= {t[k]:.2f} |")
    for k, name, tgt in (("lvef_pct", "LVEF MAE (points)", f"<= {t['lvef_mae']:g}"),
                         ("rvef_pct", "RVEF MAE (points)", f"<= {t['rvef_mae']:g}"),
                         ("lvedv_ml", "LVEDV MAE (ml)", ""), ("rvedv_ml", "RVEDV MAE (ml)", ""),
                         ("lv_mass_g", "LV mass MAE (g)", "")):
        e = a[k]
        bias = "" if e["bias"] is None else f", bias {e['bias']:+.1f}, LoA ±{_f(e['loa'], 1)}"
        sb_v = "-"
        if sb is not None and k == "lvef_pct":
            sb_v = f"{_f(sb['lvef']['mae'], 1)} (n={sb['lvef']['n']})"
        syn_v = _f(syn[k]["mae"], 1) if syn and k in syn else "-"
        missing = f", {e['n_missing']} not measured" if e["n_missing"] else ""
        lines.append(f"| {name} | {_f(e['mae'], 1)} (n={e['n']}{bias}{missing}) | {sb_v} | {syn_v} | {tgt or '-'} |")
    for k, name in (("lv_cavity", "LV cavity"), ("rv_cavity", "RV cavity")):
        miss = (a.get("slices_missed_ed") or {}).get(k)
        if miss and miss["share"] is not None:
            lines.append(f"| expert's ED slices with no {name} predicted | {miss['share']:.2f} ({miss['missed']} of "
                         f"{miss['drawn']}) | | | |")
    if a.get("ed_es_correct") is not None:
        lines.append(f"| ED and ES found on the right frames | {a['ed_es_correct']:.2f} | | | |")
    sec = a["seconds_measure"]
    lines += [f"| seconds per study (segment + measure) | median {_f(sec['median'], 2)}, max {_f(sec['max'], 2)} | | | "
              f"< {t['seconds']:g} (see docs/benchmarks/quant.md) |", ""]
    if sb is not None:
        lines += ["Sunnybrook stacks (LVEF of the contours: endocardial areas of the contoured slices at the two "
                  "contoured phases):", "", "| stack | LV Dice | myo Dice | contour LVEF | automatic LVEF | quality |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for s in sb["stacks"]:
            lines.append(f"| {s['stack']} | {_f(s['lv_cavity_dice'])} | {_f(s['lv_myocardium_dice'])} | "
                         f"{_f(s['reference_lvef'], 1)} | {_f(s['lvef'], 1)} | {s['quality']} |")
        lines.append("")
    lines += ["ACDC by group:", "", "| group | LVEF MAE | LV cavity Dice (ED) |", "| --- | --- | --- |"]
    for g, v in a["by_group"].items():
        lines.append(f"| {g} | {_f(v['lvef_mae'], 1)} | {_f(v['lv_cavity_dice_ed'])} |")
    lines += ["", "One measured number per task, as a classifier of the ACDC groups (AUROC, threshold-free, nothing "
              "fitted; compare the zero-shot table above):", "", "| task | score | AUROC [95 % CI] |", "| --- | --- | --- |"]
    for task, v in a["measurement_auroc"].items():
        ci = v.get("ci")
        lines.append(f"| {task} | {v.get('score')} | {_f(v.get('auroc'))}"
                     + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + " |")
    if a["failed"]:
        lines += ["", "Failed: " + "; ".join(f"{f['patient']}: {f['error']}" for f in a["failed"])]
    return "\n".join(lines)  # the figures are placed by cmr.eval.real under the section


def write_figures(res: dict[str, Any], stacks: Sequence[SunnybrookStack], seg: Segmenter, docs: Path) -> list[str]:
    """Agreement plots (numbers only for ACDC) and contour overlays on the CC0 Sunnybrook images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    docs.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    per = res["acdc"]["patients"]
    colours = {"DCM": "#c0392b", "HCM": "#8e44ad", "MINF": "#d35400", "NOR": "#27ae60", "RV": "#2e6fd1"}
    fig = Figure(figsize=(11, 3.6))
    FigureCanvasAgg(fig)
    for j, (k, name) in enumerate((("lvef_pct", "LVEF (%)"), ("rvef_pct", "RVEF (%)"))):
        ax = fig.add_subplot(1, 3, j + 1)
        for g, c in colours.items():
            pts = [(q["reference"][k], q["measured"][k]) for q in per if q["group"] == g
                   and q["reference"][k] is not None and q["measured"][k] is not None]
            if pts:
                ax.scatter(*zip(*pts), s=14, color=c, label=g)
        if k == "lvef_pct" and res.get("sunnybrook"):
            sbp = [(s["reference_lvef"], s["lvef"]) for s in res["sunnybrook"]["stacks"]
                   if s["reference_lvef"] is not None and s["lvef"] is not None]
            if sbp:
                ax.scatter(*zip(*sbp), s=30, marker="*", color="k", label="Sunnybrook")
        ax.plot([0, 90], [0, 90], "k-", lw=0.6)
        ax.fill_between([0, 90], [-5, 85], [5, 95], color="grey", alpha=0.15, lw=0)
        ax.set_xlim(0, 90), ax.set_ylim(0, 90)
        ax.set_xlabel(f"reference {name}"), ax.set_ylabel(f"automatic {name}")
        ax.legend(fontsize=6, loc="upper left")
    ax = fig.add_subplot(1, 3, 3)
    data, labels = [], []
    for phase in ("dice_ed", "dice_es"):
        for k in STRUCTURES:
            data.append([q[phase][k] for q in per if q.get(phase, {}).get(k) is not None])
            short = {"lv_cavity": "LV", "lv_myocardium": "myo", "rv_cavity": "RV"}.get(k, k)
            labels.append(f"{short}\n{phase[-2:].upper()}")
    ax.boxplot([d if d else [np.nan] for d in data], tick_labels=labels)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice per ACDC patient")
    fig.tight_layout()
    fig.savefig(docs / "real_data_quantification.png", dpi=110)
    out.append("real_data_quantification.png")
    if stacks:
        out.append(_sunnybrook_overlays(stacks, seg, docs))
    return out


def _sunnybrook_overlays(stacks: Sequence[SunnybrookStack], seg: Segmenter, docs: Path) -> str:
    """Mid-ventricular ED and ES of each Sunnybrook stack: automatic contours (colour) vs the readers' (white)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cmr.dicom import imaging

    fig = Figure(figsize=(3.2 * 2, 3.2 * len(stacks)))
    FigureCanvasAgg(fig)
    for r, st in enumerate(stacks):
        study = load_study(st.dicom_dir)
        stack = stack_of(study)
        if isinstance(stack, str):
            continue
        series = stack.refs[0][0]
        located = st.locate(series)
        by_phase: dict[int, list[int]] = {}
        for (k, p), im in located.items():
            if im.endo is not None:
                by_phase.setdefault(p, []).append(k)
        shown = sorted(by_phase, reverse=True)[:2]
        got = segment_phases(study, seg, shown)
        masks = {} if got is None else {i: m for (_, i), m in zip(got[0].refs, got[1])}
        for c, p in enumerate(shown):
            ks = sorted(by_phase[p])
            k = ks[len(ks) // 2]
            ax = fig.add_subplot(len(stacks), 2, 2 * r + c + 1)
            img = imaging.apply_window(series.pixels[k, p], imaging.robust_window(series.pixels[k]))
            ax.imshow(img, cmap="gray")
            pred = masks.get(k)
            if pred is not None:
                ax.contour(pred[shown.index(p)], levels=[0.5, 1.5, 2.5], colors=["#2e6fd1", "#27ae60", "#c0392b"], linewidths=0.8)
            im = located[(k, p)]
            for ref in (im.endo, im.epi):
                if ref is not None:
                    ax.contour(ref.astype(float), levels=[0.5], colors="white", linewidths=0.6, linestyles="--")
            rows, cols = img.shape
            ax.set_xlim(cols * 0.2, cols * 0.8), ax.set_ylim(rows * 0.8, rows * 0.2)
            ax.set_title(f"{st.name[:10]} slice {k} phase {p}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(docs / "real_data_sunnybrook_contours.png", dpi=110)
    return "real_data_sunnybrook_contours.png"
