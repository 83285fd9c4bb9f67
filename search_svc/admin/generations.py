"""Index generations: one exams + reports collection pair per model version, and which one is active.

Vectors of two model versions are not comparable, so a model upgrade writes a new generation beside the
active one and then switches. The table (generations, active, previous) is a small JSON document written
atomically (temp file, fsync, os.replace): a crash leaves the old table or the new one, never half of one.
Qdrant Edge has no aliases, so this table is the alias there; on a Qdrant server the switch is also mirrored
into collection aliases (see router.py).

An index made before generations existed has no table: its plain `exams` / `reports` collections become the
first generation, named after the model version the service serves, without moving any data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cmr.durable import fsync_path
from search_svc.store import EXAMS, REPORTS

TABLE_FORMAT = "cmr-index-generations/1"
TABLE_FILE = "generations.json"
_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_SLUG = 40  # "reports-" + slug stays well inside the 64-character collection name limit


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def generation_name(model_version: str) -> str:
    """A collection-safe name of a model version: 'cmr-clip-small@3f2a9c0d1b7e' -> 'cmr-clip-small-3f2a9c0d1b7e'
    (long versions are cut and get a hash suffix, so two versions never share a name)."""
    slug = _SLUG.sub("-", model_version.lower()).strip("-") or "model"
    if not slug[0].isalpha():
        slug = f"g-{slug}"
    if len(slug) > _MAX_SLUG:
        slug = f"{slug[:_MAX_SLUG - 9].rstrip('-')}-{hashlib.sha256(model_version.encode()).hexdigest()[:8]}"
    return slug


@dataclass(frozen=True)
class Generation:
    name: str
    model_version: str
    dim: int
    exams: str  # collection names
    reports: str
    created_at: str
    checkpoint: str = ""  # the checkpoint file it was embedded with, when known (calibration lives beside it)

    @classmethod
    def new(cls, model_version: str, dim: int, checkpoint: str = "") -> Generation:
        name = generation_name(model_version)
        return cls(name, model_version, dim, f"{EXAMS}-{name}", f"{REPORTS}-{name}", utc_now(), checkpoint)

    @classmethod
    def legacy(cls, model_version: str, dim: int, checkpoint: str = "") -> Generation:
        """The collections of an index made before generations: kept where they are."""
        return cls(generation_name(model_version), model_version, dim, EXAMS, REPORTS, utc_now(), checkpoint)

    @property
    def collections(self) -> tuple[str, str]:
        return self.exams, self.reports


@dataclass(frozen=True)
class GenerationTable:
    generations: dict[str, Generation]
    active: str
    previous: str = ""  # the rollback target; "" when there is none
    updated_at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.active not in self.generations:
            raise ValueError(f"active generation {self.active!r} is not in the table")
        if self.previous and self.previous not in self.generations:
            raise ValueError(f"previous generation {self.previous!r} is not in the table")

    def get(self, name: str) -> Generation:
        try:
            return self.generations[name]
        except KeyError:
            raise KeyError(f"no generation {name!r}; known: {sorted(self.generations)}") from None

    def by_version(self, model_version: str) -> Generation | None:
        return next((g for g in self.generations.values() if g.model_version == model_version), None)

    def with_generation(self, gen: Generation) -> GenerationTable:
        return replace(self, generations={**self.generations, gen.name: gen}, updated_at=utc_now())

    def switched(self, name: str) -> GenerationTable:
        self.get(name)
        return replace(self, active=name, previous=self.active if name != self.active else self.previous,
                       updated_at=utc_now())

    def without(self, name: str) -> GenerationTable:
        rest = {k: v for k, v in self.generations.items() if k != name}
        return replace(self, generations=rest, previous="" if self.previous == name else self.previous,
                       updated_at=utc_now())

    def to_dict(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "active": self.active, "previous": self.previous,
                "updated_at": self.updated_at,
                "generations": [asdict(g) for g in sorted(self.generations.values(), key=lambda g: g.created_at)]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationTable:
        if data.get("format") != TABLE_FORMAT:
            raise ValueError(f"not a generation table (format {data.get('format')!r})")
        gens = {g["name"]: Generation(**g) for g in data["generations"]}
        return cls(gens, data["active"], data.get("previous", ""), data.get("updated_at", utc_now()))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(data, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk: the old file stays, and no half-written temp file is left
        raise
    fsync_path(path.parent)  # make the rename itself durable


def load_table(path: Path) -> GenerationTable | None:
    if not path.is_file():
        return None
    return GenerationTable.from_dict(json.loads(path.read_text()))


def save_table(path: Path, table: GenerationTable) -> None:
    write_json_atomic(path, table.to_dict())


__all__ = ["TABLE_FILE", "Generation", "GenerationTable", "generation_name", "load_table", "save_table",
           "utc_now", "write_json_atomic"]
