from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyTargetReference, PolicyWorkloadSelector

__all__ = ["AccessLogging", "AccessLoggingFilter", "AccessLoggingLogSelector", "IstioMetric", "MetricSelector", "Metrics", "MetricsOverrides", "MetricsOverridesTagOverride", "MetricsOverridesTagOverrideOperation", "ProviderRef", "TelemetrySpec", "TelemetryWorkloadMode", "Tracing", "TracingCustomTag", "TracingEnvironment", "TracingFormatter", "TracingLiteral", "TracingRequestHeader", "TracingTracingSelector"]


class TelemetryWorkloadMode(StrEnum):
    """TODO_DOC telemetry.v1alpha1.WorkloadMode"""

    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


class IstioMetric(StrEnum):
    """TODO_DOC telemetry.v1alpha1.MetricSelector.IstioMetric"""

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
    """TODO_DOC telemetry.v1alpha1.MetricsOverrides.TagOverride.Operation"""

    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


@message
class TelemetrySpec:
    """TODO_DOC telemetry.v1alpha1.Telemetry"""

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    tracing: tuple[Tracing, ...] = fld(default=())
    metrics: tuple[Metrics, ...] = fld(default=())
    access_logging: tuple[AccessLogging, ...] = fld(default=())


@message
class Tracing:
    """TODO_DOC telemetry.v1alpha1.Tracing"""

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
    """TODO_DOC telemetry.v1alpha1.Tracing.TracingSelector"""

    mode: TelemetryWorkloadMode | None = None


@message
class TracingCustomTag:
    """TODO_DOC telemetry.v1alpha1.Tracing.CustomTag"""

    literal: TracingLiteral | None = fld(oneof="type")
    environment: TracingEnvironment | None = fld(oneof="type")
    header: TracingRequestHeader | None = fld(oneof="type")
    formatter: TracingFormatter | None = fld(oneof="type")


@message
class TracingLiteral:
    """TODO_DOC telemetry.v1alpha1.Tracing.Literal"""

    value: str | None = fld(required=True)


@message
class TracingEnvironment:
    """TODO_DOC telemetry.v1alpha1.Tracing.Environment"""

    name: str | None = fld(required=True)
    default_value: str | None = None


@message
class TracingRequestHeader:
    """TODO_DOC telemetry.v1alpha1.Tracing.RequestHeader"""

    name: str | None = fld(required=True)
    default_value: str | None = None


@message
class TracingFormatter:
    """TODO_DOC telemetry.v1alpha1.Tracing.Formatter"""

    value: str | None = fld(required=True)


@message
class ProviderRef:
    """TODO_DOC telemetry.v1alpha1.ProviderRef"""

    name: str | None = fld(required=True)


@message
class Metrics:
    """TODO_DOC telemetry.v1alpha1.Metrics"""

    providers: tuple[ProviderRef, ...] = fld(default=())
    overrides: tuple[MetricsOverrides, ...] = fld(default=())
    reporting_interval: Duration | None = None


@message
class MetricSelector:
    """TODO_DOC telemetry.v1alpha1.MetricSelector"""

    metric: IstioMetric | None = fld(oneof="metric_match")
    custom_metric: str | None = fld(oneof="metric_match")
    mode: TelemetryWorkloadMode | None = None


@message
class MetricsOverrides:
    """TODO_DOC telemetry.v1alpha1.MetricsOverrides"""

    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, MetricsOverridesTagOverride] = fld(factory=dict)


@message
class MetricsOverridesTagOverride:
    """TODO_DOC telemetry.v1alpha1.MetricsOverrides.TagOverride"""

    operation: MetricsOverridesTagOverrideOperation | None = None
    value: str | None = None


@message
class AccessLogging:
    """TODO_DOC telemetry.v1alpha1.AccessLogging"""

    match: AccessLoggingLogSelector | None = None
    providers: tuple[ProviderRef, ...] = fld(default=())
    disabled: bool | None = None
    filter: AccessLoggingFilter | None = None


@message
class AccessLoggingLogSelector:
    """TODO_DOC telemetry.v1alpha1.AccessLogging.LogSelector"""

    mode: TelemetryWorkloadMode | None = None


@message
class AccessLoggingFilter:
    """TODO_DOC telemetry.v1alpha1.AccessLogging.Filter"""

    expression: str | None = None

