"""Every client channel caps gRPC's reconnect backoff (default growth to 120 s): after a part of `cmr up` was
killed and restarted, a long-lived client (the UI, the ingest worker, the crash bench's searcher) failed for
6-20 s after the service was back, waiting for its next reconnect attempt."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from cmr.config import Settings
from cmr.rpc import client as rpc_client


@pytest.mark.parametrize("tls", [False, True])
def test_channels_try_again_within_two_seconds(monkeypatch: pytest.MonkeyPatch, tls: bool) -> None:
    seen: dict[str, Any] = {}
    real = grpc.insecure_channel

    def fake_channel(url: str, *args: Any, options: list[tuple[str, Any]]) -> grpc.Channel:
        seen.update(options)
        return real(url)

    monkeypatch.setattr(grpc, "secure_channel" if tls else "insecure_channel", fake_channel)
    monkeypatch.setattr(rpc_client, "channel_credentials", lambda s: None)
    rpc_client.open_channel("127.0.0.1:1", Settings(tls=tls, auth_mode="off"))
    assert seen["grpc.max_reconnect_backoff_ms"] <= 2000
    assert seen["grpc.initial_reconnect_backoff_ms"] <= seen["grpc.max_reconnect_backoff_ms"]
