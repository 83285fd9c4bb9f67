"""`python -m ingest_svc`: one ingest worker in the foreground (the same as `cmr serve ingest`), configured by
CMR_* environment variables. Starts faster than the `cmr` CLI, which the crash tests rely on."""

from __future__ import annotations

import logging
import sys

from ingest_svc.worker import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    sys.exit(serve())
