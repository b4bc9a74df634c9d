"""Istio ``networking.istio.io`` WorkloadGroup messages: VM templates and readiness probes."""

from __future__ import annotations

from typing import Any  # noqa: F401

from .._schema import fld, message
from .workload_entry import WorkloadEntrySpec

__all__ = [
    "ExecHealthCheckConfig",
    "GrpcHealthCheckConfig",
    "HTTPHeader",
    "HTTPHealthCheckConfig",
    "ReadinessProbe",
    "TCPHealthCheckConfig",
    "WorkloadGroupObjectMeta",
    "WorkloadGroupSpec",
]


@message
class WorkloadGroupSpec:
    """Spec of a WorkloadGroup: the template for auto-registered VM workloads and their readiness probe.

    Istio ``networking.v1alpha3.WorkloadGroup``.
    """

    metadata: WorkloadGroupObjectMeta | None = None
    template: WorkloadEntrySpec | None = fld(required=True)
    probe: ReadinessProbe | None = None


@message
class WorkloadGroupObjectMeta:
    """Labels and annotations copied onto the WorkloadEntries generated from a group.

    Istio ``networking.v1alpha3.WorkloadGroup.ObjectMeta``.
    """

    labels: dict[str, str] = fld(factory=dict)
    annotations: dict[str, str] = fld(factory=dict)


@message
class ReadinessProbe:
    """Readiness check for a group's workloads: one of HTTP GET, TCP connect, a command or gRPC health.

    Istio ``networking.v1alpha3.ReadinessProbe``. Timing follows Kubernetes probes: ``timeout_seconds`` 1,
    ``period_seconds`` 10, ``success_threshold`` 1 and ``failure_threshold`` 3 when unset.
    """

    initial_delay_seconds: int | None = fld(proto="int32")
    timeout_seconds: int | None = fld(proto="int32")
    period_seconds: int | None = fld(proto="int32")
    success_threshold: int | None = fld(proto="int32")
    failure_threshold: int | None = fld(proto="int32")
    http_get: HTTPHealthCheckConfig | None = fld(oneof="health_check_method")
    tcp_socket: TCPHealthCheckConfig | None = fld(oneof="health_check_method")
    exec: ExecHealthCheckConfig | None = fld(oneof="health_check_method")
    grpc: GrpcHealthCheckConfig | None = fld(oneof="health_check_method")


@message
class HTTPHealthCheckConfig:
    """An HTTP GET readiness check: path, port, host, scheme and extra request headers.

    Istio ``networking.v1alpha3.HTTPHealthCheckConfig``.
    """

    path: str | None = None
    port: int | None = fld(proto="uint32", required=True)
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = fld(default=())


@message
class GrpcHealthCheckConfig:
    """A readiness check using the gRPC health protocol on a port, optionally for a named service.

    Istio ``networking.v1alpha3.GrpcHealthCheckConfig``.
    """

    port: int | None = fld(proto="uint32")
    service: str | None = None


@message
class HTTPHeader:
    """A header (name and value) sent with an HTTP readiness check.

    Istio ``networking.v1alpha3.HTTPHeader``.
    """

    name: str | None = None
    value: str | None = None


@message
class TCPHealthCheckConfig:
    """A readiness check that opens a TCP connection to ``host`` (default localhost) and ``port``.

    Istio ``networking.v1alpha3.TCPHealthCheckConfig``.
    """

    host: str | None = None
    port: int | None = fld(proto="uint32", required=True)


@message
class ExecHealthCheckConfig:
    """A readiness check that runs a command; exit status 0 means ready.

    Istio ``networking.v1alpha3.ExecHealthCheckConfig``.
    """

    command: tuple[str, ...] = fld(required=True, default=())
