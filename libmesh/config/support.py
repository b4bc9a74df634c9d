"""What of Istio's API libmesh acts on: one table, read by ``libmesh validate`` and by docs/conformance.md.

Every field of every message of an enforced kind is supported unless this table says otherwise. A field marked
``NOT_YET`` or ``PARTIAL`` that a resource sets produces a warning naming the field, so nothing Istio would act
on is ignored silently. Kinds whose class has ``ENFORCED = False`` get one warning for the whole resource.

To mark a field, add ``"Message.field_name": (Support.NOT_YET, "why")``; a test checks that every key names a
real field.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from ._schema import Kind, Located, fields_of
from .resources import Resource

__all__ = ["FIELD_SUPPORT", "KIND_NOTES", "Support", "support_of", "unenforced_fields"]


class Support(StrEnum):
    """How far libmesh acts on a field."""

    SUPPORTED = "supported"
    PARTIAL = "partial"
    NOT_YET = "not yet"


_L4 = "TCP/TLS proxying arrives with the sidecar mode"
_MTLS = "mTLS arrives with the SPIFFE identity work"
_LOCALITY = "libmesh has no locality or network topology yet"
_ENVOY = "an Envoy-internal knob with no in-process counterpart"
_POOL = "the HTTP/gRPC transports do not expose this knob yet"

#: ``"Message.field" -> (support, why)`` for everything not fully supported in an enforced kind.
FIELD_SUPPORT: dict[str, tuple[Support, str]] = {
    # VirtualService
    "VirtualServiceSpec.tls": (Support.NOT_YET, _L4),
    "VirtualServiceSpec.tcp": (Support.NOT_YET, _L4),
    "HTTPRoute.cors_policy": (Support.NOT_YET, "CORS belongs to the gateway/sidecar work"),
    "HTTPMatchRequest.stat_prefix": (Support.NOT_YET, _ENVOY),
    "HTTPRetry.retry_remote_localities": (Support.NOT_YET, _LOCALITY),
    "HTTPFaultInjectionDelay.exponential_delay": (Support.NOT_YET, "Istio does not implement it either"),
    "HTTPFaultInjectionAbort.http2_error": (
        Support.NOT_YET,
        "an HTTP/2 stream reset cannot be injected in-process",
    ),
    # DestinationRule
    "TrafficPolicy.tls": (Support.NOT_YET, _MTLS),
    "TrafficPolicy.tunnel": (Support.NOT_YET, _L4),
    "TrafficPolicy.proxy_protocol": (Support.NOT_YET, _L4),
    "PortTrafficPolicy.tls": (Support.NOT_YET, _MTLS),
    "LoadBalancerSettings.locality_lb_setting": (Support.NOT_YET, _LOCALITY),
    "LoadBalancerSettings.zone_aware_lb_setting": (Support.NOT_YET, _LOCALITY),
    "LoadBalancerSettings.backend_utilization": (Support.NOT_YET, "ORCA load reports are not read"),
    "TCPSettings.tcp_keepalive": (Support.NOT_YET, _POOL),
    "TCPSettings.max_connection_duration": (Support.NOT_YET, _POOL),
    "TCPSettings.idle_timeout": (
        Support.PARTIAL,
        "the idle timeout of the destination's HTTP/gRPC connections when http.idleTimeout is not set, as "
        "pilot builds HTTP clusters (see HTTPSettings.idleTimeout for where it applies); no TCP proxying yet",
    ),
    "HTTPSettings.h2_upgrade_policy": (Support.NOT_YET, _POOL),
    "HTTPSettings.max_requests_per_connection": (
        Support.PARTIAL,
        "only 1 is enforced (keep-alive off in the httpx client's pool for the destination); httpx cannot "
        "close a connection after any other number of requests; not applied to gRPC channels",
    ),
    "HTTPSettings.idle_timeout": (
        Support.PARTIAL,
        "closes the httpx client's idle connections to the destination (not applied to a transport the app "
        "passes itself with transport=) and a gRPC mesh channel's idle per-endpoint channels",
    ),
    "TCPSettings.max_connections": (
        Support.PARTIAL,
        "caps the httpx client's connections to the destination (per MeshTransport, not per process; not "
        "applied to a transport the app passes itself with transport=); requests beyond it count as pending "
        "for http1MaxPendingRequests; a gRPC mesh channel keeps one channel (one HTTP/2 connection) per "
        "endpoint whatever the limit",
    ),
    "HTTPSettings.use_client_protocol": (Support.NOT_YET, _POOL),
    "HTTPSettings.max_concurrent_streams": (Support.NOT_YET, _POOL),
    "HTTPSettings.http2_keep_alive": (Support.NOT_YET, _POOL),
    "OutlierDetection.split_external_local_origin_errors": (
        Support.NOT_YET,
        "local-origin errors are not split",
    ),
    "OutlierDetection.consecutive_local_origin_failures": (
        Support.NOT_YET,
        "local-origin errors are not split",
    ),
    # ServiceEntry / WorkloadEntry
    "ServiceEntrySpec.addresses": (Support.NOT_YET, "calls are routed by host name, not by VIP"),
    "ServiceEntrySpec.subject_alt_names": (Support.NOT_YET, _MTLS),
    "WorkloadEntrySpec.network": (Support.NOT_YET, _LOCALITY),
    "WorkloadEntrySpec.locality": (Support.NOT_YET, _LOCALITY),
    "WorkloadEntrySpec.service_account": (Support.NOT_YET, _MTLS),
}

#: Notes for kinds libmesh validates but does not act on (``ENFORCED = False``).
KIND_NOTES: dict[str, str] = {
    "Gateway": "gateways arrive with the sidecar/gateway mode",
    "Sidecar": "scoping a sidecar's view has no meaning in-process yet",
    "WorkloadGroup": "WorkloadEntries are not generated from groups",
    "EnvoyFilter": "it patches Envoy config, which libmesh does not have",
    "ProxyConfig": "it configures the Envoy proxy",
    "Telemetry": "libmesh takes telemetry settings from MeshConfig",
    "WasmPlugin": "it loads Envoy Wasm extensions",
    "PeerAuthentication": "mTLS arrives with the SPIFFE identity work",
    "AuthorizationPolicy": "authorization arrives with the SPIFFE identity work",
    "RequestAuthentication": "JWT authentication arrives with the SPIFFE identity work",
}


def support_of(cls: type[Any], field_name: str) -> tuple[Support, str]:
    """The support status of ``cls.field_name`` (SUPPORTED with an empty note unless the table says else)."""
    return FIELD_SUPPORT.get(f"{cls.__name__}.{field_name}", (Support.SUPPORTED, ""))


def unenforced_fields(resource: Resource) -> list[Located]:
    """Warnings for each set field of ``resource`` that libmesh parses but does not act on."""
    if not type(resource).ENFORCED or resource.KIND in KIND_NOTES:
        note = KIND_NOTES.get(resource.KIND, "")
        msg = f"{resource.KIND} is accepted by Istio, not yet enforced by libmesh" + (
            f" ({note})" if note else ""
        )
        return [Located("", None, msg, warning=True)]
    return list(_walk(getattr(resource, "spec", None), "spec"))


def _walk(obj: Any, path: str) -> Iterator[Located]:
    if obj is None:
        return
    for spec in fields_of(type(obj)):
        value = getattr(obj, spec.name)
        if value is None or (spec.type.kind in (Kind.LIST, Kind.MAP) and not value):
            continue
        sub = f"{path}.{spec.json}"
        status, why = support_of(type(obj), spec.name)
        if status is Support.NOT_YET:
            yield Located(sub, None, f"accepted by Istio, not yet enforced by libmesh ({why})", warning=True)
            continue
        if status is Support.PARTIAL:
            yield Located(sub, None, f"partially enforced by libmesh: {why}", warning=True)
        kind = spec.type.kind
        if kind is Kind.MESSAGE:
            yield from _walk(value, sub)
        elif spec.type.item is not None and spec.type.item.kind is Kind.MESSAGE:
            items = value.items() if kind is Kind.MAP else enumerate(value)
            for key, item in items:
                yield from _walk(item, f"{sub}.{key}" if kind is Kind.MAP else f"{sub}[{key}]")
