"""Core library of the CMR semantic search platform: DICOM study loading, the synthetic CMR benchmark, the
CMR-CLIP model, training and evaluation, quantification, and what every service shares (cmr.rpc, cmr.security,
the generated contracts cmr.v1). Services, the UI and the orchestration import from here; nothing here imports
them (the layering: docs/architecture.md)."""

import os as _os

# gRPC's C-core fork handlers (on unless this is set before grpc is imported) race with Python's subprocess: a
# child forked (not vfork'ed: preexec_fn, start_new_session) while channels are busy restarts gRPC's poller,
# close_fds closes its epoll fd before exec, and the child aborts ("epoll_wait error: Bad file descriptor", exit
# -6; grpc/grpc#43055, open for grpcio 1.80-1.85). Every process here starts its children with exec and uses
# multiprocessing's spawn, never a bare fork into gRPC, so the handlers only do harm.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

__version__ = "0.1.0"
