"""Start/stop of the encoder: `cmr serve encoder` answers and stops cleanly on SIGTERM; with its Triton down
the service stays up, reports NOT_SERVING and answers UNAVAILABLE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cmr.config import Settings
from encoder_svc.client import EncoderClient
from encoder_svc.server import EncoderServer
from cmr.rpc.ports import free_ports

CMR = Path(sys.executable).parent / "cmr"


def test_triton_down_is_unavailable_and_not_serving(tmp_path: Path, studies: list[Path]) -> None:
    (dead_triton,) = free_ports(1)
    settings = Settings(data_dir=tmp_path, triton_url=f"127.0.0.1:{dead_triton}", max_concurrent_studies=1,
                        study_roots=[studies[0].parent])
    with EncoderServer(settings, port=0) as server, EncoderClient(server.address, settings=settings) as client:
        health = health_pb2_grpc.HealthStub(client.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="cmr.v1.EncoderService"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        for call in (lambda: client.encode_texts(["dilated LV"]), lambda: client.encode_study(studies[0])):
            with pytest.raises(grpc.RpcError) as exc:
                call()
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "Triton" in exc.value.details()
        # Still up: metadata calls that need no Triton answer.
        assert client.model_info().model.version.startswith("cmr-clip-small@")


def test_cli_serve_encoder_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    grpc_port, t_grpc, t_http, t_metrics = free_ports(4)
    env = {**os.environ, "CMR_DATA_DIR": str(tmp_path), "CMR_TRITON_GRPC_PORT": str(t_grpc),
           "CMR_TRITON_HTTP_PORT": str(t_http), "CMR_TRITON_METRICS_PORT": str(t_metrics),
           "CMR_TRITON_EXIT_TIMEOUT_S": "1", "CMR_MAX_CONCURRENT_STUDIES": "1"}
    stubs_before = _backend_stubs()
    proc = subprocess.Popen([str(CMR), "serve", "encoder", "--port", str(grpc_port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with EncoderClient(f"127.0.0.1:{grpc_port}") as client:
            client.wait_ready(120)
            assert client.encode_texts(["normal study"]).shape == (1, 256)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "EncoderService ready on" in out and "stopped" in out
    assert _backend_stubs() <= stubs_before, "Triton backend stubs outlived the service"
    time.sleep(1)
    for port in (grpc_port, t_grpc):  # both servers are gone: their ports are free again
        assert free_port_is_bindable(port), f"port {port} still in use after stop"


def free_port_is_bindable(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _backend_stubs() -> set[int]:
    from encoder_svc.triton_models import _running

    return {int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
            if b"triton_python_backend_stub" in _safe_read(p) and _running(int(p.parent.name))}


def _safe_read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError:
        return b""
