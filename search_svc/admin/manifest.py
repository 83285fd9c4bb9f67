"""The backup manifest and the checks both backup kinds share: what was backed up (collections, point counts,
model versions, a digest of every point), when, and a checksum of every file.

The content digest is computed from the points themselves (id, payload, vector bytes, in id order), not from
the engine's files, so it proves a restore holds exactly the data that was backed up whatever the engine did
to its files on opening them (WAL replay, segment versions).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from search_svc.store import VectorStore

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "cmr-index-backup/1"
TABLE_COPY = "generations.json"
BLOCK = 1 << 20
PAGE = 4096  # a file system block: the unit a sparse copy leaves out
_ZERO = bytes(BLOCK)
DIGEST_PAGE = 2048


class BackupError(Exception):
    """A backup that cannot be made, read or restored; the message says what to do."""


@dataclass(frozen=True)
class CollectionDigest:
    name: str
    points: int
    dim: int
    model_versions: tuple[str, ...]
    content_sha256: str


@dataclass(frozen=True)
class FileEntry:
    bytes: int
    sha256: str


@dataclass
class Manifest:
    backend: str  # "edge" (copied shard folders) or "qdrant-server" (collection snapshots)
    created_at: str
    source: str
    generations: dict[str, Any]  # the generation table at backup time
    collections: list[CollectionDigest]
    files: dict[str, FileEntry] = field(default_factory=dict)  # path relative to the backup -> size, sha256
    write_pause_s: float = 0.0
    seconds: float = 0.0
    format: str = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def read(cls, backup: Path) -> Manifest:
        path = backup / MANIFEST_FILE
        if not path.is_file():
            raise BackupError(f"{backup} is not a backup: it has no {MANIFEST_FILE}")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != MANIFEST_FORMAT:
                raise BackupError(f"{path}: unknown format {d.get('format')!r} (expected {MANIFEST_FORMAT})")
            d["collections"] = [CollectionDigest(**{**c, "model_versions": tuple(c["model_versions"])})
                                for c in d["collections"]]
            d["files"] = {k: FileEntry(**v) for k, v in d["files"].items()}
            return cls(**d)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{path} is damaged: {exc}") from exc

    def collection(self, name: str) -> CollectionDigest:
        return next(c for c in self.collections if c.name == name)


def content_digest(store: VectorStore, name: str) -> CollectionDigest:
    """Every point of a collection, hashed in id order: equal digests = equal ids, payloads and vectors."""
    h = hashlib.sha256()
    versions: set[str] = set()
    points = 0
    token: str | None = None
    while True:
        page, token = store.scroll(name, None, DIGEST_PAGE, token, with_vectors=True, with_parts=True)
        for r in page:
            payload = r.payload.to_dict()
            versions.add(r.payload.model_version)
            h.update(r.id.encode())
            h.update(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
            h.update(np.asarray(r.vector, dtype="<f4").tobytes())
            points += 1
        if token is None:
            break
    info = store.collection_info(name)
    return CollectionDigest(name, points, info.dim, tuple(sorted(versions)), h.hexdigest())


def _blocks(fh: BinaryIO, size: int) -> Iterator[tuple[int, bytes | None]]:
    """(offset, bytes) of each BLOCK-aligned block of a file; None for a block of zeros. Holes are found with
    SEEK_DATA and never read: Qdrant preallocates its mmap and WAL files (32 MB each, mostly empty)."""
    offset = 0
    while offset < size:
        try:
            data = os.lseek(fh.fileno(), offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            data = size
        while offset + BLOCK <= data:  # whole blocks inside the hole
            yield offset, None
            offset += BLOCK
        if offset >= size:
            return
        fh.seek(offset)
        block = fh.read(min(BLOCK, size - offset))
        yield offset, None if block == _ZERO[:len(block)] else block
        offset += len(block)


def _nonzero_runs(block: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of the runs of PAGE-sized pieces of a block that are not all zero: most of Qdrant's small
    files hold a few bytes in a preallocated MB, and only those pages need writing."""
    start = None
    for i in range(0, len(block), PAGE):
        piece = block[i:i + PAGE]
        zero = piece == _ZERO[:len(piece)]
        if not zero and start is None:
            start = i
        elif zero and start is not None:
            yield start, i
            start = None
    if start is not None:
        yield start, len(block)


def copy_sparse(src: Path, dst: Path) -> None:
    """Copy a file writing only its non-zero blocks (the rest stays a hole in the copy too)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    size = src.stat().st_size
    wrote = False
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for offset, block in _blocks(fin, size):
            for start, end in () if block is None else _nonzero_runs(block):
                fout.seek(offset + start)
                fout.write(block[start:end])
                wrote = True
        fout.truncate(size)
        if wrote:  # a file of holes only has no data to make durable
            fout.flush()
            os.fsync(fout.fileno())


def copy_tree_sparse(src: Path, dst: Path) -> int:
    """Copy a folder with copy_sparse; returns the bytes (logical size) copied."""
    total = 0
    for p in sorted(src.rglob("*")):
        if p.is_file():
            copy_sparse(p, dst / p.relative_to(src))
            total += p.stat().st_size
    return total


def file_sha256(path: Path) -> str:
    """SHA-256 of the list of per-MiB block SHA-256s: a function of the file's content only (a hole and
    written zeros hash alike), computed without reading the holes."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as fh:
        for offset, block in _blocks(fh, size):
            h.update(_zero_digest(min(BLOCK, size - offset)) if block is None else hashlib.sha256(block).digest())
    return h.hexdigest()


@lru_cache(maxsize=8)
def _zero_digest(length: int) -> bytes:
    return hashlib.sha256(bytes(length)).digest()


def checksum_files(root: Path, exclude: tuple[str, ...] = (MANIFEST_FILE,)) -> dict[str, FileEntry]:
    return {p.relative_to(root).as_posix(): FileEntry(p.stat().st_size, file_sha256(p))
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).as_posix() not in exclude}


def check_files(backup: Path, manifest: Manifest) -> list[str]:
    """Problems with the backup's files (missing, wrong size, wrong checksum, unexpected); [] when intact."""
    problems = []
    for rel, entry in manifest.files.items():
        p = backup / rel
        if not p.is_file():
            problems.append(f"missing file {rel}")
        elif p.stat().st_size != entry.bytes:
            problems.append(f"{rel}: {p.stat().st_size} bytes, manifest says {entry.bytes}")
        elif file_sha256(p) != entry.sha256:
            problems.append(f"{rel}: checksum differs from the manifest")
    present = {q.relative_to(backup).as_posix() for q in backup.rglob("*") if q.is_file()}
    extra = present - set(manifest.files) - {MANIFEST_FILE}
    problems += [f"unexpected file {rel}" for rel in sorted(extra)]
    return problems


def compare_digests(expected: list[CollectionDigest], store: VectorStore) -> list[str]:
    """Problems found comparing a restored store with the manifest; [] when every collection is identical."""
    problems = []
    for c in expected:
        if not store.collection_exists(c.name):
            problems.append(f"collection {c.name} is missing")
            continue
        got = content_digest(store, c.name)
        if got.points != c.points:
            problems.append(f"collection {c.name}: {got.points} points, manifest says {c.points}")
        elif got.content_sha256 != c.content_sha256:
            problems.append(f"collection {c.name}: content differs from the backup (payloads or vectors)")
    return problems


__all__ = ["MANIFEST_FILE", "TABLE_COPY", "BackupError", "CollectionDigest", "FileEntry", "Manifest",
           "check_files", "checksum_files", "compare_digests", "content_digest", "copy_sparse",
           "copy_tree_sparse", "file_sha256"]
