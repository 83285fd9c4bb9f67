"""What every CMR gRPC service shares: a server with health checking, reflection and message-size limits;
error handling that turns exceptions into status codes that mean something; client channels with deadlines
and retries; numpy <-> message conversions; the study plumbing several services run (an upload stream or a
study reference -> loader input in `uploads`, decoding and measuring in worker processes in `study_loading` and
`measuring`)."""

from cmr.rpc.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    rpc_errors,
)
from cmr.rpc.server import GrpcServer, ServiceBinding
from cmr.rpc.client import open_channel, wait_for_health

__all__ = [
    "GrpcServer",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServiceBinding",
    "ServiceError",
    "Unavailable",
    "open_channel",
    "rpc_errors",
    "wait_for_health",
]
