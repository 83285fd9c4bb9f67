"""Typed client of IndexAdminService (the `cmr index` commands, tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cmr.config import Settings, get_settings
from cmr.rpc.client import open_channel, wait_for_health
from cmr.v1 import admin_pb2, admin_pb2_grpc

SERVICE_NAME = "cmr.v1.IndexAdminService"
BACKUP_TIMEOUT_S = 3600.0  # a backup or a switch (which lists two generations) of a large index takes a while


class AdminClient:
    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 timeout_s: float | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.search_url
        self.timeout_s = timeout_s or self.settings.request_timeout_s
        self.channel = open_channel(self.url, self.settings)
        self.stub = admin_pb2_grpc.IndexAdminServiceStub(self.channel)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        wait_for_health(self.channel, SERVICE_NAME, timeout_s)

    def backup(self, dest: str) -> admin_pb2.BackupResponse:
        return self.stub.Backup(admin_pb2.BackupRequest(dest=dest), timeout=BACKUP_TIMEOUT_S)

    def verify(self, path: str) -> admin_pb2.VerifyBackupResponse:
        return self.stub.VerifyBackup(admin_pb2.VerifyBackupRequest(path=path), timeout=BACKUP_TIMEOUT_S)

    def generations(self) -> admin_pb2.ListGenerationsResponse:
        return self.stub.ListGenerations(admin_pb2.ListGenerationsRequest(), timeout=self.timeout_s)

    def start_upgrade(self, model_version: str, dim: int, checkpoint: str = "") -> admin_pb2.Generation:
        return self.stub.StartUpgrade(admin_pb2.StartUpgradeRequest(model_version=model_version, dim=dim,
                                                                    checkpoint=checkpoint), timeout=self.timeout_s)

    def archive(self, generation: str = "", keys_only: bool = False,
                page_size: int = 512) -> Iterator[admin_pb2.ArchiveEntry]:
        """Every study of a generation (the active one by default), following the page tokens."""
        token = ""
        while True:
            r = self.stub.ListArchive(admin_pb2.ListArchiveRequest(generation=generation, page_token=token,
                                                                   page_size=page_size, keys_only=keys_only),
                                      timeout=self.timeout_s)
            yield from r.entries
            token = r.next_page_token
            if not token:
                return

    def write(self, generation: str, model_version: str, studies: Sequence[admin_pb2.ReembeddedStudy],
              source: str = "") -> admin_pb2.WriteGenerationResponse:
        return self.stub.WriteGeneration(admin_pb2.WriteGenerationRequest(
            generation=generation, model_version=model_version, studies=list(studies), source=source),
            timeout=self.timeout_s)

    def switch(self, generation: str, force: bool = False) -> admin_pb2.SwitchResponse:
        return self.stub.Switch(admin_pb2.SwitchRequest(generation=generation, force=force),
                                timeout=BACKUP_TIMEOUT_S)

    def rollback(self) -> admin_pb2.SwitchResponse:
        return self.stub.Rollback(admin_pb2.RollbackRequest(), timeout=self.timeout_s)

    def drop(self, generation: str, force: bool = False) -> bool:
        return self.stub.DropGeneration(admin_pb2.DropGenerationRequest(generation=generation, force=force),
                                        timeout=self.timeout_s).dropped

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AdminClient"]
