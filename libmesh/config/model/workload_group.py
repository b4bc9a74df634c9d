from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .workload_entry import WorkloadEntrySpec

__all__ = ["ExecHealthCheckConfig", "GrpcHealthCheckConfig", "HTTPHeader", "HTTPHealthCheckConfig", "ReadinessProbe", "TCPHealthCheckConfig", "WorkloadGroupObjectMeta", "WorkloadGroupSpec"]


@message
class WorkloadGroupSpec:
    """TODO_DOC networking.v1alpha3.WorkloadGroup"""

    metadata: WorkloadGroupObjectMeta | None = None
    template: WorkloadEntrySpec | None = fld(required=True)
    probe: ReadinessProbe | None = None


@message
class WorkloadGroupObjectMeta:
    """TODO_DOC networking.v1alpha3.WorkloadGroup.ObjectMeta"""

    labels: dict[str, str] = fld(factory=dict)
    annotations: dict[str, str] = fld(factory=dict)


@message
class ReadinessProbe:
    """TODO_DOC networking.v1alpha3.ReadinessProbe"""

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
    """TODO_DOC networking.v1alpha3.HTTPHealthCheckConfig"""

    path: str | None = None
    port: int | None = fld(proto="uint32", required=True)
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = fld(default=())


@message
class GrpcHealthCheckConfig:
    """TODO_DOC networking.v1alpha3.GrpcHealthCheckConfig"""

    port: int | None = fld(proto="uint32")
    service: str | None = None


@message
class HTTPHeader:
    """TODO_DOC networking.v1alpha3.HTTPHeader"""

    name: str | None = None
    value: str | None = None


@message
class TCPHealthCheckConfig:
    """TODO_DOC networking.v1alpha3.TCPHealthCheckConfig"""

    host: str | None = None
    port: int | None = fld(proto="uint32", required=True)


@message
class ExecHealthCheckConfig:
    """TODO_DOC networking.v1alpha3.ExecHealthCheckConfig"""

    command: tuple[str, ...] = fld(required=True, default=())

