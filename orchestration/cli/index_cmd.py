"""`cmr index ...`: backups and model upgrades of the search index (admin only; docs/services/backup.md and
docs/services/upgrade.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from orchestration.cli.search_cmd import search_rpc  # the search service's RPC errors as one line

index_app = typer.Typer(help="Back up, restore and upgrade the search index (admin).", no_args_is_help=True)
_URL = typer.Option(None, "--url", help="Search service (default CMR_SEARCH_URL).")


def _fail(reason: str, code: int = 2) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(code)


def _admin(url: str | None) -> Any:
    from search_svc.admin.client import AdminClient

    return AdminClient(url)


@index_app.command("backup")
def backup(dest: str = typer.Argument(..., help="Backup folder: a name (or path) inside the server's backup "
                                      "dir, CMR_BACKUP_DIR (default <data_dir>/backups)."),
           url: Optional[str] = _URL) -> None:
    """A consistent backup of the running index (writes pause briefly; searches go on)."""
    with _admin(url) as admin:
        r = search_rpc(lambda: admin.backup(dest))
    for c in r.collections:
        typer.echo(f"  {c.name:<48} {c.points:>9} points  {','.join(c.model_versions)}")
    typer.echo(f"backup written to {r.path}: {r.bytes / 1e6:.1f} MB in {r.seconds:.1f} s "
               f"(writes paused {r.write_pause_s:.2f} s)")


@index_app.command("verify")
def verify(backup_dir: Path = typer.Argument(..., help="A backup folder on this machine."),
           quick: bool = typer.Option(False, "--quick", help="Checksums only, no trial restore.")) -> None:
    """Check a backup: file checksums, and a trial restore whose every point must match the manifest."""
    from search_svc.admin.backup import verify_backup

    manifest, problems = verify_backup(backup_dir, deep=not quick)
    if manifest is not None:
        for c in manifest.collections:
            typer.echo(f"  {c.name:<48} {c.points:>9} points  {','.join(c.model_versions)}")
    if problems:
        for p in problems:
            typer.echo(f"  problem: {p}", err=True)
        _fail(f"{backup_dir} does not restore cleanly", 1)
    typer.echo(f"{backup_dir}: ok ({manifest.backend} backup of {manifest.created_at})")


@index_app.command("restore")
def restore(src: Path = typer.Argument(..., help="A backup folder."),
            index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="New, empty folder for an embedded "
                                                     "(Edge) index; start the service with CMR_INDEX_DIR there."),
            qdrant_url: Optional[str] = typer.Option(None, "--qdrant-url", help="Qdrant server to recover the "
                                                     "snapshots into (a server backup; untested against a live "
                                                     "server, see docs/services/backup.md).")) -> None:
    """Offline restore, verified against the backup's manifest (nothing is left behind on a mismatch)."""
    from search_svc.admin.manifest import BackupError

    try:
        if index_dir is not None:
            from search_svc.admin.backup import restore_edge

            r = restore_edge(src, index_dir)
            typer.echo(f"restored {sum(c.points for c in r.manifest.collections)} points in "
                       f"{len(r.manifest.collections)} collections into {index_dir} in {r.seconds:.1f} s; "
                       f"every point matches the backup")
            return
        if qdrant_url:
            from cmr.config import get_settings
            from search_svc.admin.snapshots import restore_server
            from search_svc.server import generations_path
            from search_svc.store import QdrantStore

            s = get_settings()
            with QdrantStore.connect(qdrant_url, s.qdrant_api_key) as store:
                m = restore_server(src, store, qdrant_url, s.qdrant_api_key, generations_path(s))
            typer.echo(f"recovered {len(m.collections)} collections into {qdrant_url}")
            return
    except BackupError as exc:
        _fail(str(exc), 1)
    _fail("say where to restore: --index-dir NEW (embedded) or --qdrant-url URL (server)")


@index_app.command("generations")
def generations(url: Optional[str] = _URL, as_json: bool = typer.Option(False, "--json")) -> None:
    """The index generations (one per model version), which is active and which is the rollback target."""
    from google.protobuf.json_format import MessageToDict

    with _admin(url) as admin:
        r = search_rpc(admin.generations)
    if as_json:
        typer.echo(json.dumps(MessageToDict(r)))
        return
    for g in r.generations:
        mark = "active  " if g.active else "previous" if g.previous else "        "
        typer.echo(f"{mark} {g.name:<40} {g.exams:>8} exams {g.reports:>8} reports  {g.created_at}")


@index_app.command("upgrade")
def upgrade(checkpoint: Path = typer.Option(..., "--checkpoint", exists=True, dir_okay=False,
                                            help="The new CMR-CLIP checkpoint."),
            workers: int = typer.Option(1, "--workers", min=1, help="Processes reading studies."),
            url: Optional[str] = _URL) -> None:
    """Re-embed every archived study with a new checkpoint into a new generation while the active one keeps
    serving (resumable: run it again to finish or catch up). Then `cmr index switch`."""
    from rich.progress import Progress

    from cmr.config import get_settings
    from search_svc.admin.reembed import reembed

    with _admin(url) as admin, Progress() as bar:
        task = bar.add_task("re-embedding", total=None)
        try:
            r = search_rpc(lambda: reembed(admin, checkpoint, get_settings(), workers=workers,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total)))
        except ValueError as exc:  # not a checkpoint, or already the active generation
            _fail(str(exc))
    typer.echo(f"generation {r.generation} ({r.model_version}): {r.written} studies written, {r.skipped} already "
               f"there, of {r.archived} archived, in {r.seconds:.1f} s")
    if r.not_found:
        typer.echo(f"  {len(r.not_found)} archived studies are under no study root (CMR_STUDY_ROOTS) - e.g. "
                   f"{r.not_found[:3]}", err=True)
    for key, why in r.failed[:10]:
        typer.echo(f"  {key}: {why}", err=True)
    if not r.complete:
        _fail("the new generation is incomplete: fix the above and run again (it resumes), or switch --force", 1)
    typer.echo(f"next: cmr index switch {r.generation}")


@index_app.command("switch")
def switch(generation: str = typer.Argument(..., help="Generation to make active (see `cmr index generations`)."),
           force: bool = typer.Option(False, "--force", help="Switch even if studies are missing from it."),
           url: Optional[str] = _URL) -> None:
    """Make a generation the active one, atomically (the old one stays for `cmr index rollback`)."""
    with _admin(url) as admin:
        r = search_rpc(lambda: admin.switch(generation, force))
    typer.echo(f"active: {r.active} (rollback target: {r.previous}){f'; {r.missing} studies missing' if r.missing else ''}")


@index_app.command("rollback")
def rollback(url: Optional[str] = _URL) -> None:
    """Make the previous generation active again."""
    with _admin(url) as admin:
        r = search_rpc(admin.rollback)
    typer.echo(f"active: {r.active} (rollback target: {r.previous})")


@index_app.command("drop")
def drop(generation: str = typer.Argument(...),
         force: bool = typer.Option(False, "--force", help="Drop even the rollback target."),
         url: Optional[str] = _URL) -> None:
    """Delete a generation that is not active."""
    with _admin(url) as admin:
        search_rpc(lambda: admin.drop(generation, force))
    typer.echo(f"dropped {generation}")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
