"""Container health probe: `python -m cmr.stack.probe grpc HOST:PORT SERVICE` or `... http URL`; exit 0 when
healthy (docker-compose healthchecks; Kubernetes uses its native gRPC probes)."""

from __future__ import annotations

import sys

from cmr.stack.health import grpc_health, http_health


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "grpc":
        h = grpc_health(argv[1], argv[2] if len(argv) > 2 else "")
    elif len(argv) == 2 and argv[0] == "http":
        h = http_health(argv[1])
    else:
        print("usage: python -m cmr.stack.probe grpc HOST:PORT [SERVICE] | http URL", file=sys.stderr)
        return 2
    print(h.detail)
    return 0 if h.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
