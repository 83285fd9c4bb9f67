"""How well the labeller reads synthetic impressions: agreement with what each impression states (`mentioned`)
and with the ground-truth `labels`, per finding, on reports.jsonl records.

    python -m cmr.reports.agreement data/bench/train/reports.jsonl data/bench/test_heldout/reports.jsonl

Only findings the impression mentions are scored. Against `labels`, agreement is below 1 by design where
readers word an LVEF near 50% against the threshold (see `cmr.synth.report`); against `mentioned` it measures
the labeller alone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from cmr import labels as L
from cmr.reports.labeller import ReportLabels, label_report

__all__ = ["FindingAgreement", "LabellerAgreement", "labeller_agreement", "main"]


@dataclass(frozen=True)
class FindingAgreement:
    n: int  # impressions that mention the finding
    with_mentioned: float | None  # labeller state == what the text states (present / absent)
    with_labels: float | None  # labeller present == ground-truth label
    stated_unmentioned: int  # impressions not mentioning it that the labeller still reads a state from


@dataclass(frozen=True)
class LabellerAgreement:
    per_finding: Mapping[str, FindingAgreement]
    n_reports: int
    disease_named: int  # reports where the labeller found a disease
    disease_accuracy: float | None  # on those, agreement with labels["disease"]


def _finding_agreement(records: Sequence[Mapping[str, Any]], labelled: Sequence[ReportLabels],
                       finding: str) -> FindingAgreement:
    n = agree_text = agree_truth = extra = 0
    for rec, lab in zip(records, labelled):
        said = rec["mentioned"][finding]
        state = lab.state(finding)
        if said is None:
            extra += state != "not_mentioned"
            continue
        n += 1
        agree_text += state == ("present" if said else "absent")
        agree_truth += (state == "present") == bool(rec["labels"][finding])
    return FindingAgreement(n, agree_text / n if n else None, agree_truth / n if n else None, extra)


def labeller_agreement(records: Iterable[Mapping[str, Any]]) -> LabellerAgreement:
    """Agreement of `label_report(record["impression"])` with the records' `mentioned` and `labels`."""
    recs = list(records)
    labelled = [label_report(r["impression"]) for r in recs]
    per_finding = {f: _finding_agreement(recs, labelled, f) for f in L.FINDINGS}
    named = [(lab.disease, r["labels"]["disease"]) for r, lab in zip(recs, labelled) if lab.disease]
    accuracy = sum(a == b for a, b in named) / len(named) if named else None
    return LabellerAgreement(per_finding, len(recs), len(named), accuracy)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def to_markdown(results: Mapping[str, LabellerAgreement]) -> str:
    names = list(results)
    head = "| finding | " + " | ".join(f"{n} n | vs text | vs labels" for n in names) + " |"
    rule = "|---|" + "---|---|---|" * len(names)
    rows = [head, rule]
    for f in L.FINDINGS:
        cells = []
        for name in names:
            a = results[name].per_finding[f]
            cells.append(f"{a.n} | {_fmt(a.with_mentioned)} | {_fmt(a.with_labels)}")
        rows.append(f"| {f} | " + " | ".join(cells) + " |")
    # Disease: reports where the labeller finds one (of all), and its accuracy against labels there.
    dz = " | ".join(f"{r.disease_named}/{r.n_reports} | - | {_fmt(r.disease_accuracy)}" for r in results.values())
    rows.append(f"| disease (where named) | {dz} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m cmr.reports.agreement REPORTS.jsonl [...]", file=sys.stderr)
        return 2
    results = {}
    for path in paths:
        with path.open() as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        results[path.parent.name or str(path)] = labeller_agreement(records)
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
