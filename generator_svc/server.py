"""`cmr serve generator`: report drafting behind the gRPC GeneratorService. Retrieval modes ask the search
service (CMR_SEARCH_URL); CMR-TARGET runs in this process, reading studies in worker processes."""

from __future__ import annotations

import logging
from functools import partial

from cmr.config import Settings, get_settings
from cmr.dicom.locator import StudyLocator
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.server import GrpcServer, ServiceBinding, ServiceHost
from cmr.v1 import generator_pb2_grpc
from encoder_svc.study_loading import StudyLoaderPool
from generator_svc.service import GeneratorServicer
from generator_svc.target import TargetDrafter, load_drafter
from search_svc.client import SearchClient
from search_svc.store.schema import study_key

log = logging.getLogger(__name__)

SERVICE_NAME = "cmr.v1.GeneratorService"
# undecodable requests answer INVALID_ARGUMENT, not grpcio's INTERNAL (cmr.rpc.decoding)
ADD_SERVICER = checked_decoding(generator_pb2_grpc.add_GeneratorServiceServicer_to_server)


class GeneratorServer(ServiceHost):
    def __init__(self, settings: Settings | None = None, *, port: int | None = None,
                 search_url: str | None = None) -> None:
        self.settings = settings or get_settings()
        self._port = self.settings.generator_port if port is None else port
        self._search_url = search_url or self.settings.search_url
        self.drafter: TargetDrafter | None = None
        self._search: SearchClient | None = None
        self._loader: StudyLoaderPool | None = None
        self._grpc: GrpcServer | None = None

    def start(self) -> GeneratorServer:
        s = self.settings
        try:
            self.drafter = load_drafter(s)
            if self.drafter is not None:
                self._loader = StudyLoaderPool(self.drafter.spec, s.max_concurrent_drafts)
                self._loader.warm_up()
            self._search = SearchClient(self._search_url, settings=s)
            locator = StudyLocator(s.study_roots, partial(study_key, secret=s.study_key_secret))
            servicer = GeneratorServicer(self._search, self.drafter, self._loader, locator, s.study_roots,
                                         s.draft_neighbours, s.request_timeout_s)
            self._grpc = GrpcServer([ServiceBinding(ADD_SERVICER,
                                                    SERVICE_NAME, servicer)], port=self._port, settings=s).start()
        except BaseException:
            self.stop()
            raise
        log.info("GeneratorService on %s (CMR-TARGET %s, search %s)", self._grpc.address,
                 self.drafter.version if self.drafter else "unavailable", self._search_url)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace_s)
            self._grpc = None
        if self._search is not None:
            self._search.close()
            self._search = None
        if self._loader is not None:
            self._loader.close()
            self._loader = None
