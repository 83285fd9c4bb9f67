"""Free TCP ports for servers started side by side (tests, benchmarks): Triton cannot bind port 0 and report
the port back, so a free one is chosen first."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
