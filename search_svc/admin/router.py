"""Which generation a call of the search service uses, and the switch between generations.

The active generation is where lookups by study key, few-shot and cohorts' default go. A query embedded by
the encoder goes to the generation of the encoder's model version, so searches keep working while the
encoder is rolled to a new checkpoint before or after the switch (docs/services/upgrade.md). Upserts go to
the generation of their vectors' model version.

Table changes (create, switch, rollback, drop) are serialised by one lock and persisted before they take
effect in memory; a request reads the table once (one attribute read) and uses that view throughout, so it
never mixes two generations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from search_svc.admin.generations import Generation, GenerationTable, load_table, save_table
from search_svc.index import ExamIndex
from search_svc.store import EXAMS, QdrantStore, VectorStore
from search_svc.store.locks import ReadWriteLock

log = logging.getLogger(__name__)

# Aliases a Qdrant server (or qdrant-client local mode) keeps pointing at the active generation's collections,
# so every replica and any other reader of the cluster sees one switch at one moment.
ACTIVE_ALIASES = {"exams": "cmr-active-exams", "reports": "cmr-active-reports"}
KEY_PAGE = 4096


class GenerationError(Exception):
    """A table change that is refused (unknown generation, dropping the active one, missing studies)."""


@dataclass(frozen=True)
class Served:
    """One generation with its index: what a request searches."""

    generation: Generation
    index: ExamIndex


class IndexRouter:
    def __init__(self, store: VectorStore, secret: str, table_path: Path | None, *, model_version: str,
                 dim: int, checkpoint: str = "") -> None:
        """table_path: where the generation table lives (None: in memory only). model_version/dim/checkpoint:
        what the service serves; they name the first generation of an index that has no table yet."""
        self.store = store
        self.table_path = table_path
        self._secret = secret
        self.write_gate = ReadWriteLock()  # upserts/deletes of every generation read-hold it; backups write-hold it
        self._lock = threading.Lock()
        table = load_table(table_path) if table_path is not None else None
        if table is None:
            first = self._legacy_generation(model_version, dim, checkpoint)
            table = GenerationTable({first.name: first}, first.name)
            if table_path is not None:
                save_table(table_path, table)
        self._indexes: dict[str, ExamIndex] = {}
        for gen in table.generations.values():
            self._indexes[gen.name] = self._open(gen)
        self._table = table
        self._mirror_aliases(table.get(table.active))

    # --- reads -----------------------------------------------------------------------------------------------
    @property
    def table(self) -> GenerationTable:
        return self._table

    def active(self) -> Served:
        table = self._table
        return self._served(table.get(table.active))

    def for_version(self, model_version: str) -> Served | None:
        """The generation holding vectors of `model_version`, or None."""
        gen = self._table.by_version(model_version)
        return None if gen is None else self._served(gen)

    def get(self, name: str) -> Served:
        try:
            return self._served(self._table.get(name))
        except KeyError as exc:
            raise GenerationError(str(exc.args[0])) from None

    def all(self) -> list[Served]:
        return [self._served(g) for g in self._table.generations.values()]

    def keys(self, name: str) -> set[str]:
        """Every study key in a generation's exams collection."""
        return {r.payload.study_key for page in self.get(name).index.iter_exams(with_vectors=False) for r in page}

    # --- changes ---------------------------------------------------------------------------------------------
    def create(self, model_version: str, dim: int, checkpoint: str = "") -> Generation:
        """The generation of `model_version`, created empty if it does not exist (idempotent)."""
        with self._lock:
            found = self._table.by_version(model_version)
            if found is not None:
                if found.dim != dim:
                    raise GenerationError(f"generation {found.name} holds {found.dim}-d vectors, not {dim}-d")
                return found
            gen = Generation.new(model_version, dim, checkpoint)
            if gen.name in self._table.generations:
                raise GenerationError(f"generation name {gen.name!r} is taken by model version "
                                      f"{self._table.generations[gen.name].model_version}")
            self._indexes[gen.name] = self._open(gen)
            self._commit(self._table.with_generation(gen))
            log.info("generation %s created for %s (%s, %s)", gen.name, model_version, gen.exams, gen.reports)
            return gen

    def missing(self, source: str, target: str) -> int:
        """Studies of `source` that `target` lacks."""
        return len(self.keys(source) - self.keys(target))

    def switch(self, name: str, force: bool = False) -> tuple[GenerationTable, int]:
        """Make `name` the active generation; returns the new table and how many studies of the old active
        generation it lacks (refused when > 0 unless force)."""
        with self._lock:
            table = self._table
            self.get(name)
            missing = 0 if name == table.active else self.missing(table.active, name)
            if missing and not force:
                raise GenerationError(f"generation {name} lacks {missing} studies of the active generation "
                                      f"{table.active}: run the upgrade again (it resumes), or force")
            new = table.switched(name)
            self._commit(new)
            log.warning("active generation: %s -> %s", table.active, name)
            return new, missing

    def rollback(self) -> GenerationTable:
        with self._lock:
            table = self._table
            if not table.previous:
                raise GenerationError("no previous generation to roll back to")
            new = table.switched(table.previous)
            self._commit(new)
            log.warning("rolled back: active generation %s -> %s", table.active, new.active)
            return new

    def drop(self, name: str, force: bool = False) -> bool:
        with self._lock:
            table = self._table
            gen = table.get(name) if name in table.generations else None
            if gen is None:
                return False
            if name == table.active:
                raise GenerationError(f"generation {name} is active: switch to another one first")
            if name == table.previous and not force:
                raise GenerationError(f"generation {name} is the rollback target; force to drop it anyway")
            self._commit(table.without(name))  # forget it first: a crash leaves orphan collections, not a dangling table
            self._indexes.pop(name, None)
            with self.write_gate.write():
                for collection in gen.collections:
                    self.store.drop_collection(collection)
            log.warning("generation %s dropped", name)
            return True

    @contextmanager
    def writes_paused(self) -> Iterator[None]:
        """Hold every upsert and delete back (reads go on) and make what was written durable."""
        with self.write_gate.write():
            self.store.flush()
            yield

    # --- internals -------------------------------------------------------------------------------------------
    def _legacy_generation(self, model_version: str, dim: int, checkpoint: str) -> Generation:
        """The first generation: the plain collections, described by what they hold when they hold anything
        (a service started on a new checkpoint must not relabel an old index as the new model's)."""
        if self.store.collection_exists(EXAMS):
            page, _ = self.store.scroll(EXAMS, None, 1)
            if page and page[0].payload.model_version != model_version:
                log.warning("the index holds vectors of %s, not of the served %s: it stays that generation",
                            page[0].payload.model_version, model_version)
                return Generation.legacy(page[0].payload.model_version, self.store.collection_info(EXAMS).dim)
        return Generation.legacy(model_version, dim, checkpoint)

    def _open(self, gen: Generation) -> ExamIndex:
        return ExamIndex(self.store, gen.dim, self._secret, exams=gen.exams, reports=gen.reports,
                         write_gate=self.write_gate)

    def _served(self, gen: Generation) -> Served:
        index = self._indexes.get(gen.name)
        if index is None:  # dropped by another request in between
            raise GenerationError(f"generation {gen.name} was dropped")
        return Served(gen, index)

    def _commit(self, table: GenerationTable) -> None:
        """Persist, mirror the active generation into the server's aliases, then publish in memory."""
        if self.table_path is not None:
            save_table(self.table_path, table)
        if table.active != self._table.active:
            self._mirror_aliases(table.get(table.active))
        self._table = table

    def _mirror_aliases(self, gen: Generation) -> None:
        """Qdrant (server or client local mode): point the active aliases at `gen` in one atomic request."""
        if isinstance(self.store, QdrantStore):
            self.store.set_aliases({ACTIVE_ALIASES["exams"]: gen.exams, ACTIVE_ALIASES["reports"]: gen.reports})


__all__ = ["ACTIVE_ALIASES", "GenerationError", "IndexRouter", "Served"]
