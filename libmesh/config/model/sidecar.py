from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .destination_rule import ConnectionPoolSettings
from .gateway import ServerTLSSettings
from .virtual_service import Destination

__all__ = ["CaptureMode", "IstioEgressListener", "IstioIngressListener", "OutboundTrafficPolicy", "OutboundTrafficPolicyMode", "SidecarPort", "SidecarSpec", "WorkloadSelector"]


class OutboundTrafficPolicyMode(StrEnum):
    """TODO_DOC networking.v1alpha3.OutboundTrafficPolicy.Mode"""

    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


class CaptureMode(StrEnum):
    """TODO_DOC networking.v1alpha3.CaptureMode"""

    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


@message
class SidecarSpec:
    """TODO_DOC networking.v1alpha3.Sidecar"""

    workload_selector: WorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = fld(default=())
    egress: tuple[IstioEgressListener, ...] = fld(default=())
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


@message
class IstioIngressListener:
    """TODO_DOC networking.v1alpha3.IstioIngressListener"""

    port: SidecarPort | None = fld(required=True)
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


@message
class IstioEgressListener:
    """TODO_DOC networking.v1alpha3.IstioEgressListener"""

    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: tuple[str, ...] = fld(required=True, default=())


@message
class WorkloadSelector:
    """TODO_DOC networking.v1alpha3.WorkloadSelector"""

    labels: dict[str, str] = fld(factory=dict)


@message
class OutboundTrafficPolicy:
    """TODO_DOC networking.v1alpha3.OutboundTrafficPolicy"""

    mode: OutboundTrafficPolicyMode | None = None
    egress_proxy: Destination | None = None


@message
class SidecarPort:
    """TODO_DOC networking.v1alpha3.SidecarPort"""

    number: int | None = fld(proto="uint32")
    protocol: str | None = None
    name: str | None = None
    target_port: int | None = fld(proto="uint32", deprecated=True)

