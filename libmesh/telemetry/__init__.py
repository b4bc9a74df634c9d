"""Telemetry for the calls libmesh carries: Istio's standard Prometheus metrics, Envoy-style access logs,
OpenTelemetry spans, and the inbound context (trace headers, forwarded headers, deadline) that follows a
request into the calls the app makes while serving it.

:mod:`.context` and :mod:`.accesslog` need nothing beyond the standard library. :mod:`.metrics` needs
``prometheus-client`` and :mod:`.tracing` ``opentelemetry-sdk`` (the ``telemetry`` extra); their names are
imported from here on first use, so importing this package does not require them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .accesslog import (
    ACCESS_LOGGER_NAME,
    AccessLogEntry,
    AccessLogger,
    default_details,
    format_json,
    format_text,
)
from .context import (
    DEADLINE_HEADER,
    FORWARDED_HEADERS,
    GRPC_TIMEOUT_HEADER,
    REQUEST_ID_HEADER,
    Activation,
    InboundContext,
    PendingContext,
    activate,
    current,
    deadline_header_value,
    effective_timeout,
    format_grpc_timeout,
    headers_to_forward,
    new_request_id,
    parse_deadline_ms,
    parse_grpc_timeout,
    remaining_deadline,
    submit,
    wrap,
)

if TYPE_CHECKING:
    from .metrics import (
        BYTES_BUCKETS,
        DURATION_BUCKETS_MS,
        LABEL_NAMES,
        PEER_HEADER,
        UNKNOWN,
        IstioMetrics,
        Peer,
        Reporter,
        RequestRecord,
        SecurityPolicy,
        decode_peer,
        encode_peer,
    )
    from .tracing import DEFAULT_SAMPLING_PERCENT, MeshSpan, Tracer, w3c_propagator

_LAZY: dict[str, str] = {
    **{
        name: ".metrics"
        for name in (
            "BYTES_BUCKETS",
            "DURATION_BUCKETS_MS",
            "LABEL_NAMES",
            "PEER_HEADER",
            "UNKNOWN",
            "IstioMetrics",
            "Peer",
            "Reporter",
            "RequestRecord",
            "SecurityPolicy",
            "decode_peer",
            "encode_peer",
        )
    },
    **{name: ".tracing" for name in ("DEFAULT_SAMPLING_PERCENT", "MeshSpan", "Tracer", "w3c_propagator")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ACCESS_LOGGER_NAME",
    "BYTES_BUCKETS",
    "DEADLINE_HEADER",
    "DEFAULT_SAMPLING_PERCENT",
    "DURATION_BUCKETS_MS",
    "FORWARDED_HEADERS",
    "GRPC_TIMEOUT_HEADER",
    "LABEL_NAMES",
    "PEER_HEADER",
    "REQUEST_ID_HEADER",
    "UNKNOWN",
    "AccessLogEntry",
    "AccessLogger",
    "Activation",
    "InboundContext",
    "IstioMetrics",
    "MeshSpan",
    "Peer",
    "PendingContext",
    "Reporter",
    "RequestRecord",
    "SecurityPolicy",
    "Tracer",
    "activate",
    "current",
    "deadline_header_value",
    "decode_peer",
    "default_details",
    "effective_timeout",
    "encode_peer",
    "format_grpc_timeout",
    "format_json",
    "format_text",
    "headers_to_forward",
    "new_request_id",
    "parse_deadline_ms",
    "parse_grpc_timeout",
    "remaining_deadline",
    "submit",
    "w3c_propagator",
    "wrap",
]
