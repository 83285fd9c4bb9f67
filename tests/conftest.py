"""Suite-wide test defaults. Services require signed bearer tokens by default (CMR_AUTH_MODE=jwt); tests of
other capabilities run them with auth off, and the security tests (tests/*/security) turn it on with their own
keys and certificates. Set before any Settings is built, so subprocesses started by tests inherit it too."""

import os

os.environ.setdefault("CMR_AUTH_MODE", "off")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # before any import of grpc: see cmr/__init__.py
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the unit tests in two xdist workers on CI's two cores: one intra-op thread each, or both
    # workers' torch pools spin on the same two cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
