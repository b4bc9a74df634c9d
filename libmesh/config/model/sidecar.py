"""Istio ``networking.istio.io`` Sidecar messages: listeners and reachability of a sidecar proxy."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import fld, message
from .destination_rule import ConnectionPoolSettings
from .gateway import ServerTLSSettings
from .virtual_service import Destination

__all__ = [
    "CaptureMode",
    "IstioEgressListener",
    "IstioIngressListener",
    "OutboundTrafficPolicy",
    "OutboundTrafficPolicyMode",
    "SidecarPort",
    "SidecarSpec",
    "WorkloadSelector",
]


class OutboundTrafficPolicyMode(StrEnum):
    """What a sidecar does with calls to unknown hosts: REGISTRY_ONLY blocks, ALLOW_ANY lets them through.

    Istio ``networking.v1alpha3.OutboundTrafficPolicy.Mode``.
    """

    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


class CaptureMode(StrEnum):
    """How traffic reaches a sidecar listener: the environment's default, iptables redirection, or none.

    Istio ``networking.v1alpha3.CaptureMode``.
    """

    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


@message
class SidecarSpec:
    """Spec of a Sidecar: narrows what a sidecar proxy listens on and which services it can reach.

    Istio ``networking.v1alpha3.Sidecar``.
    """

    workload_selector: WorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = fld(default=())
    egress: tuple[IstioEgressListener, ...] = fld(default=())
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


@message
class IstioIngressListener:
    """An inbound listener of a sidecar: port, bind address and where to forward accepted traffic.

    Istio ``networking.v1alpha3.IstioIngressListener``.
    """

    port: SidecarPort | None = fld(required=True)
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


@message
class IstioEgressListener:
    """An outbound listener of a sidecar and the ``namespace/host`` services reachable through it.

    Istio ``networking.v1alpha3.IstioEgressListener``.
    """

    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: tuple[str, ...] = fld(required=True, default=())


@message
class WorkloadSelector:
    """Selects workloads by label for Sidecar, ServiceEntry and EnvoyFilter.

    Istio ``networking.v1alpha3.WorkloadSelector``.
    """

    labels: dict[str, str] = fld(factory=dict)


@message
class OutboundTrafficPolicy:
    """How a sidecar treats traffic to destinations outside its registry (default ALLOW_ANY).

    Istio ``networking.v1alpha3.OutboundTrafficPolicy``.
    """

    mode: OutboundTrafficPolicyMode | None = None
    egress_proxy: Destination | None = None


@message
class SidecarPort:
    """A port of a sidecar listener: number, protocol and name.

    Istio ``networking.v1alpha3.SidecarPort``.
    """

    number: int | None = fld(proto="uint32")
    protocol: str | None = None
    name: str | None = None
    target_port: int | None = fld(proto="uint32", deprecated=True)
