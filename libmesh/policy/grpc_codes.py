"""gRPC status codes and the HTTP <-> gRPC mappings Envoy uses, so every adapter classifies alike.

- :func:`grpc_to_http`: the HTTP status a gRPC status stands for (UNAVAILABLE -> 503, DEADLINE_EXCEEDED ->
  504...). Envoy feeds this to outlier detection and its 5xx statistics for gRPC calls, so a server answering
  UNAVAILABLE is ejected as one answering 503 would be.
- :func:`http_to_grpc`: the gRPC status of a response the mesh makes itself for a gRPC call (503, 504, 502
  and 429 -> UNAVAILABLE, 404 -> UNIMPLEMENTED...), as Envoy's local replies and the gRPC project's HTTP
  mapping give it.

Plain integers only: the core never imports grpc.
"""

from __future__ import annotations

from typing import Final

__all__ = ["GRPC_CODE_NAMES", "OK", "UNAVAILABLE", "grpc_to_http", "http_to_grpc"]

OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
DEADLINE_EXCEEDED: Final = 4
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13
UNAVAILABLE: Final = 14

#: Code -> name, as ``grpc.StatusCode`` and Istio's ``grpcStatus`` spell them.
GRPC_CODE_NAMES: Final[dict[int, str]] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# The HTTP meaning of each code (google.rpc.Code's documented mapping, which Envoy implements; 499 is the
# "client closed request" status).
_TO_HTTP: Final[tuple[int, ...]] = (
    200,  # OK
    499,  # CANCELLED
    500,  # UNKNOWN
    400,  # INVALID_ARGUMENT
    504,  # DEADLINE_EXCEEDED
    404,  # NOT_FOUND
    409,  # ALREADY_EXISTS
    403,  # PERMISSION_DENIED
    429,  # RESOURCE_EXHAUSTED
    400,  # FAILED_PRECONDITION
    409,  # ABORTED
    400,  # OUT_OF_RANGE
    501,  # UNIMPLEMENTED
    500,  # INTERNAL
    503,  # UNAVAILABLE
    500,  # DATA_LOSS
    401,  # UNAUTHENTICATED
)

_FROM_HTTP: Final[dict[int, int]] = {
    400: INTERNAL,
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: UNIMPLEMENTED,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}


def grpc_to_http(code: int) -> int:
    """The HTTP status gRPC status ``code`` maps to (an unknown code maps to 500, as in Envoy)."""
    return _TO_HTTP[code] if 0 <= code < len(_TO_HTTP) else 500


def http_to_grpc(status: int) -> int:
    """The gRPC status of an HTTP ``status`` answered to a gRPC call: 200 is OK, the mapped statuses as in
    Envoy, anything else UNKNOWN."""
    if status == 200:
        return OK
    return _FROM_HTTP.get(status, UNKNOWN)
