from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message, reserved


__all__ = ["CorsPolicy", "Delegate", "Destination", "HTTPBody", "HTTPDirectResponse", "HTTPFaultInjection", "HTTPFaultInjectionAbort", "HTTPFaultInjectionDelay", "HTTPMatchRequest", "HTTPMirrorPolicy", "HTTPRedirect", "HTTPRetry", "HTTPRewrite", "HTTPRoute", "HTTPRouteDestination", "HeaderOperations", "Headers", "L4MatchAttributes", "Percent", "PortSelector", "RedirectPortSelection", "RegexRewrite", "RouteDestination", "StringMatch", "TCPRoute", "TLSMatchAttributes", "TLSRoute", "UnmatchedPreflights", "VirtualServiceSpec"]


class RedirectPortSelection(StrEnum):
    """TODO_DOC networking.v1alpha3.HTTPRedirect.RedirectPortSelection"""

    FROM_PROTOCOL_DEFAULT = "FROM_PROTOCOL_DEFAULT"
    FROM_REQUEST_PORT = "FROM_REQUEST_PORT"


class UnmatchedPreflights(StrEnum):
    """TODO_DOC networking.v1alpha3.CorsPolicy.UnmatchedPreflights"""

    UNSPECIFIED = "UNSPECIFIED"
    FORWARD = "FORWARD"
    IGNORE = "IGNORE"


@message
class VirtualServiceSpec:
    """TODO_DOC networking.v1alpha3.VirtualService"""

    hosts: tuple[str, ...] = fld(default=())
    gateways: tuple[str, ...] = fld(default=())
    http: tuple[HTTPRoute, ...] = fld(default=())
    tls: tuple[TLSRoute, ...] = fld(default=())
    tcp: tuple[TCPRoute, ...] = fld(default=())
    export_to: tuple[str, ...] = fld(default=())


@message
class Destination:
    """TODO_DOC networking.v1alpha3.Destination"""

    host: str | None = fld(required=True)
    subset: str | None = None
    port: PortSelector | None = None


@message
class HTTPRoute:
    """TODO_DOC networking.v1alpha3.HTTPRoute"""

    name: str | None = None
    match: tuple[HTTPMatchRequest, ...] = fld(default=())
    route: tuple[HTTPRouteDestination, ...] = fld(default=())
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = fld(default=())
    mirror_percent: int | None = fld(proto="uint32", json="mirror_percent", deprecated=True)
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


@message
class Delegate:
    """TODO_DOC networking.v1alpha3.Delegate"""

    name: str | None = None
    namespace: str | None = None


@message
class Headers:
    """TODO_DOC networking.v1alpha3.Headers"""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@message
class HeaderOperations:
    """TODO_DOC networking.v1alpha3.Headers.HeaderOperations"""

    set: dict[str, str] = fld(factory=dict)
    add: dict[str, str] = fld(factory=dict)
    remove: tuple[str, ...] = fld(default=())


@message
class TLSRoute:
    """TODO_DOC networking.v1alpha3.TLSRoute"""

    match: tuple[TLSMatchAttributes, ...] = fld(required=True, default=())
    route: tuple[RouteDestination, ...] = fld(default=())


@message
class TCPRoute:
    """TODO_DOC networking.v1alpha3.TCPRoute"""

    match: tuple[L4MatchAttributes, ...] = fld(default=())
    route: tuple[RouteDestination, ...] = fld(default=())


@message
class HTTPMatchRequest:
    """TODO_DOC networking.v1alpha3.HTTPMatchRequest"""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = fld(factory=dict)
    port: int | None = fld(proto="uint32")
    source_labels: dict[str, str] = fld(factory=dict)
    gateways: tuple[str, ...] = fld(default=())
    query_params: dict[str, StringMatch] = fld(factory=dict)
    ignore_uri_case: bool | None = None
    without_headers: dict[str, StringMatch] = fld(factory=dict)
    source_namespace: str | None = None
    stat_prefix: str | None = None


@message
class HTTPRouteDestination:
    """TODO_DOC networking.v1alpha3.HTTPRouteDestination"""

    destination: Destination | None = fld(required=True)
    weight: int | None = fld(proto="int32")
    headers: Headers | None = None


@message
class RouteDestination:
    """TODO_DOC networking.v1alpha3.RouteDestination"""

    destination: Destination | None = fld(required=True)
    weight: int | None = fld(proto="int32")


