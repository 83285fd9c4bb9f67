"""`cmr calibrate`: fit the zero-shot probability calibration of a checkpoint on labelled exams it was not
trained on, and (with --assess) measure it on another set: ECE, Brier, reliability diagram."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)


def calibrate(
    data: Path = typer.Option(..., "--data", help="Labelled data set (reports.jsonl + studies) to fit on."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: the shipped one)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Calibration file (default: beside the checkpoint)."),
    assess: Optional[Path] = typer.Option(None, "--assess", help="Another labelled set to measure calibration on."),
    docs: Optional[Path] = typer.Option(None, "--docs", help="Write calibration.md and reliability.png here."),
) -> None:
    """Platt-scale every finding's and disease's zero-shot score into a probability."""
    from orchestration.cli.embed_cmd import fail, load_model_or_fail
    from cmr.findings import classifier_for_model as classifier_for
    from cmr.data.records import labels_for_key
    from cmr.eval.run import TestSet
    from cmr.findings import calibration_path_for
    from cmr.model.checkpoint import DEFAULT_CHECKPOINT, checkpoint_version

    if not (data / "reports.jsonl").exists():
        fail(f"{data} has no reports.jsonl: calibration needs labelled studies")
    model = load_model_or_fail(checkpoint)
    ckpt = checkpoint or DEFAULT_CHECKPOINT
    clf = classifier_for(model, checkpoint)
    clf.calibration = None  # refit from scratch

    def embed(d: Path):  # noqa: ANN202
        ts = TestSet.load(d, model)
        return ts, ts.embed(model)

    fit_set, fit_emb = embed(data)
    labels = {k: labels_for_key(k, fit_set.records) for k in clf.keys}
    cal = clf.fit(fit_emb, labels, model_version=checkpoint_version(ckpt),
                  fitted_on=f"{data.name} ({len(fit_set.records)} studies)")
    target = out or calibration_path_for(ckpt)
    cal.save(target)
    typer.echo(f"calibration ({len(cal.fits) - 1} findings/diseases + free phrases) -> {target}")
    if assess is None:
        return
    from cmr.eval.calibration import calibration_summary, plot_reliability
    from cmr.eval.report import display_name
    from cmr.findings.zero_shot import UNCALIBRATED_SCALE
    import numpy as np

    test_set, test_emb = embed(assess)
    calibrated = clf.probabilities(test_emb)
    uncalibrated = 1 / (1 + np.exp(-clf.raw_scores(test_emb) / UNCALIBRATED_SCALE))
    summary = {}
    for j, key in enumerate(clf.keys):
        y = labels_for_key(key, test_set.records)
        if y.all() or not y.any():
            continue
        summary[key] = {"calibrated": calibration_summary(y, calibrated[:, j]),
                        "uncalibrated": calibration_summary(y, uncalibrated[:, j])}
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "calibration.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_reliability({display_name(k): v["calibrated"] for k, v in summary.items() if not k.startswith("disease:")},
                         docs / "reliability.png", f"Zero-shot calibration on {test_set.name} ({len(test_set.records)} studies)")
        rows = ["| finding / disease | prevalence | mean p | ECE calibrated | ECE uncalibrated | Brier calibrated | Brier uncalibrated |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k, v in summary.items():
            c, u = v["calibrated"], v["uncalibrated"]
            rows.append(f"| {display_name(k)} | {c['prevalence']:.3f} | {c['mean_probability']:.3f} | {c['ece']:.3f} | "
                        f"{u['ece']:.3f} | {c['brier']:.3f} | {u['brier']:.3f} |")
        (docs / "calibration.md").write_text("\n".join([
            "# Zero-shot calibration", "",
            f"Probabilities of the search service's ZeroShot RPC and `cmr zeroshot`: Platt scaling of each raw "
            f"zero-shot score (cos to the 'present' prompts minus cos to the 'absent' prompts), fitted on "
            f"{cal.fitted_on}, measured on {test_set.name} ({len(test_set.records)} studies, the held-out scanner "
            "style). p = 0.5 means half of the calibration exams with that score had the finding, at the "
            "calibration set's prevalence. 'Uncalibrated' = sigmoid(score / 0.05), the fallback without a file.",
            "", f"Reproduce: `cmr calibrate --data {data} --assess {assess} --docs {docs}`", "",
            "![reliability](reliability.png)", "", *rows, ""]))
        typer.echo(f"assessment -> {docs / 'calibration.md'}")
    mean_ece = sum(v["calibrated"]["ece"] for v in summary.values()) / max(len(summary), 1)
    typer.echo(f"mean ECE on {test_set.name}: {mean_ece:.3f}")
