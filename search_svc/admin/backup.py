"""Backup and restore of the embedded store (Qdrant Edge): a consistent copy of the shard folders taken while
the service keeps serving.

Backup: writes (upserts, deletes) of every generation are held back and the shards flushed; the collection
folders are copied (sparse); writes resume. Reads never stop. The copy is then opened on its own to digest
every point and checked against the live counts taken during the pause, its files are checksummed, and
manifest.json is written last; the folder is renamed into place only when complete, so a half-written
backup is never mistaken for one.

Restore (offline, into a fresh folder): file checksums first, then the copy is opened and every collection's
content digest must equal the manifest's. Verify = the same on a scratch folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cmr.durable import fsync_path
from search_svc.admin.generations import GenerationTable, save_table, utc_now
from search_svc.admin.manifest import (
    TABLE_COPY,
    BackupError,
    Manifest,
    check_files,
    checksum_files,
    compare_digests,
    content_digest,
    copy_tree_sparse,
)
from search_svc.admin.router import IndexRouter
from search_svc.store import DiskFullError, EdgeStore, IndexParams

log = logging.getLogger(__name__)

# Disk space a backup takes per byte the source collections take: the copy, plus what the engine allocates when
# the copy is opened for its digest (its preallocated WAL and mmap files). Measured 2.7x for an empty index on
# tmpfs, which keeps no holes in those files; about 1x on ext4.
BACKUP_SPACE_FACTOR = 3.0


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    index_dir: Path
    seconds: float


def _fresh_target(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path} exists and is not empty: back up / restore into a new folder")


def sync_tree(root: Path) -> int:
    """fsync every file and folder under `root`, and `root`'s parent (which holds its name): a backup or restore
    is answered only once a power cut can no longer take it back. Returns how many were synced."""
    n = 0
    for p in sorted(root.rglob("*"), key=lambda q: len(q.parts), reverse=True):  # files before their folders
        if p.is_file() or p.is_dir():
            fsync_path(p)
            n += 1
    for folder in (root, root.parent):
        fsync_path(folder)
    return n + 2


def remove_partial_backups(root: Path) -> list[Path]:
    """Delete the `.<name>.partial` folders a backup killed half-way left under `root` (each can be a full copy
    of the index). Only safe when no backup is running: the service calls it once, as it starts."""
    found = sorted(p for p in root.glob(".*.partial") if p.is_dir()) if root.is_dir() else []
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
        log.warning("removed %s: a backup that never finished (the service stopped during it)", p)
    return found


def _table_collections(table: dict) -> list[str]:
    return [c for g in table["generations"] for c in (g["exams"], g["reports"])]


def allocated_bytes(folder: Path) -> int:
    """Disk space the files under `folder` take (allocated blocks, not their logical size: holes are free)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def check_backup_space(sources: list[Path], dest: Path, reserve_bytes: int) -> None:
    """DiskFullError (RESOURCE_EXHAUSTED, naming the folder) unless the disk under `dest` can take a backup of
    `sources` and still keep `reserve_bytes` free (the live index's own reserve when they share a disk). Why:
    the trial open of the copy writes through memory maps like the live engine, and a memory-mapped write
    that finds the disk full kills the whole service with SIGBUS (reads included; seen in `cmr bench crash`'s
    disk phase), not just the backup."""
    folder = next(p for p in (dest, *dest.parents) if p.exists())
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    need = int(sum(allocated_bytes(s) for s in sources) * BACKUP_SPACE_FACTOR) + reserve_bytes
    if free < need:
        raise DiskFullError(f"the backup disk is full: {free / 2**20:.0f} MB free under {folder}, a backup of this "
                            f"index needs about {need / 2**20:.0f} MB (the copy, opening it to check it, and the "
                            f"{reserve_bytes / 2**20:.0f} MB the index keeps free); nothing was written. Free "
                            "space there or back up elsewhere (CMR_BACKUP_DIR)")


