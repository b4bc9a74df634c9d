from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyTargetReference
from .sidecar import WorkloadSelector

__all__ = ["EnvoyFilterApplyTo", "EnvoyFilterClusterMatch", "EnvoyFilterEnvoyConfigObjectMatch", "EnvoyFilterEnvoyConfigObjectPatch", "EnvoyFilterListenerMatch", "EnvoyFilterListenerMatchFilterChainMatch", "EnvoyFilterListenerMatchFilterMatch", "EnvoyFilterListenerMatchSubFilterMatch", "EnvoyFilterPatch", "EnvoyFilterPatchContext", "EnvoyFilterPatchFilterClass", "EnvoyFilterPatchOperation", "EnvoyFilterProxyMatch", "EnvoyFilterRouteConfigurationMatch", "EnvoyFilterRouteConfigurationMatchRouteMatch", "EnvoyFilterRouteConfigurationMatchRouteMatchAction", "EnvoyFilterRouteConfigurationMatchVirtualHostMatch", "EnvoyFilterSpec", "EnvoyFilterWaypointMatch", "EnvoyFilterWaypointMatchFilterMatch", "EnvoyFilterWaypointMatchFilterMatchSubFilterMatch", "EnvoyFilterWaypointMatchRouteMatch"]


class EnvoyFilterApplyTo(StrEnum):
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ApplyTo"""

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
    """TODO_DOC networking.v1alpha3.EnvoyFilter.PatchContext"""

    ANY = "ANY"
    SIDECAR_INBOUND = "SIDECAR_INBOUND"
    SIDECAR_OUTBOUND = "SIDECAR_OUTBOUND"
    GATEWAY = "GATEWAY"
    WAYPOINT = "WAYPOINT"


class EnvoyFilterRouteConfigurationMatchRouteMatchAction(StrEnum):
    """TODO_DOC networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.RouteMatch.Action"""

    ANY = "ANY"
    ROUTE = "ROUTE"
    REDIRECT = "REDIRECT"
    DIRECT_RESPONSE = "DIRECT_RESPONSE"


class EnvoyFilterPatchOperation(StrEnum):
    """TODO_DOC networking.v1alpha3.EnvoyFilter.Patch.Operation"""

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
    """TODO_DOC networking.v1alpha3.EnvoyFilter.Patch.FilterClass"""

    UNSPECIFIED = "UNSPECIFIED"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


@message
class EnvoyFilterSpec:
    """TODO_DOC networking.v1alpha3.EnvoyFilter"""

    workload_selector: WorkloadSelector | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    config_patches: tuple[EnvoyFilterEnvoyConfigObjectPatch, ...] = fld(default=())
    priority: int | None = fld(proto="int32")


@message
class EnvoyFilterProxyMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ProxyMatch"""

    proxy_version: str | None = None
    metadata: dict[str, str] = fld(factory=dict)


@message
class EnvoyFilterClusterMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ClusterMatch"""

    port_number: int | None = fld(proto="uint32")
    service: str | None = None
    subset: str | None = None
    name: str | None = None


@message
class EnvoyFilterRouteConfigurationMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch"""

    port_number: int | None = fld(proto="uint32")
    port_name: str | None = None
    gateway: str | None = None
    vhost: EnvoyFilterRouteConfigurationMatchVirtualHostMatch | None = None
    name: str | None = None


@message
class EnvoyFilterRouteConfigurationMatchRouteMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.RouteMatch"""

    name: str | None = None
    action: EnvoyFilterRouteConfigurationMatchRouteMatchAction | None = None


@message
class EnvoyFilterRouteConfigurationMatchVirtualHostMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch"""

    name: str | None = None
    domain_name: str | None = None
    route: EnvoyFilterRouteConfigurationMatchRouteMatch | None = None


@message
class EnvoyFilterListenerMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ListenerMatch"""

    port_number: int | None = fld(proto="uint32")
    port_name: str | None = None
    filter_chain: EnvoyFilterListenerMatchFilterChainMatch | None = None
    listener_filter: str | None = None
    name: str | None = None


@message
class EnvoyFilterListenerMatchFilterChainMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterChainMatch"""

    name: str | None = None
    sni: str | None = None
    transport_protocol: str | None = None
    application_protocols: str | None = None
    filter: EnvoyFilterListenerMatchFilterMatch | None = None
    destination_port: int | None = fld(proto="uint32")
    transport_socket: tuple[str, ...] = fld(default=())


@message
class EnvoyFilterListenerMatchFilterMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterMatch"""

    name: str | None = None
    sub_filter: EnvoyFilterListenerMatchSubFilterMatch | None = None


@message
class EnvoyFilterListenerMatchSubFilterMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.ListenerMatch.SubFilterMatch"""

    name: str | None = None


@message
class EnvoyFilterWaypointMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.WaypointMatch"""

    port_number: int | None = fld(proto="uint32")
    route: EnvoyFilterWaypointMatchRouteMatch | None = None
    filter: EnvoyFilterWaypointMatchFilterMatch | None = None


@message
class EnvoyFilterWaypointMatchRouteMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.WaypointMatch.RouteMatch"""

    name: str | None = None


@message
class EnvoyFilterWaypointMatchFilterMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.WaypointMatch.FilterMatch"""

    name: str | None = None
    sub_filter: EnvoyFilterWaypointMatchFilterMatchSubFilterMatch | None = None


@message
class EnvoyFilterWaypointMatchFilterMatchSubFilterMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.WaypointMatch.FilterMatch.SubFilterMatch"""

    name: str | None = None


@message
class EnvoyFilterPatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.Patch"""

    operation: EnvoyFilterPatchOperation | None = None
    value: Any | None = None
    filter_class: EnvoyFilterPatchFilterClass | None = None


@message
class EnvoyFilterEnvoyConfigObjectMatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectMatch"""

    context: EnvoyFilterPatchContext | None = None
    proxy: EnvoyFilterProxyMatch | None = None
    listener: EnvoyFilterListenerMatch | None = fld(oneof="object_types")
    route_configuration: EnvoyFilterRouteConfigurationMatch | None = fld(oneof="object_types")
    cluster: EnvoyFilterClusterMatch | None = fld(oneof="object_types")
    waypoint: EnvoyFilterWaypointMatch | None = fld(oneof="object_types")


@message
class EnvoyFilterEnvoyConfigObjectPatch:
    """TODO_DOC networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectPatch"""

    apply_to: EnvoyFilterApplyTo | None = None
    match: EnvoyFilterEnvoyConfigObjectMatch | None = None
    patch: EnvoyFilterPatch | None = None

