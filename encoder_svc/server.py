"""`cmr serve encoder`: Triton (unless an external one is configured) plus the gRPC EncoderService, started
in order (Triton ready and warm before gRPC reports SERVING) and stopped in reverse."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from cmr.config import Settings, get_settings
from cmr.model.runtime import EncoderRuntime, ModelIdentity, checkpoint_path
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.server import GrpcServer, ServiceBinding, ServiceHost
from cmr.rpc.study_loading import MeasureConfig, StudyLoaderPool
from cmr.v1 import encoder_pb2_grpc
from encoder_svc.service import EncoderServicer
from encoder_svc.triton_client import TritonEncoderClient
from encoder_svc.triton_orphans import reap_previous
from encoder_svc.triton_models import TritonEncoderServer, TritonServingConfig

log = logging.getLogger(__name__)

SERVICE_NAME = "cmr.v1.EncoderService"
# undecodable requests answer INVALID_ARGUMENT, not grpcio's INTERNAL (cmr.rpc.decoding)
ADD_SERVICER = checked_decoding(encoder_pb2_grpc.add_EncoderServiceServicer_to_server)
HEALTH_POLL_S = 5.0


def measure_config(s: Settings) -> MeasureConfig | None:
    """None when measuring is off. Each decoder worker segments with cores / workers torch threads, so
    concurrent studies do not oversubscribe the CPU."""
    if not s.measure:
        return None
    threads = max(1, (os.cpu_count() or 1) // s.max_concurrent_studies)
    return MeasureConfig(checkpoint=s.segmenter_checkpoint, torch_threads=threads)


class EncoderServer(ServiceHost):
    """The whole encoder: `start()`, then `port`; `stop()` (or `with`). `port=0` picks a free gRPC port."""

    def __init__(self, settings: Settings | None = None, *, port: int | None = None,
                 triton_overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings or get_settings()
        self._port = self.settings.encoder_port if port is None else port
        self.triton_config = TritonServingConfig.from_settings(self.settings, **(triton_overrides or {}))
        self._triton_server: TritonEncoderServer | None = None
        self._grpc: GrpcServer | None = None
        self._loader: StudyLoaderPool | None = None
        self._triton_client: TritonEncoderClient | None = None
        self._stop_health = threading.Event()

    def start(self) -> EncoderServer:
        s = self.settings
        try:
            if s.triton_url:
                identity = ModelIdentity.from_checkpoint(checkpoint_path(s), device="triton")
                triton_url = s.triton_url
            else:
                reap_previous(Path(s.data_dir) / "logs" / "triton.owner")  # what a killed predecessor left
                runtime = EncoderRuntime(s)
                identity = runtime.identity
                self._triton_server = TritonEncoderServer(runtime, self.triton_config).start()
                triton_url = self.triton_config.url
            self._triton_client = TritonEncoderClient(triton_url, timeout_s=s.triton_timeout_s,
                                                      max_batch_size=self.triton_config.max_batch_size)
            self._loader = StudyLoaderPool(identity.spec, s.max_concurrent_studies, measure_config(s))
            self._loader.warm_up()
            servicer = EncoderServicer(identity, self._triton_client, self._loader, self.triton_config, s)
            self._grpc = GrpcServer([ServiceBinding(ADD_SERVICER,
                                                    SERVICE_NAME, servicer)], port=self._port, settings=s).start()
        except BaseException:
            self.stop()
            raise
        self._grpc.set_serving(self._triton_client.is_ready())  # an external Triton may be down already
        threading.Thread(target=self._watch_triton, name="triton-health", daemon=True).start()
        log.info("EncoderService on %s (Triton %s, model %s, measurements %s)", self._grpc.address, triton_url,
                 identity.version, self._loader.segmenter_version or "off")
        return self

    def _watch_triton(self) -> None:
        """Health follows Triton: NOT_SERVING while it is down, so balancers and `cmr status` see it."""
        serving = self._triton_client is not None and self._triton_client.is_ready()
        while not self._stop_health.wait(HEALTH_POLL_S):
            ready = self._triton_client is not None and self._triton_client.is_ready()
            if ready != serving and self._grpc is not None and not self._stop_health.is_set():
                log.warning("Triton is %s", "back" if ready else "down: reporting NOT_SERVING")
                self._grpc.set_serving(ready)
                serving = ready

    def stop(self, grace_s: float = 5.0) -> None:
        self._stop_health.set()
        if self._grpc is not None:
            self._grpc.stop(grace_s)
        if self._loader is not None:
            self._loader.close()
            self._loader = None
        if self._triton_client is not None:
            self._triton_client.close()
            self._triton_client = None
        if self._triton_server is not None:
            self._triton_server.stop()
            self._triton_server = None
