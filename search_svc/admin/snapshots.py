"""Backup and restore on a Qdrant server or cluster: collection snapshots through qdrant-client.

UNTESTED AGAINST A LIVE SERVER: no Qdrant server can run on the development machine (no binary, no
container runtime) and qdrant-client's local mode has no snapshots. The calls follow the documented API
(create_snapshot, GET /collections/{c}/snapshots/{name}, POST /collections/{c}/snapshots/upload,
delete_snapshot); the unit tests check them against a recording stand-in of the client. See
docs/services/backup.md before relying on it.

Backup: with the service's writes held back, one snapshot per collection of every generation is created,
downloaded (checked against the server's sha256), and deleted on the server; the content digests are taken
in the same pause. Restore: each snapshot is uploaded into a server that lacks those collections, then every
collection's digest must equal the manifest's.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import httpx

from search_svc.admin.generations import GenerationTable, save_table, utc_now
from search_svc.admin.manifest import (
    TABLE_COPY,
    BackupError,
    Manifest,
    check_files,
    checksum_files,
    compare_digests,
    content_digest,
)
from search_svc.admin.router import IndexRouter
from search_svc.store import QdrantStore

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
TIMEOUT_S = 600.0


def _headers(api_key: str | None) -> dict[str, str]:
    return {"api-key": api_key} if api_key else {}


def _download(url: str, api_key: str | None, dest: Path) -> str:
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with httpx.stream("GET", url, headers=_headers(api_key), timeout=TIMEOUT_S) as r, open(dest, "wb") as fh:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            h.update(chunk)
            fh.write(chunk)
    return h.hexdigest()


def backup_server(router: IndexRouter, dest: Path, url: str, api_key: str | None = None) -> Manifest:
    store = router.store
    if not isinstance(store, QdrantStore) or store.local:
        raise BackupError("snapshots need a Qdrant server (CMR_QDRANT_URL); qdrant-client's local mode has none")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} exists and is not empty: back up into a new folder")
    client, base = store.client, url.rstrip("/")
    t0 = time.perf_counter()
    with router.writes_paused():
        t_pause = time.perf_counter()
        table = router.table.to_dict()
        names = [c for g in table["generations"] for c in (g["exams"], g["reports"])]
        digests = [content_digest(store, c) for c in names]
        snaps = {c: client.create_snapshot(collection_name=c, wait=True) for c in names}
        pause = time.perf_counter() - t_pause
    for c, snap in snaps.items():
        if snap is None:
            raise BackupError(f"the server made no snapshot of {c}")
        got = _download(f"{base}/collections/{c}/snapshots/{snap.name}", api_key,
                        dest / SNAPSHOT_DIR / f"{c}.snapshot")
        if snap.checksum and snap.checksum != got:
            raise BackupError(f"snapshot of {c} arrived damaged (sha256 {got}, server says {snap.checksum})")
        client.delete_snapshot(collection_name=c, snapshot_name=snap.name, wait=True)
    save_table(dest / TABLE_COPY, GenerationTable.from_dict(table))
    manifest = Manifest(backend="qdrant-server", created_at=utc_now(), source=base, generations=table,
                        collections=digests, files=checksum_files(dest), write_pause_s=round(pause, 4))
    manifest.seconds = round(time.perf_counter() - t0, 3)
    (dest / "manifest.json").write_text(manifest.to_json())
    return manifest


def restore_server(backup: Path, store: QdrantStore, url: str, api_key: str | None, table_path: Path) -> Manifest:
    """Upload every snapshot into the server (whose collections of those names must not exist), check the
    digests, and write the generation table where the search service will read it."""
    manifest = Manifest.read(backup)
    if manifest.backend != "qdrant-server":
        raise BackupError(f"{backup} is a {manifest.backend} backup: restore it with --index-dir")
    problems = check_files(backup, manifest)
    if problems:
        raise BackupError(f"{backup} is damaged: {'; '.join(problems[:5])}")
    taken = [c.name for c in manifest.collections if store.collection_exists(c.name)]
    if taken:
        raise BackupError(f"the server already has collections {taken}: restore into a fresh cluster")
    base = url.rstrip("/")
    for c in manifest.collections:
        path = backup / SNAPSHOT_DIR / f"{c.name}.snapshot"
        with open(path, "rb") as fh:
            r = httpx.post(f"{base}/collections/{c.name}/snapshots/upload", params={"priority": "snapshot",
                           "wait": "true"}, files={"snapshot": (path.name, fh)}, headers=_headers(api_key),
                           timeout=TIMEOUT_S)
        r.raise_for_status()
    problems = compare_digests(manifest.collections, store)
    if problems:
        raise BackupError(f"the restored collections differ from the backup: {'; '.join(problems[:5])}")
    save_table(table_path, GenerationTable.from_dict(manifest.generations))
    return manifest


__all__ = ["backup_server", "restore_server"]
