"""`cmr serve generator`: report drafting behind the gRPC GeneratorService. Retrieval modes ask the search
service (CMR_SEARCH_URL); CMR-TARGET runs in this process, reading studies in worker processes, which also
measure the studies the service has no measurements for (CMR_MEASURE, the segmenter loaded once per worker)."""

from __future__ import annotations

import logging
from functools import partial

from cmr.config import Settings, get_settings
from cmr.dicom.locator import StudyLocator
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.keys import study_key
from cmr.rpc.server import GrpcServer, ServiceBinding, ServiceHost
from cmr.rpc.study_loading import MeasureConfig, StudyLoaderPool
from cmr.v1 import generator_pb2_grpc
from cmr.dicom import ExamSpec
from generator_svc.service import GeneratorServicer
from generator_svc.target import TargetDrafter, load_drafter
from search_svc.client import SearchClient

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
        self._servicer: GeneratorServicer | None = None
        self._grpc: GrpcServer | None = None
        self.no_measuring_reason = "measuring is off on this server (CMR_MEASURE=false)"

    def _exam_spec(self) -> ExamSpec | None:
        """The exam the study workers build: CMR-TARGET's, or (retrieval only) the served CLIP's."""
        if self.drafter is not None:
            return self.drafter.spec
        try:
            from cmr.generator.checkpoint import load_exam_encoder
            from cmr.model.runtime import checkpoint_path

            return load_exam_encoder(checkpoint_path(self.settings), "cpu").spec
        except Exception as exc:  # noqa: BLE001 - no CLIP weights here: retrieval drafts without measuring
            log.warning("no study workers (%s): drafts are grounded only in given or indexed measurements", exc)
            return None

    def _start_loader(self) -> None:
        s = self.settings
        spec = self._exam_spec()
        if spec is None:
            self.no_measuring_reason = "this server cannot read studies (no CMR-CLIP checkpoint)"
            return
        measure = MeasureConfig(s.segmenter_checkpoint, torch_threads=1) if s.measure else None
        self._loader = StudyLoaderPool(spec, s.max_concurrent_drafts, measure)
        try:
            self._loader.warm_up()
        except RuntimeError as exc:
            if measure is None:
                raise
            # a segmenter that cannot be loaded must not take drafting down: draft without measuring
            log.warning("%s; drafting without measuring", exc)
            self._loader.close()
            self.no_measuring_reason = "the segmentation checkpoint could not be loaded on this server"
            self._loader = StudyLoaderPool(spec, s.max_concurrent_drafts) if self.drafter is not None else None
            if self._loader is not None:
                self._loader.warm_up()

    def start(self) -> GeneratorServer:
        s = self.settings
        try:
            self.drafter = load_drafter(s)
            if self.drafter is not None or s.measure:
                self._start_loader()
            self._search = SearchClient(self._search_url, settings=s)
            locator = StudyLocator(s.study_roots, partial(study_key, secret=s.study_key_secret))
            servicer = GeneratorServicer(self._search, self.drafter, self._loader, locator, s.study_roots,
                                         s.draft_neighbours, s.request_timeout_s,
                                         no_measuring_reason=self.no_measuring_reason)
            self._servicer = servicer
            self._grpc = GrpcServer([ServiceBinding(ADD_SERVICER,
                                                    SERVICE_NAME, servicer)], port=self._port, settings=s).start()
        except BaseException:
            self.stop()
            raise
        log.info("GeneratorService on %s (CMR-TARGET %s, search %s, measuring %s)", self._grpc.address,
                 self.drafter.version if self.drafter else "unavailable", self._search_url,
                 self._loader.segmenter_version if self._loader is not None and self._loader.measuring else "off")
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace_s)
            self._grpc = None
        if self._servicer is not None:
            self._servicer.close()
            self._servicer = None
        if self._search is not None:
            self._search.close()
            self._search = None
        if self._loader is not None:
            self._loader.close()
            self._loader = None
