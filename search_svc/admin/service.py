"""The gRPC IndexAdminService (admin-only): backups, and the generations of a model upgrade."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from cmr.config import Settings
from cmr.rpc.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, rpc_errors
from cmr.rpc.keys import point_id
from cmr.v1 import admin_pb2, admin_pb2_grpc
from search_svc.admin.backup import backup_edge, remove_partial_backups, verify_backup
from search_svc.admin.generations import Generation
from search_svc.admin.manifest import BackupError, CollectionDigest
from search_svc.admin.router import GenerationError, IndexRouter, Served
from search_svc.admin.snapshots import backup_server
from search_svc.index import report_payload
from search_svc.store import EdgeStore, VectorPoint
from search_svc.why import stored_parts

log = logging.getLogger(__name__)

SERVICE_NAME = "cmr.v1.IndexAdminService"
DEFAULT_PAGE = 512
MAX_PAGE = 4096
MAX_WRITE = 512


def backup_root(settings: Settings) -> Path:
    return Path(settings.backup_dir or settings.data_dir / "backups")


def summary(d: CollectionDigest) -> admin_pb2.CollectionSummary:
    return admin_pb2.CollectionSummary(name=d.name, points=d.points, dim=d.dim, model_versions=list(d.model_versions),
                                       content_sha256=d.content_sha256)


class IndexAdminServicer(admin_pb2_grpc.IndexAdminServiceServicer):
    def __init__(self, router: IndexRouter, settings: Settings, on_change: Callable[[], None] = lambda: None) -> None:
        """on_change: called after the active generation changes (the search servicer drops cached cohorts)."""
        self.router = router
        self.settings = settings
        self._on_change = on_change
        remove_partial_backups(backup_root(settings))  # no backup runs before the service serves

    # --- helpers -----------------------------------------------------------------------------------------------
    def _backup_path(self, given: str) -> Path:
        """A path inside the backup root: the server never writes or reads backups anywhere else."""
        if not given.strip():
            raise InvalidArgument("give a backup folder name (or a path inside the server's backup dir)")
        root = backup_root(self.settings).resolve()
        path = (root / given).resolve()
        if path != root and root not in path.parents:
            raise InvalidArgument(f"backups live under the server's backup dir {root} (CMR_BACKUP_DIR); "
                                  f"{given!r} is outside it")
        return path

    def _served(self, name: str) -> Served:
        if not name:
            return self.router.active()
        try:
            return self.router.get(name)
        except GenerationError as exc:
            raise NotFound(str(exc)) from exc

    def _message(self, gen: Generation, counts: bool = True) -> admin_pb2.Generation:
        table = self.router.table
        exams = reports = 0
        if counts:
            idx = self.router.get(gen.name).index
            exams, reports = idx.count(), idx.count(collection=gen.reports)
        return admin_pb2.Generation(name=gen.name, model_version=gen.model_version, dim=gen.dim,
                                    exams_collection=gen.exams, reports_collection=gen.reports,
                                    created_at=gen.created_at, active=gen.name == table.active,
                                    previous=gen.name == table.previous, exams=exams, reports=reports,
                                    checkpoint=gen.checkpoint)

    # --- backups -----------------------------------------------------------------------------------------------
    @rpc_errors
    def Backup(self, request: admin_pb2.BackupRequest, context: grpc.ServicerContext) -> admin_pb2.BackupResponse:
        dest = self._backup_path(request.dest)
        try:
            if isinstance(self.router.store, EdgeStore):
                m = backup_edge(self.router, dest)
            else:
                if not self.settings.qdrant_url:
                    raise FailedPrecondition("this store has no snapshots (qdrant-client local mode)")
                m = backup_server(self.router, dest, self.settings.qdrant_url, self.settings.qdrant_api_key)
        except BackupError as exc:
            raise FailedPrecondition(str(exc)) from exc
        return admin_pb2.BackupResponse(path=str(dest), manifest_json=m.to_json(),
                                        collections=[summary(c) for c in m.collections],
                                        write_pause_s=m.write_pause_s, seconds=m.seconds,
                                        bytes=sum(f.bytes for f in m.files.values()))

    @rpc_errors
    def VerifyBackup(self, request: admin_pb2.VerifyBackupRequest,
                     context: grpc.ServicerContext) -> admin_pb2.VerifyBackupResponse:
        manifest, problems = verify_backup(self._backup_path(request.path))
        return admin_pb2.VerifyBackupResponse(ok=not problems, problems=problems,
                                              manifest_json=manifest.to_json() if manifest else "")

    # --- generations -------------------------------------------------------------------------------------------
    @rpc_errors
    def ListGenerations(self, request: admin_pb2.ListGenerationsRequest,
                        context: grpc.ServicerContext) -> admin_pb2.ListGenerationsResponse:
        table = self.router.table
        return admin_pb2.ListGenerationsResponse(
            generations=[self._message(g) for g in sorted(table.generations.values(), key=lambda g: g.created_at)],
            active=table.active, previous=table.previous, backend=self.router.store.backend)

    @rpc_errors
    def StartUpgrade(self, request: admin_pb2.StartUpgradeRequest, context: grpc.ServicerContext) -> admin_pb2.Generation:
        if not request.model_version or not request.dim:
            raise InvalidArgument("give the new model's version and embedding dimension")
        try:
            gen = self.router.create(request.model_version, int(request.dim), request.checkpoint)
        except (GenerationError, ValueError) as exc:
            raise FailedPrecondition(str(exc)) from exc
        return self._message(gen)

    @rpc_errors
    def ListArchive(self, request: admin_pb2.ListArchiveRequest,
                    context: grpc.ServicerContext) -> admin_pb2.ListArchiveResponse:
        if request.page_size > MAX_PAGE:
            raise ResourceExhausted(f"page_size {request.page_size} is over the limit of {MAX_PAGE}")
        served = self._served(request.generation)
        try:
            page, token = self.router.store.scroll(served.generation.exams, None, request.page_size or DEFAULT_PAGE,
                                                   request.page_token or None)
        except ValueError as exc:
            raise InvalidArgument(f"page_token: {exc}") from exc
        return admin_pb2.ListArchiveResponse(
            entries=[admin_pb2.ArchiveEntry(study_key=r.payload.study_key,
                                            impression="" if request.keys_only else r.payload.impression)
                     for r in page], next_page_token=token or "", generation=served.generation.name)

    @rpc_errors
    def WriteGeneration(self, request: admin_pb2.WriteGenerationRequest,
                        context: grpc.ServicerContext) -> admin_pb2.WriteGenerationResponse:
        if len(request.studies) > MAX_WRITE:
            raise ResourceExhausted(f"{len(request.studies)} studies in one request; the limit is {MAX_WRITE}")
        target = self._served(request.generation)
        source = self._served(request.source)
        gen = target.generation
        if not request.generation or gen.name == source.generation.name:
            raise InvalidArgument("name the generation being written; it must differ from the source generation")
        if request.model_version != gen.model_version:
            raise InvalidArgument(f"vectors of {request.model_version or '(none)'} cannot join generation {gen.name} "
                                  f"({gen.model_version})")
        keys = [s.study_key for s in request.studies]
        try:
            found = {r.payload.study_key: r.payload for r in source.index.get_many(keys, with_vectors=False)}
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        exams, reports, missing = [], [], []
        for s in request.studies:
            payload = found.get(s.study_key)
            if payload is None:
                missing.append(s.study_key)
                continue
            try:
                # The new model's parts, checked as Upsert does; the source's belong to the old vectors and
                # were not read (store reads leave parts out unless asked).
                image = np.asarray(s.image_embedding, np.float32)
                parts = stored_parts(s.parts, image)
                payload = dataclasses.replace(payload, model_version=gen.model_version,
                                              parts=parts if self.settings.store_embedding_parts else None)
                exams.append(VectorPoint(point_id(s.study_key), image, payload))
                if s.report_embedding:
                    reports.append(VectorPoint(point_id(s.study_key), np.asarray(s.report_embedding, np.float32),
                                               report_payload(payload)))
            except ValueError as exc:
                raise InvalidArgument(f"study {s.study_key}: {exc}") from exc
        if any(p.vector.shape[0] != gen.dim for p in (*exams, *reports)):
            raise InvalidArgument(f"generation {gen.name} holds {gen.dim}-d vectors")
        target.index.write_points(exams, reports)
        return admin_pb2.WriteGenerationResponse(written=len(exams), missing_keys=missing)

    def _switched(self, active: str, previous: str, missing: int) -> admin_pb2.SwitchResponse:
        self._on_change()
        return admin_pb2.SwitchResponse(active=active, previous=previous, missing=missing)

    @rpc_errors
    def Switch(self, request: admin_pb2.SwitchRequest, context: grpc.ServicerContext) -> admin_pb2.SwitchResponse:
        self._served(request.generation)
        try:
            table, missing = self.router.switch(request.generation, force=request.force)
        except GenerationError as exc:
            raise FailedPrecondition(str(exc)) from exc
        return self._switched(table.active, table.previous, missing)

    @rpc_errors
    def Rollback(self, request: admin_pb2.RollbackRequest, context: grpc.ServicerContext) -> admin_pb2.SwitchResponse:
        try:
            table = self.router.rollback()
        except GenerationError as exc:
            raise FailedPrecondition(str(exc)) from exc
        return self._switched(table.active, table.previous, 0)

    @rpc_errors
    def DropGeneration(self, request: admin_pb2.DropGenerationRequest,
                       context: grpc.ServicerContext) -> admin_pb2.DropGenerationResponse:
        try:
            dropped = self.router.drop(request.generation, force=request.force)
        except GenerationError as exc:
            raise FailedPrecondition(str(exc)) from exc
        if not dropped:
            raise NotFound(f"no generation {request.generation!r}")
        return admin_pb2.DropGenerationResponse(dropped=True)


__all__ = ["SERVICE_NAME", "IndexAdminServicer", "backup_root"]