@message
class L4MatchAttributes:
    """TODO_DOC networking.v1alpha3.L4MatchAttributes"""

    destination_subnets: tuple[str, ...] = fld(default=())
    port: int | None = fld(proto="uint32")
    source_subnet: str | None = None
    source_labels: dict[str, str] = fld(factory=dict)
    gateways: tuple[str, ...] = fld(default=())
    source_namespace: str | None = None


@message
class TLSMatchAttributes:
    """TODO_DOC networking.v1alpha3.TLSMatchAttributes"""

    sni_hosts: tuple[str, ...] = fld(required=True, default=())
    destination_subnets: tuple[str, ...] = fld(default=())
    port: int | None = fld(proto="uint32")
    source_labels: dict[str, str] = fld(factory=dict)
    gateways: tuple[str, ...] = fld(default=())
    source_namespace: str | None = None


@message
class HTTPRedirect:
    """TODO_DOC networking.v1alpha3.HTTPRedirect"""

    uri: str | None = None
    authority: str | None = None
    port: int | None = fld(proto="uint32", oneof="redirect_port")
    derive_port: RedirectPortSelection | None = fld(oneof="redirect_port")
    scheme: str | None = None
    redirect_code: int | None = fld(proto="uint32")
    prefix_rewrite: str | None = None


@message
class HTTPDirectResponse:
    """TODO_DOC networking.v1alpha3.HTTPDirectResponse"""

    status: int | None = fld(proto="uint32", required=True)
    body: HTTPBody | None = None


@message
class HTTPBody:
    """TODO_DOC networking.v1alpha3.HTTPBody"""

    string: str | None = fld(oneof="specifier")
    bytes_: bytes | None = fld(json="bytes", oneof="specifier")


@message
class HTTPRewrite:
    """TODO_DOC networking.v1alpha3.HTTPRewrite"""

    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@message
class RegexRewrite:
    """TODO_DOC networking.v1alpha3.RegexRewrite"""

    match: str | None = None
    rewrite: str | None = None


@message
class StringMatch:
    """TODO_DOC networking.v1alpha3.StringMatch"""

    exact: str | None = fld(oneof="match_type")
    prefix: str | None = fld(oneof="match_type")
    regex: str | None = fld(oneof="match_type")


@message
class HTTPRetry:
    """TODO_DOC networking.v1alpha3.HTTPRetry"""

    attempts: int | None = fld(proto="int32")
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


@message
class CorsPolicy:
    """TODO_DOC networking.v1alpha3.CorsPolicy"""

    allow_origin: tuple[str, ...] = fld(deprecated=True, default=())
    allow_origins: tuple[StringMatch, ...] = fld(default=())
    allow_methods: tuple[str, ...] = fld(default=())
    allow_headers: tuple[str, ...] = fld(default=())
    expose_headers: tuple[str, ...] = fld(default=())
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: UnmatchedPreflights | None = None


@message
class HTTPFaultInjection:
    """TODO_DOC networking.v1alpha3.HTTPFaultInjection"""

    delay: HTTPFaultInjectionDelay | None = None
    abort: HTTPFaultInjectionAbort | None = None


@message
class HTTPFaultInjectionDelay:
    """TODO_DOC networking.v1alpha3.HTTPFaultInjection.Delay"""

    percent: int | None = fld(proto="int32", deprecated=True)
    fixed_delay: Duration | None = fld(oneof="http_delay_type")
    exponential_delay: Duration | None = fld(oneof="http_delay_type")
    percentage: Percent | None = None


@message
class HTTPFaultInjectionAbort:
    """TODO_DOC networking.v1alpha3.HTTPFaultInjection.Abort"""

    http_status: int | None = fld(proto="int32", oneof="error_type")
    grpc_status: str | None = fld(oneof="error_type")
    http2_error: str | None = fld(oneof="error_type")
    percentage: Percent | None = None


@message
class HTTPMirrorPolicy:
    """TODO_DOC networking.v1alpha3.HTTPMirrorPolicy"""

    destination: Destination | None = fld(required=True)
    percentage: Percent | None = None


@message
class PortSelector:
    """TODO_DOC networking.v1alpha3.PortSelector"""

    number: int | None = fld(proto="uint32")


@message
class Percent:
    """TODO_DOC networking.v1alpha3.Percent"""

    value: float | None = None



reserved(HTTPRoute, "websocket_upgrade", "append_headers", "remove_response_headers", "append_response_headers",
         "remove_request_headers", "append_request_headers")
reserved(HTTPRouteDestination, "remove_response_headers", "append_response_headers", "remove_request_headers",
         "append_request_headers")
reserved(TLSMatchAttributes, "source_subnet")
reserved(HTTPFaultInjectionAbort, "percent")
reserved(PortSelector, "name")