def backup_edge(router: IndexRouter, dest: Path) -> Manifest:
    """A consistent backup of every generation of the router's Edge store into the new folder `dest`."""
    store = router.store
    if not isinstance(store, EdgeStore):
        raise BackupError(f"a shard-folder backup needs the embedded store, not {store.backend}")
    _fresh_target(dest)
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    t0 = time.perf_counter()
    check_backup_space([store.root / c for c in _table_collections(router.table.to_dict())], dest,
                       store.min_free_bytes)
    try:
        with router.writes_paused():
            t_pause = time.perf_counter()
            table = router.table.to_dict()
            names = _table_collections(table)
            live = {c: store.count(c) for c in names}
            for c in names:
                copy_tree_sparse(store.root / c, partial / c)
            pause = time.perf_counter() - t_pause
        save_table(partial / TABLE_COPY, GenerationTable.from_dict(table))
        with EdgeStore(partial, IndexParams()) as copy:
            digests = [content_digest(copy, c) for c in names]
        wrong = [f"{d.name}: {d.points} points in the copy, {live[d.name]} live" for d in digests
                 if d.points != live[d.name]]
        if wrong:
            raise BackupError(f"the copy does not match the live index ({'; '.join(wrong)}); nothing was kept")
        manifest = Manifest(backend="edge", created_at=utc_now(), source=str(store.root), generations=table,
                            collections=digests, files=checksum_files(partial), write_pause_s=round(pause, 4))
        manifest.seconds = round(time.perf_counter() - t0, 3)
        (partial / "manifest.json").write_text(manifest.to_json())
        sync_tree(partial)
    except BaseException:
        # a failed backup (a full disk: ENOSPC) must not keep its half copy: it would hold the space it ran
        # out of until the service's next start
        shutil.rmtree(partial, ignore_errors=True)
        raise
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.rmdir()  # empty (checked above)
    partial.rename(dest)
    sync_tree(dest)  # the rename (cheap: the files' data is already on disk)
    log.info("backup of %d collections in %s (writes paused %.3f s, %.1f s in all)", len(names), dest, pause,
             manifest.seconds)
    return manifest


def restore_edge(backup: Path, index_dir: Path, *, durable: bool = True) -> RestoreResult:
    """Restore an Edge backup into the new folder `index_dir`, verified against the manifest; on any
    mismatch nothing is left at `index_dir`. durable: fsync it all before returning (a trial restore need not)."""
    t0 = time.perf_counter()
    manifest = Manifest.read(backup)
    if manifest.backend != "edge":
        raise BackupError(f"{backup} is a {manifest.backend} backup: restore it with --qdrant-url")
    problems = check_files(backup, manifest)
    if problems:
        raise BackupError(f"{backup} is damaged: {'; '.join(problems[:5])}")
    _fresh_target(index_dir)
    partial = index_dir.with_name(f".{index_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for c in _table_collections(manifest.generations):
        copy_tree_sparse(backup / c, partial / c)
    shutil.copy2(backup / TABLE_COPY, partial / TABLE_COPY)
    with EdgeStore(partial, IndexParams()) as store:
        problems = compare_digests(manifest.collections, store)
    if problems:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"the restored index differs from the backup: {'; '.join(problems[:5])}")
    if index_dir.exists():
        index_dir.rmdir()
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    if durable:
        sync_tree(partial)
    partial.rename(index_dir)
    if durable:
        sync_tree(index_dir)
    return RestoreResult(manifest, index_dir, time.perf_counter() - t0)


def verify_backup(backup: Path, deep: bool = True) -> tuple[Manifest | None, list[str]]:
    """(manifest, problems): file checksums, and with deep=True a trial restore into a scratch folder whose
    every point must match the manifest's digests. [] problems = the backup restores exactly."""
    try:
        manifest = Manifest.read(backup)
    except BackupError as exc:
        return None, [str(exc)]
    problems = check_files(backup, manifest)
    if problems or not deep:
        return manifest, problems
    if manifest.backend != "edge":
        return manifest, []  # snapshots are checked by the server on recovery; files were checked above
    with tempfile.TemporaryDirectory(prefix="cmr-verify-") as tmp:
        try:
            restore_edge(backup, Path(tmp) / "index", durable=False)
        except BackupError as exc:
            problems.append(str(exc))
    return manifest, problems


__all__ = ["BACKUP_SPACE_FACTOR", "RestoreResult", "allocated_bytes", "backup_edge", "check_backup_space",
           "remove_partial_backups", "restore_edge", "sync_tree", "verify_backup"]
