"""The dataset card of an imported archive (dataset_card.json + dataset_card.md): what came in, what was kept,
what was left out and why. Built from the import journal; it names studies by study key or folder position
and reports by their position in the export, never by an identifier of the source."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cmr.archive.reports import ReportFailure, RisReport
from cmr.labels import FINDINGS

CARD_JSON = "dataset_card.json"
CARD_MD = "dataset_card.md"


def _stage_seconds(entries: list[dict[str, Any]], field: str = "seconds") -> dict[str, float]:
    totals: Counter[str] = Counter()
    for e in entries:
        totals.update(e.get(field) or {})
    return {k: round(v, 2) for k, v in sorted(totals.items())}


def build_card(entries: list[dict[str, Any]], reports: list[RisReport], report_failures: list[ReportFailure],
               match: str, report_format: str, fallback: str,
               source: dict[str, str] | None = None, keep_series: str = "all") -> dict[str, Any]:
    imported = [e for e in entries if e["status"] == "imported"]
    excluded = [e for e in entries if e["status"] != "imported"]
    matched_reports = {e["report"] for e in entries if e.get("report")}
    failed = {f.where for f in report_failures}
    what = "accession number" if match == "accession" else "StudyInstanceUID"
    unmatched_reports = [r.where for r in reports if r.where not in matched_reports and r.where not in failed]
    series = [s for e in imported for s in e["stats"]["series"]]
    records = [e["record"] for e in imported]
    n = len(records)
    prevalence = {}
    for f in FINDINGS:
        present = sum(1 for r in records if r["labels"].get(f))
        uncertain = sum(1 for r in records if r["silver"]["findings"][f]["uncertain"])
        prevalence[f] = {"present": present, "share": round(present / n, 3) if n else 0.0, "uncertain": uncertain}
    exclusions = [{"study": f"#{e['order']}" + (f" ({e['study_key']})" if e.get("study_key") else ""),
                   "stage": e["stage"], "reason": e["reason"]} for e in excluded]
    exclusions += [{"report": f.where, "stage": "report", "reason": f.reason} for f in report_failures]
    exclusions += [{"report": w, "stage": "match", "reason": f"no study with this report's {what} among the "
                    "study folders"} for w in unmatched_reports]
    return {
        "source": source or {"kind": "folders"},  # a DICOMweb import: its URL, without credentials
        "label_source": "silver: cmr.reports.labeller on the extracted impression (not a reader's labels)",
        "match_by": match,
        "report_format": report_format,
        "impression_fallback": fallback,
        "counts": {
            "study_folders": len(entries), "imported": n, "excluded_studies": len(excluded),
            "studies_without_report": sum(1 for e in excluded if e.get("unmatched")),
            "reports_read": len(reports) + len({f.where for f in report_failures} - {r.where for r in reports}),
            "reports_failed": len(report_failures), "reports_without_study": len(unmatched_reports),
        },
        "vendors": dict(Counter(e["stats"]["manufacturer"] or "unknown" for e in imported).most_common()),
        "scanner_models": dict(Counter(e["record"]["scanner"] or "unknown" for e in imported).most_common()),
        "field_strengths_t": {f"{k:g}" if isinstance(k, (int, float)) else "unknown": v for k, v in
                              Counter(e["stats"]["field_strength"] for e in imported).most_common()},
        "keep_series": keep_series,
        "series_kinds": dict(Counter(f"{s['kind']}/{s['view'] or '-'}" for s in series).most_common()),
        "series_kept": _kept_per_kind(series),
        "series_skipped_reasons": dict(Counter(s["reason"] for s in series if not s.get("kept", True))
                                       .most_common()),
        "protocols": dict(Counter(s["description"] or "(no description)" for s in series).most_common(40)),
        "impression_sources": dict(Counter(r["impression_source"] for r in records).most_common()),
        "impression_sections": dict(Counter(e["stats"]["impression_section"] or "(none)" for e in imported)
                                    .most_common()),
        # Quantities the reports state (the measurement tokens' input): studies stating each one.
        "report_measurements": dict(Counter(k for r in records for k in (r.get("measurements") or {}))
                                    .most_common()),
        "reports_with_addendum": sum(1 for e in imported if e["stats"]["addendum"]),
        "label_prevalence": prevalence,
        "diseases": dict(Counter(r["labels"].get("disease") or "none named" for r in records).most_common()),
        "header_quirks": dict(Counter(w for e in imported for w in e["stats"]["warnings"]).most_common(20)),
        "files": {"dicom": sum(e["stats"]["files"] for e in imported),
                  "written": sum(e["stats"].get("written_files", e["stats"]["files"]) for e in imported),
                  "other": sum(e["stats"]["other_files"] for e in imported),
                  "skipped_by_loader": sum(e["stats"]["skipped_files"] for e in imported)},
        "exclusions": exclusions,
        "stage_seconds": _stage_seconds(entries),
        "stage_cpu_seconds": _stage_seconds(entries, "cpu_seconds"),  # journals from before have none
    }


def _kept_per_kind(series: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Series found per kind: written, or skipped (`--keep-series exam`). Journals from before say nothing: kept."""
    out: dict[str, dict[str, int]] = {}
    for s in series:
        counts = out.setdefault(s["kind"], {"kept": 0, "skipped": 0})
        counts["kept" if s.get("kept", True) else "skipped"] += 1
    return dict(sorted(out.items()))


