"""Istio ``telemetry.istio.io`` Telemetry messages: tracing, metrics and access logging."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message
from .selector import PolicyTargetReference, PolicyWorkloadSelector

__all__ = [
    "AccessLogging",
    "AccessLoggingFilter",
    "AccessLoggingLogSelector",
    "IstioMetric",
    "MetricSelector",
    "Metrics",
    "MetricsOverrides",
    "MetricsOverridesTagOverride",
    "MetricsOverridesTagOverrideOperation",
    "ProviderRef",
    "TelemetrySpec",
    "TelemetryWorkloadMode",
    "Tracing",
    "TracingCustomTag",
    "TracingEnvironment",
    "TracingFormatter",
    "TracingLiteral",
    "TracingRequestHeader",
    "TracingTracingSelector",
]


class TelemetryWorkloadMode(StrEnum):
    """Traffic side a telemetry setting covers: client, server, or both (the default).

    Istio ``telemetry.v1alpha1.WorkloadMode``.
    """

    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


class IstioMetric(StrEnum):
    """The standard Istio metrics a metrics override can target, or all of them.

    Istio ``telemetry.v1alpha1.MetricSelector.IstioMetric``.
    """

    ALL_METRICS = "ALL_METRICS"
    REQUEST_COUNT = "REQUEST_COUNT"
    REQUEST_DURATION = "REQUEST_DURATION"
    REQUEST_SIZE = "REQUEST_SIZE"
    RESPONSE_SIZE = "RESPONSE_SIZE"
    TCP_OPENED_CONNECTIONS = "TCP_OPENED_CONNECTIONS"
    TCP_CLOSED_CONNECTIONS = "TCP_CLOSED_CONNECTIONS"
    TCP_SENT_BYTES = "TCP_SENT_BYTES"
    TCP_RECEIVED_BYTES = "TCP_RECEIVED_BYTES"
    GRPC_REQUEST_MESSAGES = "GRPC_REQUEST_MESSAGES"
    GRPC_RESPONSE_MESSAGES = "GRPC_RESPONSE_MESSAGES"


class MetricsOverridesTagOverrideOperation(StrEnum):
    """Whether a tag override sets (UPSERT) or drops (REMOVE) a metric label.

    Istio ``telemetry.v1alpha1.MetricsOverrides.TagOverride.Operation``.
    """

    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


@message
class TelemetrySpec:
    """Spec of a Telemetry resource: tracing, metrics and access logging for the selected workloads.

    Istio ``telemetry.v1alpha1.Telemetry``. In the root namespace it is mesh-wide; otherwise it covers its
    namespace or the selected workloads.
    """

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    tracing: tuple[Tracing, ...] = fld(default=())
    metrics: tuple[Metrics, ...] = fld(default=())
    access_logging: tuple[AccessLogging, ...] = fld(default=())


@message
class Tracing:
    """Tracing settings: providers, sampling percentage, custom span tags and span reporting.

    Istio ``telemetry.v1alpha1.Tracing``.
    """

    match: TracingTracingSelector | None = None
    providers: tuple[ProviderRef, ...] = fld(default=())
    random_sampling_percentage: float | None = None
    disable_span_reporting: bool | None = None
    custom_tags: dict[str, TracingCustomTag] = fld(factory=dict)
    use_request_id_for_trace_sampling: bool | None = None
    enable_istio_tags: bool | None = None
    disable_context_propagation: bool | None = None


@message
class TracingTracingSelector:
    """Restricts a tracing setting to the client side, the server side or both.

    Istio ``telemetry.v1alpha1.Tracing.TracingSelector``.
    """

    mode: TelemetryWorkloadMode | None = None


@message
class TracingCustomTag:
    """A custom span tag, valued from a literal, an environment variable, a request header or a formatter.

    Istio ``telemetry.v1alpha1.Tracing.CustomTag``.
    """

    literal: TracingLiteral | None = fld(oneof="type")
    environment: TracingEnvironment | None = fld(oneof="type")
    header: TracingRequestHeader | None = fld(oneof="type")
    formatter: TracingFormatter | None = fld(oneof="type")


@message
class TracingLiteral:
    """A fixed value for a custom span tag (Istio ``telemetry.v1alpha1.Tracing.Literal``)."""

    value: str | None = fld(required=True)


@message
class TracingEnvironment:
    """A custom span tag read from a proxy environment variable, with a fallback value.

    Istio ``telemetry.v1alpha1.Tracing.Environment``.
    """

    name: str | None = fld(required=True)
    default_value: str | None = None


@message
class TracingRequestHeader:
    """A custom span tag read from a request header, with a fallback value.

    Istio ``telemetry.v1alpha1.Tracing.RequestHeader``.
    """

    name: str | None = fld(required=True)
    default_value: str | None = None


@message
class TracingFormatter:
    """A custom span tag built from an access-log style format string.

    Istio ``telemetry.v1alpha1.Tracing.Formatter``.
    """

    value: str | None = fld(required=True)


@message
class ProviderRef:
    """Names a telemetry provider declared in the mesh config's extension providers.

    Istio ``telemetry.v1alpha1.ProviderRef``.
    """

    name: str | None = fld(required=True)


@message
class Metrics:
    """Metrics settings: providers and per-metric overrides (Istio ``telemetry.v1alpha1.Metrics``).

    ``reporting_interval`` (TCP metrics only for now) defaults to 5s.
    """

    providers: tuple[ProviderRef, ...] = fld(default=())
    overrides: tuple[MetricsOverrides, ...] = fld(default=())
    reporting_interval: Duration | None = None


@message
class MetricSelector:
    """Which metric an override targets (a standard Istio metric or a custom name) and on which side.

    Istio ``telemetry.v1alpha1.MetricSelector``.
    """

    metric: IstioMetric | None = fld(oneof="metric_match")
    custom_metric: str | None = fld(oneof="metric_match")
    mode: TelemetryWorkloadMode | None = None


@message
class MetricsOverrides:
    """Customisation of the selected metrics: turn them off or change their tags.

    Istio ``telemetry.v1alpha1.MetricsOverrides``.
    """

    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, MetricsOverridesTagOverride] = fld(factory=dict)


@message
class MetricsOverridesTagOverride:
    """Change to one metric tag: set it from an expression, or remove it.

    Istio ``telemetry.v1alpha1.MetricsOverrides.TagOverride``.
    """

    operation: MetricsOverridesTagOverrideOperation | None = None
    value: str | None = None


@message
class AccessLogging:
    """Access-log settings: providers, on or off, and an optional filter.

    Istio ``telemetry.v1alpha1.AccessLogging``.
    """

    match: AccessLoggingLogSelector | None = None
    providers: tuple[ProviderRef, ...] = fld(default=())
    disabled: bool | None = None
    filter: AccessLoggingFilter | None = None


@message
class AccessLoggingLogSelector:
    """Restricts an access-log setting to the client side, the server side or both.

    Istio ``telemetry.v1alpha1.AccessLogging.LogSelector``.
    """

    mode: TelemetryWorkloadMode | None = None


@message
class AccessLoggingFilter:
    """A CEL expression choosing which requests or connections are logged.

    Istio ``telemetry.v1alpha1.AccessLogging.Filter``.
    """

    expression: str | None = None
