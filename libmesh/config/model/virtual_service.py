"""Istio ``networking.istio.io`` VirtualService messages: HTTP, TLS and TCP routing rules."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message, reserved

__all__ = [
    "CorsPolicy",
    "Delegate",
    "Destination",
    "HTTPBody",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPFaultInjectionAbort",
    "HTTPFaultInjectionDelay",
    "HTTPMatchRequest",
    "HTTPMirrorPolicy",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "L4MatchAttributes",
    "Percent",
    "PortSelector",
    "RedirectPortSelection",
    "RegexRewrite",
    "RouteDestination",
    "StringMatch",
    "TCPRoute",
    "TLSMatchAttributes",
    "TLSRoute",
    "UnmatchedPreflights",
    "VirtualServiceSpec",
]


class RedirectPortSelection(StrEnum):
    """How a redirect derives its port when no explicit ``port`` is given.

    Istio ``networking.v1alpha3.HTTPRedirect.RedirectPortSelection``. FROM_PROTOCOL_DEFAULT picks 80 for http
    and 443 for https; FROM_REQUEST_PORT keeps the port the request arrived on.
    """

    FROM_PROTOCOL_DEFAULT = "FROM_PROTOCOL_DEFAULT"
    FROM_REQUEST_PORT = "FROM_REQUEST_PORT"


class UnmatchedPreflights(StrEnum):
    """What happens to CORS preflight requests whose origin is not allowed.

    Istio ``networking.v1alpha3.CorsPolicy.UnmatchedPreflights``. UNSPECIFIED behaves like FORWARD (send them
    upstream); IGNORE stops them at the proxy.
    """

    UNSPECIFIED = "UNSPECIFIED"
    FORWARD = "FORWARD"
    IGNORE = "IGNORE"


@message
class VirtualServiceSpec:
    """Spec of a VirtualService: the routing rules for traffic addressed to ``hosts``.

    Istio ``networking.v1alpha3.VirtualService``. ``http``, ``tls`` and ``tcp`` rules are tried in order and
    the first match wins. Without ``gateways`` the rules apply to sidecars only (the reserved ``mesh``
    gateway); an empty ``export_to`` makes the service visible to every namespace.
    """

    hosts: tuple[str, ...] = fld(default=())
    gateways: tuple[str, ...] = fld(default=())
    http: tuple[HTTPRoute, ...] = fld(default=())
    tls: tuple[TLSRoute, ...] = fld(default=())
    tcp: tuple[TCPRoute, ...] = fld(default=())
    export_to: tuple[str, ...] = fld(default=())


@message
class Destination:
    """Where a route sends traffic: a registry host, optionally one subset and one port of it.

    Istio ``networking.v1alpha3.Destination``. Short names such as ``reviews`` are qualified with the rule's
    namespace, not the service's. ``subset`` names a DestinationRule subset; ``port`` may be left out when the
    service has only one.

    Example: ``Destination(host="reviews.prod.svc.cluster.local", subset="v2")``
    """

    host: str | None = fld(required=True)
    subset: str | None = None
    port: PortSelector | None = None


@message
class HTTPRoute:
    """One HTTP routing rule: match conditions and what to do with the requests that meet them.

    Istio ``networking.v1alpha3.HTTPRoute``. A matching request is forwarded to ``route``, answered by
    ``redirect`` or ``direct_response``, or handed to ``delegate``. ``match`` entries are ORed and an empty
    ``match`` catches everything. No ``timeout`` means no timeout; no ``retries`` means the mesh default (2
    attempts).

    Example::

        HTTPRoute(match=(HTTPMatchRequest(uri=StringMatch(prefix="/api")),), timeout=timedelta(seconds=5))
    """

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
    """Points an HTTP route at a delegate VirtualService whose routes are merged in.

    Istio ``networking.v1alpha3.Delegate``. ``namespace`` defaults to the namespace of the root
    VirtualService; only one level of delegation is allowed.
    """

    name: str | None = None
    namespace: str | None = None


@message
class Headers:
    """Header edits for requests (before forwarding) and responses (before replying).

    Istio ``networking.v1alpha3.Headers``. Either side may be absent, meaning no change in that direction.

    Example: ``Headers(request=HeaderOperations(set={"x-env": "prod"}))``
    """

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@message
class HeaderOperations:
    """A group of header edits: overwrite (``set``), append (``add``) and delete (``remove``).

    Istio ``networking.v1alpha3.Headers.HeaderOperations``. Map keys are header names. ``add`` keeps existing
    values and joins the new one with a comma; ``set`` replaces whatever was there.
    """

    set: dict[str, str] = fld(factory=dict)
    add: dict[str, str] = fld(factory=dict)
    remove: tuple[str, ...] = fld(default=())


@message
class TLSRoute:
    """A routing rule for TLS and HTTPS passthrough traffic, matched by SNI.

    Istio ``networking.v1alpha3.TLSRoute``.
    """

    match: tuple[TLSMatchAttributes, ...] = fld(required=True, default=())
    route: tuple[RouteDestination, ...] = fld(default=())


@message
class TCPRoute:
    """A routing rule for opaque TCP traffic, matched by connection attributes.

    Istio ``networking.v1alpha3.TCPRoute``.
    """

    match: tuple[L4MatchAttributes, ...] = fld(default=())
    route: tuple[RouteDestination, ...] = fld(default=())


@message
class HTTPMatchRequest:
    """Conditions an HTTP request must satisfy for its route to apply.

    Istio ``networking.v1alpha3.HTTPMatchRequest``. Every field that is set must match (AND). Header names are
    lowercase, and a header mapped to an empty ``StringMatch()`` only needs to be present. ``source_labels``
    and ``source_namespace`` pick client workloads up front rather than testing the request.

    Example::

        HTTPMatchRequest(uri=StringMatch(prefix="/api"), headers={"x-user": StringMatch(exact="alice")})
    """

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
    """One weighted destination of an HTTP route, with optional header edits of its own.

    Istio ``networking.v1alpha3.HTTPRouteDestination``. Each destination gets ``weight`` / (sum of weights) of
    the traffic. A single destination receives everything whatever its weight; among several, weight 0
    receives nothing.

    Example: ``HTTPRouteDestination(destination=Destination(host="reviews", subset="v1"), weight=75)``
    """

    destination: Destination | None = fld(required=True)
    weight: int | None = fld(proto="int32")
    headers: Headers | None = None


@message
class RouteDestination:
    """One weighted destination of a TCP or TLS route (Istio ``networking.v1alpha3.RouteDestination``)."""

    destination: Destination | None = fld(required=True)
    weight: int | None = fld(proto="int32")


@message
class L4MatchAttributes:
    """Connection-level match conditions of a TCP route (destination subnets, port, source, gateways).

    Istio ``networking.v1alpha3.L4MatchAttributes``.
    """

    destination_subnets: tuple[str, ...] = fld(default=())
    port: int | None = fld(proto="uint32")
    source_subnet: str | None = None
    source_labels: dict[str, str] = fld(factory=dict)
    gateways: tuple[str, ...] = fld(default=())
    source_namespace: str | None = None


@message
class TLSMatchAttributes:
    """Match conditions of a TLS route; ``sni_hosts`` is required.

    Istio ``networking.v1alpha3.TLSMatchAttributes``.
    """

    sni_hosts: tuple[str, ...] = fld(required=True, default=())
    destination_subnets: tuple[str, ...] = fld(default=())
    port: int | None = fld(proto="uint32")
    source_labels: dict[str, str] = fld(factory=dict)
    gateways: tuple[str, ...] = fld(default=())
    source_namespace: str | None = None


@message
class HTTPRedirect:
    """Answer matching requests with a redirect instead of forwarding them.

    Istio ``networking.v1alpha3.HTTPRedirect``. Parts that are not set (path, authority, scheme) are kept from
    the request, and the status defaults to 301. ``uri`` replaces the whole path; ``prefix_rewrite`` swaps
    only the matched prefix and cannot be combined with ``uri``.

    Example: ``HTTPRedirect(uri="/v2/login", authority="auth.example.com", redirect_code=302)``
    """

    uri: str | None = None
    authority: str | None = None
    port: int | None = fld(proto="uint32", oneof="redirect_port")
    derive_port: RedirectPortSelection | None = fld(oneof="redirect_port")
    scheme: str | None = None
    redirect_code: int | None = fld(proto="uint32")
    prefix_rewrite: str | None = None


@message
class HTTPDirectResponse:
    """Answer matching requests with a fixed status and body, without calling any upstream.

    Istio ``networking.v1alpha3.HTTPDirectResponse``. ``status`` is required; without ``body`` the response
    has no body.

    Example: ``HTTPDirectResponse(status=503, body=HTTPBody(string="temporarily unavailable"))``
    """

    status: int | None = fld(proto="uint32", required=True)
    body: HTTPBody | None = None


@message
class HTTPBody:
    """Body of a direct response: text in ``string`` or raw ``bytes_`` (base64 in YAML).

    Istio ``networking.v1alpha3.HTTPBody``.
    """

    string: str | None = fld(oneof="specifier")
    bytes_: bytes | None = fld(json="bytes", oneof="specifier")


@message
class HTTPRewrite:
    """Rewrite the path and/or the authority of a request before it is forwarded.

    Istio ``networking.v1alpha3.HTTPRewrite``. When the route matched on a URI prefix, ``uri`` replaces just
    that prefix; otherwise the whole path. ``uri_regex_rewrite`` is the regex alternative to ``uri`` (set one
    of them). A rewrite cannot be combined with a redirect.

    Example: ``HTTPRewrite(uri="/", authority="backend.internal")``
    """

    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@message
class RegexRewrite:
    """Regex path rewrite: the parts of the path that ``match`` (RE2) finds are replaced by ``rewrite``.

    Istio ``networking.v1alpha3.RegexRewrite``.
    """

    match: str | None = None
    rewrite: str | None = None


@message
class StringMatch:
    """How a string such as a path or header value is compared: one of ``exact``, ``prefix`` or ``regex``.

    Istio ``networking.v1alpha3.StringMatch``. Comparison is case-sensitive, and ``regex`` (RE2 syntax) must
    match the whole value. Inside ``HTTPMatchRequest.headers`` an empty ``StringMatch()`` just tests that the
    header is present.

    Example: ``StringMatch(prefix="/reviews")``
    """

    exact: str | None = fld(oneof="match_type")
    prefix: str | None = fld(oneof="match_type")
    regex: str | None = fld(oneof="match_type")


@message
class HTTPRetry:
    """Retry policy of an HTTP route (Istio ``networking.v1alpha3.HTTPRetry``).

    ``attempts`` counts retries after the first try; 0 or absent disables retrying. A route without
    ``retries`` gets Istio's default of 2 attempts on connect-failure, refused-stream, unavailable and
    cancelled. ``per_try_timeout`` defaults to the route timeout and ``backoff`` to 25 ms.

    Example: ``HTTPRetry(attempts=3, retry_on="5xx,reset", per_try_timeout=timedelta(seconds=2))``
    """

    attempts: int | None = fld(proto="int32")
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


@message
class CorsPolicy:
    """Cross-origin (CORS) settings of an HTTP route: allowed origins, methods, headers, caching.

    Istio ``networking.v1alpha3.CorsPolicy``. ``allow_origins`` supersedes the deprecated ``allow_origin``;
    ``max_age`` sets how long browsers may cache a preflight answer.
    """

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
    """Faults injected into an HTTP route to test resilience: a delay, an abort, or both.

    Istio ``networking.v1alpha3.HTTPFaultInjection``. The faults are applied by the client-side proxy, and
    Istio leaves the route's timeout and retries disabled while a fault is configured. At least one of
    ``delay`` and ``abort`` must be set.

    Example::

        HTTPFaultInjection(abort=HTTPFaultInjectionAbort(http_status=503, percentage=Percent(value=10.0)))
    """

    delay: HTTPFaultInjectionDelay | None = None
    abort: HTTPFaultInjectionAbort | None = None


@message
class HTTPFaultInjectionDelay:
    """Injected latency: hold a share of requests for ``fixed_delay`` before forwarding them.

    Istio ``networking.v1alpha3.HTTPFaultInjection.Delay``. Without ``percentage`` (or the deprecated integer
    ``percent``) no request is delayed. ``exponential_delay`` exists in the API but Istio rejects it as
    unsupported.

    Example: ``HTTPFaultInjectionDelay(fixed_delay=timedelta(seconds=5), percentage=Percent(value=1.0))``
    """

    percent: int | None = fld(proto="int32", deprecated=True)
    fixed_delay: Duration | None = fld(oneof="http_delay_type")
    exponential_delay: Duration | None = fld(oneof="http_delay_type")
    percentage: Percent | None = None


@message
class HTTPFaultInjectionAbort:
    """Injected failure: end a share of requests early with an HTTP status or gRPC status.

    Istio ``networking.v1alpha3.HTTPFaultInjection.Abort``. Without ``percentage`` no request is aborted.
    ``http_status`` must be 200-599 and ``grpc_status`` a code name such as ``UNAVAILABLE``; ``http2_error``
    is in the API but Istio rejects it as unsupported.

    Example: ``HTTPFaultInjectionAbort(grpc_status="UNAVAILABLE", percentage=Percent(value=50.0))``
    """

    http_status: int | None = fld(proto="int32", oneof="error_type")
    grpc_status: str | None = fld(oneof="error_type")
    http2_error: str | None = fld(oneof="error_type")
    percentage: Percent | None = None


@message
class HTTPMirrorPolicy:
    """One mirror target of an HTTP route: copies of requests are sent there, fire and forget.

    Istio ``networking.v1alpha3.HTTPMirrorPolicy``. The mirror's responses are discarded and never delay the
    real response. Without ``percentage`` all traffic (100%) is mirrored.

    Example::

        HTTPMirrorPolicy(destination=Destination(host="reviews-shadow"), percentage=Percent(value=5.0))
    """

    destination: Destination | None = fld(required=True)
    percentage: Percent | None = None


@message
class PortSelector:
    """Selects a port of a destination service by number (Istio ``networking.v1alpha3.PortSelector``)."""

    number: int | None = fld(proto="uint32")


@message
class Percent:
    """A percentage, as a float from 0.0 to 100.0 (Istio ``networking.v1alpha3.Percent``)."""

    value: float | None = None


reserved(
    HTTPRoute,
    "websocket_upgrade",
    "append_headers",
    "remove_response_headers",
    "append_response_headers",
    "remove_request_headers",
    "append_request_headers",
)
reserved(
    HTTPRouteDestination,
    "remove_response_headers",
    "append_response_headers",
    "remove_request_headers",
    "append_request_headers",
)
reserved(TLSMatchAttributes, "source_subnet")
reserved(HTTPFaultInjectionAbort, "percent")
reserved(PortSelector, "name")