def _table(title: str, counts: dict[str, Any], head: tuple[str, str] = ("value", "studies")) -> list[str]:
    if not counts:
        return [f"## {title}", "", "(none)", ""]
    rows = [f"## {title}", "", f"| {head[0]} | {head[1]} |", "|---|---|"]
    rows += [f"| {k} | {v} |" for k, v in counts.items()]
    return rows + [""]


def _source_line(source: dict[str, str]) -> str:
    if source.get("kind") == "dicomweb":
        return f"Studies fetched from the DICOMweb server **{source['url']}** (QIDO-RS list, WADO-RS retrieve)."
    return "Studies read from **study folders** (one folder per study)."


def render_markdown(card: dict[str, Any]) -> str:
    c = card["counts"]
    lines = [
        "# Dataset card: imported archive", "",
        _source_line(card.get("source") or {"kind": "folders"}), "",
        f"Labels are **{card['label_source']}**. Reports matched to studies by **{card['match_by']}** "
        f"(format {card['report_format']}; impression fallback: {card['impression_fallback']}).", "",
        "| | count |", "|---|---|",
        *(f"| {k.replace('_', ' ')} | {v} |" for k, v in c.items()), "",
        *_table("Vendors", card["vendors"]),
        *_table("Scanner models", card["scanner_models"]),
        *_table("Field strengths (T)", card["field_strengths_t"]),
        *_table("Series found (kind/view)", card["series_kinds"], ("kind/view", "series")),
        *_table("Protocols (series descriptions, top 40)", card["protocols"], ("description", "series")),
        f"## Series written (--keep-series {card.get('keep_series', 'all')})", "",
        "| kind | kept | skipped |", "|---|---|---|",
        *(f"| {k} | {v['kept']} | {v['skipped']} |" for k, v in card.get("series_kept", {}).items()), "",
        *(["Kept besides cine and LGE under `exam`: long-axis planes of other kinds (e.g. a TI scout), which take "
           "part in naming the cine and LGE views (cmr.archive.exam_series).", ""]
          if card.get("keep_series") == "exam" else []),
        *_table("Series skipped: why", card.get("series_skipped_reasons", {}), ("reason", "series")),
        *_table("Impression taken from", card["impression_sources"]),
        *_table("Impression section headers", card["impression_sections"]),
        *_table("Measurements stated in the reports", card.get("report_measurements", {}), ("quantity", "studies")),
        "## Label prevalence (silver)", "", "| finding | present | share | uncertain |", "|---|---|---|---|",
        *(f"| {f} | {p['present']} | {p['share']:.1%} | {p['uncertain']} |" for f, p in card["label_prevalence"].items()),
        "",
        *_table("Diseases named", card["diseases"]),
        *_table("Header quirks (loader warnings)", card["header_quirks"], ("warning", "studies")),
        "## Exclusions", "",
    ]
    if card["exclusions"]:
        lines += ["| item | stage | reason |", "|---|---|---|"]
        lines += [f"| {'study ' + x['study'] if 'study' in x else 'report ' + x['report']} | {x['stage']} | "
                  f"{x['reason']} |" for x in card["exclusions"]]
    else:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def write_card(out: Path, card: dict[str, Any]) -> None:
    for name, text in ((CARD_JSON, json.dumps(card, indent=2)), (CARD_MD, render_markdown(card))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


__all__ = ["CARD_JSON", "CARD_MD", "build_card", "render_markdown", "write_card"]
