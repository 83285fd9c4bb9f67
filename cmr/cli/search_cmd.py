"""`cmr search "phrase"` and `cmr similar STUDY`: clients of the running search service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import typer

_STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")


def _fail(reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def _rpc(call: Any) -> Any:
    import grpc

    try:
        return call()
    except grpc.RpcError as exc:
        hint = " (is `cmr serve search` running?)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        _fail(f"{exc.code().name}: {exc.details()}{hint}")


def _hit_dict(exam: Any, score: float) -> dict[str, Any]:
    return {"study_key": exam.study_key, "score": round(score, 4), "vendor": exam.vendor,
            "field_strength_t": exam.field_strength_t or None, "study_date": exam.study_date or None,
            "views": list(exam.views), "impression": exam.impression}


def _print_hits(hits: list[dict[str, Any]]) -> None:
    for i, h in enumerate(hits, 1):
        first = h["impression"].splitlines()[0] if h["impression"] else ""
        typer.echo(f"{i:3d}. {h['score']:+.3f}  {h['study_key']}  {h['vendor']} "
                   f"{h['field_strength_t'] or ''}T  {first[:80]}")


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(phrase: str = typer.Argument(..., help="What to look for, e.g. 'dilated LV with reduced EF'."),
               top: int = typer.Option(10, "--top", help="How many exams."),
               vendor: list[str] = typer.Option([], "--vendor", help="Only this vendor (repeatable)."),
               as_json: bool = typer.Option(False, "--json"),
               url: Optional[str] = typer.Option(None, help="Search service (default CMR_SEARCH_URL).")) -> None:
        """Text to scan: the indexed exams that best match a phrase."""
        from search_svc.client import SearchClient

        with SearchClient(url) as client:
            hits = _rpc(lambda: client.search_text(phrase, top_k=top, vendors=vendor))
        rows = [_hit_dict(h.exam, h.score) for h in hits]
        if as_json:
            typer.echo(json.dumps(rows))
        else:
            _print_hits(rows)

    @app.command("similar")
    def similar(study: str = typer.Argument(..., help="A study folder/zip (uploaded to the encoder) or a study key."),
                top: int = typer.Option(10, "--top"),
                as_json: bool = typer.Option(False, "--json"),
                url: Optional[str] = typer.Option(None, help="Search service (default CMR_SEARCH_URL)."),
                encoder_url: Optional[str] = typer.Option(None, help="Encoder (default CMR_ENCODER_URL).")) -> None:
        """Scan to scan and scan to report: the most similar indexed exams ('digital twins') and nearest reports."""
        from encoder_svc.client import EncoderClient
        from search_svc.client import SearchClient

        if _STUDY_KEY.match(study):
            query: dict[str, Any] = {"study_key": study}
        elif Path(study).exists():
            with EncoderClient(encoder_url) as enc:
                query = {"embedding": _rpc(lambda: enc.encode_study(study)).embedding}
        else:
            _fail(f"{study}: neither a study folder/zip nor a study key")
        with SearchClient(url) as client:
            r = _rpc(lambda: client.similar(top_k=top, **query))
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
