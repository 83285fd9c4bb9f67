"""`cmr serve search`: the exam index (Qdrant Edge on disk, or a Qdrant server) behind the gRPC
SearchService. Study queries are encoded by the encoder service (CMR_ENCODER_URL); query text in this
process (CMR_TEXT_RUNTIME, search_svc/query_text.py), or by the encoder with CMR_SEARCH_EMBEDS_TEXT=false."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from cmr.config import Settings, get_settings
from cmr.findings import Calibration, CalibrationError, calibration_path_for
from cmr.model.runtime import ModelIdentity, checkpoint_path
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.server import GrpcServer, ServiceBinding, ServiceHost
from cmr.v1 import admin_pb2_grpc, search_pb2_grpc
from encoder_svc.client import EncoderClient
from search_svc.admin.generations import TABLE_FILE
from search_svc.admin.router import IndexRouter
from search_svc.admin.service import SERVICE_NAME as ADMIN_SERVICE_NAME
from search_svc.admin.service import IndexAdminServicer
from search_svc.flusher import PeriodicSync
from search_svc.query_text import QueryText
from search_svc.service import SearchServicer
from search_svc.store import DiskFullError, EdgeStore, VectorStore, open_store
from search_svc.store.live_index import LiveIndexer
from search_svc.store.warmup import start_warm_up

log = logging.getLogger(__name__)

SERVICE_NAME = "cmr.v1.SearchService"
# undecodable requests answer INVALID_ARGUMENT, not grpcio's INTERNAL (cmr.rpc.decoding)
ADD_SERVICER = checked_decoding(search_pb2_grpc.add_SearchServiceServicer_to_server)


def load_calibration(settings: Settings, identity: ModelIdentity) -> Calibration | None:
    path = calibration_path_for(checkpoint_path(settings))
    if not path.exists():
        log.warning("no zero-shot calibration at %s: probabilities are uncalibrated", path)
        return None
    try:
        cal = Calibration.load(path)
    except CalibrationError as exc:
        log.warning("%s; probabilities are uncalibrated", exc)
        return None
    if cal.model_version != identity.version:
        log.warning("calibration %s was fitted for %s, not %s: probabilities are uncalibrated", path,
                    cal.model_version, identity.version)
        return None
    return cal


def generations_path(settings: Settings) -> Path:
    """The generation table: inside the Edge store's folder (backed up with it), or beside the service's data
    for a Qdrant server (whose aliases mirror the active generation)."""
    return Path(settings.index_dir or settings.data_dir / "index") / TABLE_FILE


def calibration_for_version(router: IndexRouter, settings: Settings, identity: ModelIdentity,
                            version: str) -> Calibration | None:
    """Zero-shot calibration of a generation's model: the served checkpoint's, or the one beside the checkpoint
    the generation was embedded with."""
    gen = router.table.by_version(version)
    if version == identity.version or gen is None or not gen.checkpoint:
        return load_calibration(settings, identity) if version == identity.version else None
    path = calibration_path_for(Path(gen.checkpoint))
    try:
        cal = Calibration.load(path) if path.exists() else None
    except CalibrationError as exc:
        log.warning("%s; probabilities of %s are uncalibrated", exc, version)
        return None
    return cal if cal is not None and cal.model_version == version else None


class SearchServer(ServiceHost):
    def __init__(self, settings: Settings | None = None, *, port: int | None = None,
                 encoder_url: str | None = None) -> None:
        self.settings = settings or get_settings()
        self._port = self.settings.search_port if port is None else port
        self._encoder_url = encoder_url or self.settings.encoder_url
        self.store: VectorStore | None = None
        self.live_index: LiveIndexer | None = None
        self.router: IndexRouter | None = None
        self._encoder: EncoderClient | None = None
        self._grpc: GrpcServer | None = None
        self._wal_sync: PeriodicSync | None = None

    def start(self) -> SearchServer:
        s = self.settings
        try:
            identity = ModelIdentity.from_checkpoint(checkpoint_path(s), device="encoder service")
            self.store = open_store(s)
            self.router = IndexRouter(self.store, s.study_key_secret, generations_path(s),
                                      model_version=identity.version, dim=identity.embed_dim,
                                      checkpoint=str(checkpoint_path(s)))
            # Qdrant Edge has no background optimizer: fold what was ingested since the last start into the
            # HNSW graph now, before serving (it holds the GIL while it builds; new points are searched exactly).
            for served in self.router.all():
                for name in served.generation.collections:
                    try:
                        self.store.optimize(name)
                    except DiskFullError as exc:  # serve anyway: searches are right without the build
                        log.warning("index of %s not built: %s", name, exc)
            if isinstance(self.store, EdgeStore) and s.index_flush_interval_s > 0:
                self._wal_sync = PeriodicSync(self.store, s.index_flush_interval_s)
                self._wal_sync.start()
            names = [n for served in self.router.all() for n in served.generation.collections]
            start_warm_up(self.store, names)
            if isinstance(self.store, EdgeStore) and s.live_index_max_unindexed > 0:
                self.live_index = LiveIndexer(self.store, names, max_unindexed=s.live_index_max_unindexed).start()
            self._encoder = EncoderClient(self._encoder_url, settings=s)
            text = QueryText.from_settings(s) if s.search_embeds_text else None
            if text is not None:
                text.warm_up()  # load (first time: export) the text model while the server starts
            servicer = SearchServicer(self.router, self._encoder, identity, load_calibration(s, identity),
                                      calibration_for=partial(calibration_for_version, self.router, s, identity),
                                      store_parts=s.store_embedding_parts, text=text)
            if self.live_index is not None:
                servicer.index_states = self.live_index.states
            admin = IndexAdminServicer(self.router, s, on_change=servicer.bump)
            self._grpc = GrpcServer([ServiceBinding(ADD_SERVICER,
                                                    SERVICE_NAME, servicer),
                                     ServiceBinding(checked_decoding(admin_pb2_grpc.add_IndexAdminServiceServicer_to_server),
                                                    ADMIN_SERVICE_NAME, admin)],
                                    port=self._port, settings=s).start()
        except BaseException:
            self.stop()
            raise
        log.info("SearchService on %s (store %s, encoder %s)", self._grpc.address, self.store.backend,
                 self._encoder_url)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace_s)  # in-flight writes finish before the store closes
            self._grpc = None
        if self.live_index is not None:
            self.live_index.stop(timeout_s=grace_s)  # a build in flight is cleaned up at the next open
            self.live_index = None
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        if self._wal_sync is not None:
            self._wal_sync.stop()
            self._wal_sync = None
        if self.store is not None:
            self.store.close()
            self.store = None
