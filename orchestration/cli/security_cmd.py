"""`cmr security init-dev`, `cmr auth token|add-user`, `cmr audit query|verify`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from orchestration.cli.lazy import get_settings


def _roles(values: list[str]) -> list[str]:
    from cmr.security.roles import Role

    known = {r.value for r in Role}
    bad = [v for v in values if v not in known]
    if bad or not values:
        raise typer.BadParameter(f"roles must be among {sorted(known)} (got {values or 'none'})")
    return values


def _when(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date/time (e.g. 2026-11-24 or 2026-11-24T10:00+00:00)")
    return parsed if parsed.tzinfo else parsed.astimezone()


def register(app: typer.Typer) -> None:
    security = typer.Typer(help="TLS certificates and token keys for development and the one-machine stack.",
                           no_args_is_help=True)
    auth = typer.Typer(help="Bearer tokens and local login accounts.", no_args_is_help=True)
    audit = typer.Typer(help="The audit trail: who searched, exported, drafted or deleted what.", no_args_is_help=True)
    app.add_typer(security, name="security")
    app.add_typer(auth, name="auth")
    app.add_typer(audit, name="audit")

    @security.command("init-dev")
    def init_dev_cmd(folder: Optional[Path] = typer.Option(None, "--dir", help="default <data_dir>/security"),
                     host: list[str] = typer.Option([], "--host", help="extra host name/IP in every certificate"),
                     force: bool = typer.Option(False, "--force", help="new CA, keys and accounts")) -> None:
        """A local CA, a certificate per service (server + client auth), a token-signing key, service tokens and
        UI accounts (clinician, researcher, admin). Keeps what exists; renews the service tokens."""
        from cmr.security.devca import DevSecurity, init_dev

        folder = folder or get_settings().data_dir / "security"
        sec: DevSecurity = init_dev(folder, hosts=host, force=force)
        typer.echo(f"development CA, certificates and keys in {folder}")
        for user, password in sec.passwords.items():
            typer.echo(f"  UI account {user:<11} password {password}")
        if not sec.passwords:
            typer.echo(f"  UI accounts unchanged (passwords in {folder / 'passwords.txt'})")
        typer.echo("operator shell (TLS + admin token):")
        for k, v in sec.env("client").items():
            typer.echo(f"  export {k}={v}")
        env_file = folder / "client.env"
        typer.echo(f"(also in {env_file}: `set -a; . {env_file}; set +a`)")

    @auth.command("token")
    def token_cmd(subject: str = typer.Option(..., help="who the token names (user or service)"),
                  role: list[str] = typer.Option(..., "--role", help="clinician, researcher, ingest, admin"),
                  ttl: Optional[int] = typer.Option(None, help="seconds; default CMR_AUTH_TOKEN_TTL_S"),
                  out: Optional[Path] = typer.Option(None, help="write to this file (0600) instead of stdout")) -> None:
        """Mint a signed token with the local signing key (CMR_AUTH_SIGNING_KEY)."""
        from cmr.security.tokens import AuthError, TokenIssuer

        settings = get_settings()
        try:
            token = TokenIssuer.from_settings(settings).mint(subject, _roles(role), ttl or settings.auth_token_ttl_s)
        except AuthError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        if out is None:
            typer.echo(token)
        else:
            out.write_text(token + "\n")
            out.chmod(0o600)

    @auth.command("add-user")
    def add_user_cmd(name: str, role: list[str] = typer.Option(..., "--role"),
                     password_stdin: bool = typer.Option(False, "--password-stdin",
                                                         help="read the password from stdin (else prompt)")) -> None:
        """Create or update a UI login account in CMR_AUTH_USERS_FILE."""
        from cmr.security.users import UserStore

        settings = get_settings()
        if settings.auth_users_file is None:
            typer.echo("error: set CMR_AUTH_USERS_FILE", err=True)
            raise typer.Exit(2)
        password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
            "password", hide_input=True, confirmation_prompt=True)
        try:
            UserStore(settings.auth_users_file).set_user(name, password, _roles(role))
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        typer.echo(f"user {name}: {', '.join(role)}")

    @audit.command("query")
    def query_cmd(subject: Optional[str] = typer.Option(None, help="token subject (user or service)"),
                  action: Optional[str] = typer.Option(None, help="search, similar, zero-shot, few-shot, cohort, "
                                                       "export, draft, upsert, delete, get, ..."),
                  service: Optional[str] = typer.Option(None, help="encoder, search, generator"),
                  status: Optional[str] = typer.Option(None, help="OK, PERMISSION_DENIED, UNAUTHENTICATED, ..."),
                  since: Optional[str] = typer.Option(None, help="ISO date/time"),
                  until: Optional[str] = typer.Option(None, help="ISO date/time"),
                  limit: int = typer.Option(100, help="the newest N matches; 0 = all"),
                  as_json: bool = typer.Option(False, "--json", help="JSON lines"),
                  folder: Optional[Path] = typer.Option(None, "--dir", help="default CMR_AUDIT_DIR")) -> None:
        """Audit entries of every service, oldest first."""
        from rich.table import Table

        from cmr.security.audit import audit_dir, query
        from orchestration.cli.tables import print_table

        entries = query(folder or audit_dir(get_settings()), subject=subject, action=action, service=service,
                        status=status, since=_when(since), until=_when(until), limit=limit or None)
        if as_json:
            for e in entries:
                typer.echo(json.dumps(asdict(e)))
            return
        table = Table("when (UTC)", "service", "who", "roles", "action", "status", "results", "what")
        for e in entries:
            table.add_row(e.ts[:23], e.service, e.subject, ",".join(e.roles), e.action, e.status,
                          "" if e.results is None else str(e.results),
                          json.dumps(e.what)[:80] if e.what else e.detail[:80])
        print_table(table)
        typer.echo(f"{len(entries)} entries")

    @audit.command("verify")
    def verify_cmd(folder: Optional[Path] = typer.Option(None, "--dir", help="default CMR_AUDIT_DIR")) -> None:
        """Check every audit file's hash chain: exit 1 naming the first altered, removed or reordered entry."""
        from cmr.security.audit import audit_dir, verify

        reports = verify(folder or audit_dir(get_settings()))
        for r in reports:
            typer.echo(f"{'ok    ' if r.ok else 'BROKEN'} {r.file}: {r.entries} entries {r.problem or r.note}")
        if not reports:
            typer.echo("no audit files")
        if not all(r.ok for r in reports):
            raise typer.Exit(1)
