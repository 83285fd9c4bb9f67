"""`cmr serve search`: the exam index (Qdrant Edge on disk, or a Qdrant server) behind the gRPC
SearchService. Text and study queries are encoded by the encoder service (CMR_ENCODER_URL)."""

from __future__ import annotations

import logging

from cmr.config import Settings, get_settings
from cmr.findings import Calibration, CalibrationError, calibration_path_for
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.server import GrpcServer, ServiceBinding, ServiceHost
from cmr.v1 import search_pb2_grpc
from encoder_svc.client import EncoderClient
from encoder_svc.runtime import ModelIdentity, checkpoint_path
from search_svc.index import ExamIndex
from search_svc.service import SearchServicer
from search_svc.store import EXAMS, REPORTS, VectorStore, open_store

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


class SearchServer(ServiceHost):
    def __init__(self, settings: Settings | None = None, *, port: int | None = None,
                 encoder_url: str | None = None) -> None:
        self.settings = settings or get_settings()
        self._port = self.settings.search_port if port is None else port
        self._encoder_url = encoder_url or self.settings.encoder_url
        self.store: VectorStore | None = None
        self._encoder: EncoderClient | None = None
        self._grpc: GrpcServer | None = None

    def start(self) -> SearchServer:
        s = self.settings
        try:
            identity = ModelIdentity.from_checkpoint(checkpoint_path(s), device="encoder service")
            self.store = open_store(s)
            index = ExamIndex(self.store, identity.embed_dim, s.study_key_secret)
            # Qdrant Edge has no background optimizer: fold what was ingested since the last start into the
            # HNSW graph now, before serving (it holds the GIL while it builds; new points are searched exactly).
            for name in (EXAMS, REPORTS):
                self.store.optimize(name)
            self._encoder = EncoderClient(self._encoder_url, settings=s)
            servicer = SearchServicer(index, self._encoder, identity, load_calibration(s, identity))
            self._grpc = GrpcServer([ServiceBinding(ADD_SERVICER,
                                                    SERVICE_NAME, servicer)], port=self._port, settings=s).start()
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
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        if self.store is not None:
            self.store.close()
            self.store = None
