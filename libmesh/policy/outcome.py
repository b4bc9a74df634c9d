"""What happened to one attempt or call, classified once, in Envoy's terms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
    failures, resets and timeouts)."""

    status: int | None = None
    grpc_status: int | None = None
    failure: Failure | None = None

    @property
    def is_5xx(self) -> bool:
        """A 5xx response, or a failure Envoy counts as one (it answers 503/504 for them)."""
        if self.failure is not None:
            return True
        return self.status is not None and self.status >= 500

    @property
    def is_gateway_error(self) -> bool:
        """502, 503, 504, or a connect failure, reset or timeout."""
        if self.failure is not None:
            return True
        return self.status in (502, 503, 504)
