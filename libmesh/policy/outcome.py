"""What happened to one attempt or call, classified once, in Envoy's terms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .grpc_codes import grpc_to_http

__all__ = ["Failure", "Flag", "Outcome"]


class Flag(StrEnum):
    """Envoy's response flags, as Istio's ``response_flags`` label and access logs show them."""

    NONE = "-"
    UPSTREAM_OVERFLOW = "UO"  # circuit breaker open (connection pool / pending / requests limit)
    UPSTREAM_CONNECTION_FAILURE = "UF"
    UPSTREAM_RETRY_LIMIT_EXCEEDED = "URX"
    UPSTREAM_REQUEST_TIMEOUT = "UT"
    NO_ROUTE = "NR"
    NO_HEALTHY_UPSTREAM = "UH"
    FAULT_INJECTED = "FI"
    DELAY_INJECTED = "DI"
    UPSTREAM_CONNECTION_TERMINATION = "UC"
    UPSTREAM_REMOTE_RESET = "UR"
    DOWNSTREAM_CONNECTION_TERMINATION = "DC"
    NO_CLUSTER_FOUND = "NC"


class Failure(StrEnum):
    """Transport-level failures an adapter reports instead of a status (they map to retryOn conditions)."""

    CONNECT = "connect-failure"
    RESET = "reset"
    REFUSED_STREAM = "refused-stream"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt: an HTTP status (and gRPC status when the call was gRPC), or a transport
    failure. ``gateway_error`` is Envoy's notion used by outlier detection (502, 503, 504 and connect
    failures, resets and timeouts). A gRPC status counts as the HTTP status it maps to (see
    :attr:`http_equivalent`), as Envoy reports gRPC results to outlier detection."""

    status: int | None = None
    grpc_status: int | None = None
    failure: Failure | None = None

    @property
    def http_equivalent(self) -> int | None:
        """The status outlier detection judges: the HTTP status, or for a gRPC response that is not already
        a 5xx, the HTTP status its gRPC status maps to (UNAVAILABLE -> 503, DEADLINE_EXCEEDED -> 504...)."""
        status, grpc = self.status, self.grpc_status
        if grpc is not None and (status is None or status < 500):
            return grpc_to_http(grpc)
        return status

    @property
    def is_5xx(self) -> bool:
        """A 5xx response, or a failure Envoy counts as one (it answers 503/504 for them)."""
        if self.failure is not None:
            return True
        status = self.http_equivalent
        return status is not None and status >= 500

    @property
    def is_gateway_error(self) -> bool:
        """502, 503, 504, or a connect failure, reset or timeout."""
        if self.failure is not None:
            return True
        return self.http_equivalent in (502, 503, 504)
