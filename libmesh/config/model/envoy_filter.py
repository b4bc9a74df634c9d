"""Istio ``networking.istio.io`` EnvoyFilter messages: matches and patches on Envoy config."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .._schema import fld, message
from .selector import PolicyTargetReference
from .sidecar import WorkloadSelector

__all__ = [
    "EnvoyFilterApplyTo",
    "EnvoyFilterClusterMatch",
    "EnvoyFilterEnvoyConfigObjectMatch",
    "EnvoyFilterEnvoyConfigObjectPatch",
    "EnvoyFilterListenerMatch",
    "EnvoyFilterListenerMatchFilterChainMatch",
    "EnvoyFilterListenerMatchFilterMatch",
    "EnvoyFilterListenerMatchSubFilterMatch",
    "EnvoyFilterPatch",
    "EnvoyFilterPatchContext",
    "EnvoyFilterPatchFilterClass",
    "EnvoyFilterPatchOperation",
    "EnvoyFilterProxyMatch",
    "EnvoyFilterRouteConfigurationMatch",
    "EnvoyFilterRouteConfigurationMatchRouteMatch",
    "EnvoyFilterRouteConfigurationMatchRouteMatchAction",
    "EnvoyFilterRouteConfigurationMatchVirtualHostMatch",
    "EnvoyFilterSpec",
    "EnvoyFilterWaypointMatch",
    "EnvoyFilterWaypointMatchFilterMatch",
    "EnvoyFilterWaypointMatchFilterMatchSubFilterMatch",
    "EnvoyFilterWaypointMatchRouteMatch",
]


class EnvoyFilterApplyTo(StrEnum):
    """Kind of Envoy object a patch targets: listener, filter, route configuration, cluster and so on.

    Istio ``networking.v1alpha3.EnvoyFilter.ApplyTo``.
    """

    INVALID = "INVALID"
    LISTENER = "LISTENER"
    FILTER_CHAIN = "FILTER_CHAIN"
    NETWORK_FILTER = "NETWORK_FILTER"
    HTTP_FILTER = "HTTP_FILTER"
    ROUTE_CONFIGURATION = "ROUTE_CONFIGURATION"
    VIRTUAL_HOST = "VIRTUAL_HOST"
    HTTP_ROUTE = "HTTP_ROUTE"
    CLUSTER = "CLUSTER"
    EXTENSION_CONFIG = "EXTENSION_CONFIG"
    BOOTSTRAP = "BOOTSTRAP"
    LISTENER_FILTER = "LISTENER_FILTER"


class EnvoyFilterPatchContext(StrEnum):
    """Which proxies and traffic a patch applies to: sidecar inbound or outbound, gateway, waypoint, any.

    Istio ``networking.v1alpha3.EnvoyFilter.PatchContext``.
    """

    ANY = "ANY"
    SIDECAR_INBOUND = "SIDECAR_INBOUND"
    SIDECAR_OUTBOUND = "SIDECAR_OUTBOUND"
    GATEWAY = "GATEWAY"
    WAYPOINT = "WAYPOINT"


class EnvoyFilterRouteConfigurationMatchRouteMatchAction(StrEnum):
    """Kind of Envoy route to match: any, a forwarding route, a redirect or a direct response.

    Istio ``networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.RouteMatch.Action``.
    """

    ANY = "ANY"
    ROUTE = "ROUTE"
    REDIRECT = "REDIRECT"
    DIRECT_RESPONSE = "DIRECT_RESPONSE"


class EnvoyFilterPatchOperation(StrEnum):
    """How a patch changes the matched Envoy object: merge, add, remove, insert or replace.

    Istio ``networking.v1alpha3.EnvoyFilter.Patch.Operation``.
    """

    INVALID = "INVALID"
    MERGE = "MERGE"
    ADD = "ADD"
    REMOVE = "REMOVE"
    INSERT_BEFORE = "INSERT_BEFORE"
    INSERT_AFTER = "INSERT_AFTER"
    INSERT_FIRST = "INSERT_FIRST"
    REPLACE = "REPLACE"
    MERGE_AND_REPLACE_LIST = "MERGE_AND_REPLACE_LIST"


class EnvoyFilterPatchFilterClass(StrEnum):
    """Where an inserted filter lands relative to Istio's authn, authz and stats filters.

    Istio ``networking.v1alpha3.EnvoyFilter.Patch.FilterClass``. UNSPECIFIED leaves the position to the
    control plane.
    """

    UNSPECIFIED = "UNSPECIFIED"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


@message
class EnvoyFilterSpec:
    """Spec of an EnvoyFilter: patches applied to the Envoy configuration Istio generates.

    Istio ``networking.v1alpha3.EnvoyFilter``. Patch sets run in ascending ``priority`` (default 0),
    root-namespace sets first; patches within a set run in list order.
    """

    workload_selector: WorkloadSelector | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    config_patches: tuple[EnvoyFilterEnvoyConfigObjectPatch, ...] = fld(default=())
    priority: int | None = fld(proto="int32")


@message
class EnvoyFilterProxyMatch:
    """Limits a patch to proxies of a given version (regex) or with given node metadata.

    Istio ``networking.v1alpha3.EnvoyFilter.ProxyMatch``.
    """

    proxy_version: str | None = None
    metadata: dict[str, str] = fld(factory=dict)


@message
class EnvoyFilterClusterMatch:
    """Selects the Envoy clusters to patch by port, service host, subset or cluster name.

    Istio ``networking.v1alpha3.EnvoyFilter.ClusterMatch``.
    """

    port_number: int | None = fld(proto="uint32")
    service: str | None = None
    subset: str | None = None
    name: str | None = None


@message
class EnvoyFilterRouteConfigurationMatch:
    """Selects the route configurations, and optionally a virtual host, to patch.

    Istio ``networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch``.
    """

    port_number: int | None = fld(proto="uint32")
    port_name: str | None = None
    gateway: str | None = None
    vhost: EnvoyFilterRouteConfigurationMatchVirtualHostMatch | None = None
    name: str | None = None


@message
class EnvoyFilterRouteConfigurationMatchRouteMatch:
    """Selects a route inside a virtual host by name and kind of action.

    Istio ``networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.RouteMatch``.
    """

    name: str | None = None
    action: EnvoyFilterRouteConfigurationMatchRouteMatchAction | None = None


@message
class EnvoyFilterRouteConfigurationMatchVirtualHostMatch:
    """Selects a virtual host by name or domain, and optionally a route in it.

    Istio ``networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch``.
    """

    name: str | None = None
    domain_name: str | None = None
    route: EnvoyFilterRouteConfigurationMatchRouteMatch | None = None


@message
class EnvoyFilterListenerMatch:
    """Selects the listeners, and optionally a filter chain or listener filter, to patch.

    Istio ``networking.v1alpha3.EnvoyFilter.ListenerMatch``.
    """

    port_number: int | None = fld(proto="uint32")
    port_name: str | None = None
    filter_chain: EnvoyFilterListenerMatchFilterChainMatch | None = None
    listener_filter: str | None = None
    name: str | None = None


@message
class EnvoyFilterListenerMatchFilterChainMatch:
    """Selects a listener's filter chain by name, SNI, protocols, destination port or contained filter.

    Istio ``networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterChainMatch``.
    """

    name: str | None = None
    sni: str | None = None
    transport_protocol: str | None = None
    application_protocols: str | None = None
    filter: EnvoyFilterListenerMatchFilterMatch | None = None
    destination_port: int | None = fld(proto="uint32")
    transport_socket: tuple[str, ...] = fld(default=())


@message
class EnvoyFilterListenerMatchFilterMatch:
    """Selects a network filter of a filter chain by name, and optionally one of its HTTP filters.

    Istio ``networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterMatch``.
    """

    name: str | None = None
    sub_filter: EnvoyFilterListenerMatchSubFilterMatch | None = None


@message
class EnvoyFilterListenerMatchSubFilterMatch:
    """Selects an HTTP filter inside the HTTP connection manager by name.

    Istio ``networking.v1alpha3.EnvoyFilter.ListenerMatch.SubFilterMatch``.
    """

    name: str | None = None


@message
class EnvoyFilterWaypointMatch:
    """Selects waypoint proxy configuration to patch by port, route or filter.

    Istio ``networking.v1alpha3.EnvoyFilter.WaypointMatch``.
    """

    port_number: int | None = fld(proto="uint32")
    route: EnvoyFilterWaypointMatchRouteMatch | None = None
    filter: EnvoyFilterWaypointMatchFilterMatch | None = None


@message
class EnvoyFilterWaypointMatchRouteMatch:
    """Selects a waypoint route by name.

    Istio ``networking.v1alpha3.EnvoyFilter.WaypointMatch.RouteMatch``.
    """

    name: str | None = None


@message
class EnvoyFilterWaypointMatchFilterMatch:
    """Selects a waypoint filter by name, and optionally one of its sub-filters.

    Istio ``networking.v1alpha3.EnvoyFilter.WaypointMatch.FilterMatch``.
    """

    name: str | None = None
    sub_filter: EnvoyFilterWaypointMatchFilterMatchSubFilterMatch | None = None


@message
class EnvoyFilterWaypointMatchFilterMatchSubFilterMatch:
    """Selects a sub-filter of a waypoint filter by name.

    Istio ``networking.v1alpha3.EnvoyFilter.WaypointMatch.FilterMatch.SubFilterMatch``.
    """

    name: str | None = None


@message
class EnvoyFilterPatch:
    """The change a patch makes: an ``operation`` and the free-form Envoy config ``value`` it uses.

    Istio ``networking.v1alpha3.EnvoyFilter.Patch``.
    """

    operation: EnvoyFilterPatchOperation | None = None
    value: Any | None = None
    filter_class: EnvoyFilterPatchFilterClass | None = None


@message
class EnvoyFilterEnvoyConfigObjectMatch:
    """What a patch targets: a context, a proxy, and one listener, route configuration, cluster or waypoint.

    Istio ``networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectMatch``.
    """

    context: EnvoyFilterPatchContext | None = None
    proxy: EnvoyFilterProxyMatch | None = None
    listener: EnvoyFilterListenerMatch | None = fld(oneof="object_types")
    route_configuration: EnvoyFilterRouteConfigurationMatch | None = fld(oneof="object_types")
    cluster: EnvoyFilterClusterMatch | None = fld(oneof="object_types")
    waypoint: EnvoyFilterWaypointMatch | None = fld(oneof="object_types")


@message
class EnvoyFilterEnvoyConfigObjectPatch:
    """One config patch: the kind of object (``apply_to``), how to find it and what to change.

    Istio ``networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectPatch``.
    """

    apply_to: EnvoyFilterApplyTo | None = None
    match: EnvoyFilterEnvoyConfigObjectMatch | None = None
    patch: EnvoyFilterPatch | None = None
