"""Container health probe: `python -m cmr.rpc.probe grpc HOST:PORT SERVICE` or `... http URL`; exit 0 when
healthy (docker-compose healthchecks; Kubernetes uses its native gRPC probes). TLS follows the container's
CMR_TLS / CMR_TLS_CA settings."""

from __future__ import annotations

import sys

from cmr.config import get_settings
from cmr.rpc.health import grpc_health, http_health


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "grpc":
        h = grpc_health(argv[1], argv[2] if len(argv) > 2 else "", settings=get_settings())
    elif len(argv) == 2 and argv[0] == "http":
        ca = get_settings().tls_ca
        h = http_health(argv[1], cafile=str(ca) if ca else None)
    else:
        print("usage: python -m cmr.rpc.probe grpc HOST:PORT [SERVICE] | http URL", file=sys.stderr)
        return 2
    print(h.detail)
    return 0 if h.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
