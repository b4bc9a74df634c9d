"""Istio ``networking.istio.io`` ServiceEntry messages: services added to the mesh registry."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import fld, message
from .sidecar import WorkloadSelector
from .workload_entry import WorkloadEntrySpec

__all__ = [
    "ServiceEntryAddress",
    "ServiceEntryLocation",
    "ServiceEntryResolution",
    "ServiceEntrySpec",
    "ServicePort",
]


class ServiceEntryLocation(StrEnum):
    """Whether a ServiceEntry's service is outside the mesh (MESH_EXTERNAL, the default) or part of it.

    Istio ``networking.v1alpha3.ServiceEntry.Location``.
    """

    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class ServiceEntryResolution(StrEnum):
    """How proxies find the endpoint addresses of a ServiceEntry.

    Istio ``networking.v1alpha3.ServiceEntry.Resolution``. NONE (the default) connects to the address the
    caller used; STATIC uses the endpoints' addresses; DNS and DNS_ROUND_ROBIN resolve names; DYNAMIC_DNS
    resolves each request's host for wildcard hosts.
    """

    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


@message
class ServiceEntrySpec:
    """Spec of a ServiceEntry: adds hosts, typically external services, to Istio's service registry.

    Istio ``networking.v1alpha3.ServiceEntry``. ``hosts`` is required. ``location`` defaults to MESH_EXTERNAL
    and ``resolution`` to NONE. Give ``endpoints`` or ``workload_selector``, not both; with DNS resolution and
    no endpoints the hosts themselves are resolved.

    Example::

        ServiceEntrySpec(
            hosts=("api.example.com",),
            ports=(ServicePort(number=443, name="tls", protocol="TLS"),),
            resolution=ServiceEntryResolution.DNS,
        )
    """

    hosts: tuple[str, ...] = fld(required=True, default=())
    addresses: tuple[str, ...] = fld(default=())
    ports: tuple[ServicePort, ...] = fld(default=())
    location: ServiceEntryLocation | None = None
    resolution: ServiceEntryResolution | None = None
    endpoints: tuple[WorkloadEntrySpec, ...] = fld(default=())
    workload_selector: WorkloadSelector | None = None
    export_to: tuple[str, ...] = fld(default=())
    subject_alt_names: tuple[str, ...] = fld(default=())


@message
class ServicePort:
    """A port of a ServiceEntry service: number, name and protocol.

    Istio ``networking.v1alpha3.ServicePort``. ``number`` and ``name`` are required; ``protocol`` is one of
    HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS; ``target_port`` defaults to ``number``.

    Example: ``ServicePort(number=80, name="http", protocol="HTTP")``
    """

    number: int | None = fld(proto="uint32", required=True)
    protocol: str | None = None
    name: str | None = fld(required=True)
    target_port: int | None = fld(proto="uint32")


@message
class ServiceEntryAddress:
    """An address Istio allocated to a ServiceEntry host, as reported in the resource's status.

    Istio ``networking.v1alpha3.ServiceEntryAddress``.
    """

    value: str | None = None
    host: str | None = None
