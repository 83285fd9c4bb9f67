"""`cmr search "phrase"`, `cmr similar STUDY` and `cmr cohort`: clients of the running search service.

Measurement filters (`--where`, repeatable, all must hold): `lvef_pct<35`, `lvedv_ml>=200`, `lvedv_ml=150..250`
(search_svc.client.parse_where); an exam without that measurement never matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def search_rpc(call: Any) -> Any:
    """`call()`, its gRPC error turned into one line and exit code 2 (`cmr search`, `cmr index ...`)."""
    import grpc

    try:
        return call()
    except grpc.RpcError as exc:
        hint = " (is `cmr serve search` running?)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        _fail(f"{exc.code().name}: {exc.details()}{hint}")


WHERE_HELP = ("Measurement range, repeatable (all must hold): 'lvef_pct<35', 'lvedv_ml>=200', "
              "'lvedv_ml=150..250'. Exams without that measurement never match.")


def _where(where: list[str]) -> list[Any]:
    """--where texts -> MeasurementRange messages; bad syntax is one error line and exit code 2."""
    from search_svc.client import parse_where

    out = []
    for w in where:
        try:
            out.append(parse_where(w))
        except ValueError as exc:
            _fail(f"--where {exc}")
    return out


def _measurements_dict(exam: Any) -> dict[str, Any] | None:
    if not exam.HasField("measurements"):
        return None
    from cmr.quant.proto import from_proto

    m = from_proto(exam.measurements)
    if m is None:
        return None
    return {**{k: v for k, v in m.values().items() if v is not None}, "quality": m.quality,
            "quality_reasons": list(m.quality_reasons), "model": m.model}


def _hit_dict(exam: Any, score: float) -> dict[str, Any]:
    return {"study_key": exam.study_key, "score": round(score, 4), "vendor": exam.vendor,
            "field_strength_t": exam.field_strength_t or None, "study_date": exam.study_date or None,
            "views": list(exam.views), "impression": exam.impression, "measurements": _measurements_dict(exam)}


def _lvef(h: dict[str, Any]) -> str:
    m = h.get("measurements") or {}
    if m.get("lvef_pct") is None:
        return ""
    return f"LVEF {m['lvef_pct']:.0f}%{'?' if m.get('quality') != 'ok' else ''}  "


def _print_hits(hits: list[dict[str, Any]]) -> None:
    """One line per hit; the LVEF when measured ('?': its quality flag asks for a check)."""
    for i, h in enumerate(hits, 1):
        first = h["impression"].splitlines()[0] if h["impression"] else ""
        typer.echo(f"{i:3d}. {h['score']:+.3f}  {h['study_key']}  {h['vendor']} "
                   f"{h['field_strength_t'] or ''}T  {_lvef(h)}{first[:80]}")


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(phrase: str = typer.Argument(..., help="What to look for, e.g. 'dilated LV with reduced EF'."),
               top: int = typer.Option(10, "--top", help="How many exams."),
               vendor: list[str] = typer.Option([], "--vendor", help="Only this vendor (repeatable)."),
               where: list[str] = typer.Option([], "--where", help=WHERE_HELP),
               as_json: bool = typer.Option(False, "--json"),
               url: Optional[str] = typer.Option(None, help="Search service (default CMR_SEARCH_URL).")) -> None:
        """Text to scan: the indexed exams that best match a phrase."""
        from search_svc.client import SearchClient

        ranges = _where(where)
        with SearchClient(url) as client:
            hits = search_rpc(lambda: client.search_text(phrase, top_k=top, vendors=vendor, where=ranges))
        rows = [_hit_dict(h.exam, h.score) for h in hits]
        if as_json:
            typer.echo(json.dumps(rows))
        else:
            _print_hits(rows)

    @app.command("similar")
    def similar(study: str = typer.Argument(..., help="A study folder/zip (uploaded to the encoder) or a study key."),
                top: int = typer.Option(10, "--top"),
                where: list[str] = typer.Option([], "--where", help=WHERE_HELP),
                as_json: bool = typer.Option(False, "--json"),
                url: Optional[str] = typer.Option(None, help="Search service (default CMR_SEARCH_URL)."),
                encoder_url: Optional[str] = typer.Option(None, help="Encoder (default CMR_ENCODER_URL).")) -> None:
        """Scan to scan and scan to report: the most similar indexed exams ('digital twins') and nearest reports."""
        from cmr.rpc.keys import is_study_key
        from encoder_svc.client import EncoderClient
        from search_svc.client import SearchClient

        ranges = _where(where)
        if is_study_key(study):
            query: dict[str, Any] = {"study_key": study}
        elif Path(study).exists():
            with EncoderClient(encoder_url) as enc:
                query = {"embedding": search_rpc(lambda: enc.encode_study(study)).embedding}
        else:
            _fail(f"{study}: neither a study folder/zip nor a study key")
        with SearchClient(url) as client:
            r = search_rpc(lambda: client.similar(top_k=top, filters={"where": ranges}, **query))
        out = {"similar_exams": [_hit_dict(h.exam, h.score) for h in r.similar_exams],
               "nearest_reports": [{"study_key": h.study_key, "score": round(h.score, 4), "impression": h.impression}
                                   for h in r.nearest_reports]}
        if as_json:
            typer.echo(json.dumps(out))
            return
        typer.echo("Most similar exams:")
        _print_hits(out["similar_exams"])
        typer.echo("Nearest reports:")
        for i, h in enumerate(out["nearest_reports"], 1):
            typer.echo(f"{i:3d}. {h['score']:+.3f}  {h['impression'].splitlines()[0][:100] if h['impression'] else ''}")

    @app.command("cohort")
    def cohort(all_of: list[str] = typer.Option([], "--all-of", help="Phrase every member must match (repeatable)."),
               any_of: list[str] = typer.Option([], "--any-of", help="Phrases of which one must match (repeatable)."),
               none_of: list[str] = typer.Option([], "--none-of", help="Phrase no member may match (repeatable)."),
               where: list[str] = typer.Option([], "--where", help=WHERE_HELP),
               vendor: list[str] = typer.Option([], "--vendor", help="Only this vendor (repeatable)."),
               threshold: float = typer.Option(0.5, "--threshold", help="Probability a phrase must reach."),
               top: int = typer.Option(20, "--top", help="How many members to list (the total is always shown)."),
               export: Optional[Path] = typer.Option(None, "--export", help="Write the whole cohort to FILE "
                                                     "(.csv or .parquet; one column per measurement)."),
               as_json: bool = typer.Option(False, "--json"),
               url: Optional[str] = typer.Option(None, help="Search service (default CMR_SEARCH_URL).")) -> None:
        """A cohort: every indexed exam matching the phrases (AND / OR / NOT) and the filters, ranked."""
        from search_svc.client import SearchClient

        if not (all_of or any_of):
            _fail("give at least one phrase with --all-of or --any-of (--none-of only excludes)")
        if export is not None and export.suffix.lower() not in (".csv", ".parquet"):
            _fail(f"--export {export}: the file must end in .csv or .parquet")
        query = dict(all_of=all_of, any_of=any_of, none_of=none_of, threshold=threshold, vendors=vendor,
                     where=_where(where))
        with SearchClient(url) as client:
            page = search_rpc(lambda: client.cohort(page_size=max(1, min(top, 1000)), **query))
            if export is not None:
                fmt = "parquet" if export.suffix.lower() == ".parquet" else "csv"
                _, data = search_rpc(lambda: client.export_cohort(fmt, **query))
                export.write_bytes(data)
        rows = [{**_hit_dict(m.exam, m.score), "phrase_scores": dict(m.phrase_scores)} for m in page.members]
        if as_json:
            typer.echo(json.dumps({"total": page.total, "members": rows,
                                   "export": None if export is None else str(export)}))
            return
        typer.echo(f"{page.total} exams in the cohort" + (f" (the first {len(rows)}):" if rows else "."))
        _print_hits(rows)
        if export is not None:
            typer.echo(f"cohort written to {export}")
