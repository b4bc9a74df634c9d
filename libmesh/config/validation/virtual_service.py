"""VirtualService rules: Istio's webhook validation, plus the warnings ``istioctl`` gives about dead rules.

The checks follow Istio's ``ValidateVirtualService``: hosts and gateways, every HTTP/TLS/TCP route, their
matches, destinations, weights, retries, faults, mirrors, redirects, rewrites, header operations and CORS
policies. Warnings add what Istio's analysis reports (a rule after a catch-all rule, a match an earlier rule
already covers) and what matters to libmesh in particular (it serves only the ``mesh`` gateway).

A VirtualService without ``hosts`` is, as in Istio, a *delegate*: it only takes effect through another
VirtualService's ``delegate`` route, and has rules of its own (no gateways, no TCP/TLS routes, no nested
delegation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._schema import to_dict
from ..model.virtual_service import (
    CorsPolicy,
    Destination,
    Headers,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    L4MatchAttributes,
    RouteDestination,
    StringMatch,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
    VirtualServiceSpec,
)
from ..resources import VirtualService
from . import Context, Reporter, checks
from .common import (
    CORS_METHODS,
    GRPC_STATUS_CODES,
    host_matches,
    host_subset_of,
    is_authority_header,
    is_dns1123_label,
    is_ip_address,
    is_jwt_claim_route,
    key_path,
    validate_cors_header_name,
    validate_duration,
    validate_export_to,
    validate_gateway_names,
    validate_header_name,
    validate_header_operation_name,
    validate_header_value,
    validate_http_retry,
    validate_ip_subnet,
    validate_labels,
    validate_percentage,
    validate_port,
    validate_regex,
    validate_string_match,
    validate_subset_name,
    wildcard_domain_error,
)

__all__: list[str] = []

_MESH = "mesh"
_KB = 1024
_MB = 1024 * _KB
# Istio sets this annotation on VirtualServices it generates from Gateway API routes.
_ROUTE_SEMANTICS = "internal.istio.io/route-semantics"
# The redirect codes Istio can program; other 3xx codes pass its validation but the redirect is dropped.
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class _Scope:
    """Facts about the whole VirtualService that route-level rules depend on."""

    spec: VirtualServiceSpec
    delegate: bool  # no hosts: only reachable through another VirtualService's delegate route
    gateway_semantics: bool

    @property
    def applies_to_gateway(self) -> bool:
        """True when the VirtualService is bound only to gateways (``mesh`` not among them)."""
        return bool(self.spec.gateways) and _MESH not in self.spec.gateways

    @property
    def sni_gateway(self) -> bool:
        """Istio checks SNI hosts with gateway rules unless ``mesh`` is listed explicitly."""
        return _MESH not in self.spec.gateways


def _scope(vs: VirtualService) -> _Scope:
    semantics = vs.metadata.annotations.get(_ROUTE_SEMANTICS) == "gateway"
    return _Scope(vs.spec, not vs.spec.hosts, semantics)


# --- the VirtualService as a whole -----------------------------------------------------------------------


@checks(VirtualService)
def _top_level(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    spec = vs.spec
    s = r.at("spec")
    if not spec.hosts:
        if spec.gateways:
            s.error("gateways", "delegate virtual service must have no gateways specified")
        if spec.tls:
            s.error("tls", "delegate virtual service must have no tls route specified")
        if spec.tcp:
            s.error("tcp", "delegate virtual service must have no tcp route specified")
        s.warn(
            "hosts",
            "no hosts: this is a delegate VirtualService, used only through another VirtualService's "
            "delegate route",
        )
    if not spec.http and not spec.tcp and not spec.tls:
        r.error("spec", "http, tcp or tls must be provided in virtual service")
    validate_export_to(s, "exportTo", ctx.namespace, spec.export_to)


@checks(VirtualService)
def _gateways(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    scope = _scope(vs)
    if scope.spec.gateways:
        validate_gateway_names(
            r, "spec.gateways", scope.spec.gateways, gateway_semantics=scope.gateway_semantics
        )
        _warn_non_mesh_gateways(r, "spec.gateways", scope.spec.gateways)
    if not scope.applies_to_gateway:
        shown = "[" + " ".join(scope.spec.gateways) + "]"
        for i, route in enumerate(scope.spec.http):
            for j, match in enumerate(route.match):
                for field, headers in (("headers", match.headers), ("withoutHeaders", match.without_headers)):
                    for name in headers:
                        if is_jwt_claim_route(name):
                            r.at(f"spec.http[{i}].match[{j}].{field}").error(
                                key_path(name),
                                f"JWT claim based routing (key: {name}) is only supported for gateway, "
                                f"found no gateways: {shown}",
                            )


def _warn_non_mesh_gateways(r: Reporter, path: str, gateways: Sequence[str]) -> None:
    for i, name in enumerate(gateways):
        if name != _MESH:
            r.warn(
                f"{path}[{i}]",
                f'routes bound to gateway "{name}" are not served by libmesh\'s in-process mesh '
                f'(only "{_MESH}" is)',
            )


@checks(VirtualService)
def _hosts(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    scope = _scope(vs)
    hosts = scope.spec.hosts
    all_valid = True
    for i, host in enumerate(hosts):
        if scope.applies_to_gateway:
            problem = _gateway_host_error(host, sni=_has_sni_hosts(scope.spec))
        else:
            problem = wildcard_domain_error(host)
        if problem:
            if not is_ip_address(host):
                r.error(f"spec.hosts[{i}]", problem)
                all_valid = False
        elif not scope.applies_to_gateway and host == "*":
            r.error(
                f"spec.hosts[{i}]",
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
            all_valid = False
    if not all_valid:
        return
    # "*.foo.com" and "*.com" overlap as surely as two equal names do.
    for i, a in enumerate(hosts):
        for j in range(i + 1, len(hosts)):
            if host_matches(a, hosts[j]):
                r.error(f"spec.hosts[{j}]", f"duplicate hosts in virtual service: {a} & {hosts[j]}")


def _has_sni_hosts(spec: VirtualServiceSpec) -> bool:
    return any(m.sni_hosts for t in spec.tls for m in t.match)


def _gateway_host_error(host: str, *, sni: bool) -> str | None:
    """Like :func:`wildcard_domain_error`, but also accepting the ``outbound_.PORT_._.HOST`` SNI names that
    AUTO_PASSTHROUGH gateways see."""
    if sni and host.startswith("outbound_") and len(host) <= 255:
        parts = host.split("_")
        fmt = "outbound_.<PORT>_._.<HOSTNAME>"
        if len(parts) < 4:
            return f"domain name {host} invalid, should follow '{fmt}' format"
        port, name = parts[1].strip("."), parts[3].strip(".")
        if not any(c.isdigit() for c in port):
            return f'domain name "{host}" invalid (label "{port}" invalid). should follow {fmt} format'
        if not any(c.isascii() and c.isalpha() for c in name):
            return f'domain name "{host}" invalid (label "{name}" invalid). should follow {fmt} format'
        return None
    return wildcard_domain_error(host)


# --- HTTP routes -----------------------------------------------------------------------------------------


@checks(VirtualService)
def _http_routes(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    scope = _scope(vs)
    for i, route in enumerate(scope.spec.http):
        _http_route(r.at(f"spec.http[{i}]"), route, scope)


def _http_route(r: Reporter, route: HTTPRoute, scope: _Scope) -> None:
    _route_conflicts(r, route, scope)
    for j, match in enumerate(route.match):
        _http_match(r.at(f"match[{j}]"), match)
    _header_operations(r, "headers", route.headers)
    _authority_rewrite(r, route.rewrite, route.headers)
    _cors_policy(r, "corsPolicy", route.cors_policy)
    _fault(r, "fault", route.fault)
    if route.mirror_percent is not None:
        if route.mirror_percent > 100:
            r.error(
                "mirror_percent",
                f"mirror_percent must have a max value of 100 (it has {route.mirror_percent})",
            )
        r.warn("mirror_percent", 'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead')
    if route.mirror_percentage is not None:
        _mirror_percentage(r, "mirrorPercentage", route.mirror_percentage.value or 0.0)
    _destination(r, "mirror", route.mirror)
    for k, mirror in enumerate(route.mirrors):
        _destination(r, f"mirrors[{k}].destination", mirror.destination)
        if mirror.percentage is not None:
            _mirror_percentage(r, f"mirrors[{k}].percentage", mirror.percentage.value or 0.0)
    _redirect(r, "redirect", route.redirect, route.match)
    _direct_response(r, "directResponse", route.direct_response)
    validate_http_retry(r, "retries", route.retries)
    _rewrite(r, "rewrite", route.rewrite)
    _http_destinations(r, route.route, scope)
    validate_duration(r, "timeout", route.timeout)
    if route.delegate is not None and not route.delegate.name:
        r.warn("delegate.name", "a delegate without a name refers to no VirtualService")


def _route_conflicts(r: Reporter, route: HTTPRoute, scope: _Scope) -> None:
    """Which of route/redirect/directResponse/delegate may be combined, after Istio's route types."""
    name = f" {route.name}" if route.name else ""
    if route.delegate is not None and not scope.delegate:
        # A root route hands the request to the delegate VirtualService; it may not act itself.
        if route.redirect is not None:
            r.error("redirect", f"root HTTP route{name} must not specify redirect")
        if route.route:
            r.error("route", f"root HTTP route{name} must not specify route")
        return
    if scope.delegate and route.delegate is not None:
        r.error("delegate", "delegate HTTP route cannot contain delegate")
    if route.redirect is not None:
        if route.route:
            r.error("redirect", "HTTP route cannot contain both route and redirect")
        if route.fault is not None:
            r.error("fault", "HTTP route cannot contain both fault and redirect")
        if route.rewrite is not None:
            r.error("rewrite", "HTTP route rule cannot contain both rewrite and redirect")
        if route.direct_response is not None:
            r.error("directResponse", "HTTP route rule cannot contain both direct_response and redirect")
    elif route.direct_response is not None:
        if route.route:
            r.error("directResponse", "HTTP route cannot contain both route and direct_response")
        if route.fault is not None:
            r.error("fault", "HTTP route cannot contain both fault and direct_response")
        if route.rewrite is not None:
            r.error("rewrite", "HTTP route rule cannot contain both rewrite and direct_response")
    elif not route.route:
        r.error("", "HTTP route, redirect or direct_response is required")
    if route.mirror is not None and route.mirrors:
        r.error("mirrors", "HTTP route cannot contain both mirror and mirrors")


def _http_match(r: Reporter, match: HTTPMatchRequest) -> None:
    for name, sm in match.headers.items():
        validate_header_name(r.at("headers"), key_path(name), name)
        validate_string_match(r.at("headers"), key_path(name), sm)
    for name, sm in match.without_headers.items():
        validate_header_name(r.at("withoutHeaders"), key_path(name), name)
        # Istio reads the regex "*" in withoutHeaders as "header present", not as an RE2 pattern.
        if sm.regex != "*":
            validate_string_match(r.at("withoutHeaders"), key_path(name), sm)
    # An empty uri prefix is Envoy's "match every path"; scheme/method/authority need a non-empty one.
    validate_string_match(r, "uri", match.uri, allow_empty_prefix=True)
    fields = (
        ("uri", match.uri),
        ("scheme", match.scheme),
        ("method", match.method),
        ("authority", match.authority),
    )
    for field, value in fields:
        if field != "uri":
            validate_string_match(r, field, value)
        if value is not None and _match_value(value) is None:
            r.warn(
                field,
                f"empty {field} match: set one of exact, prefix or regex (as written it matches anything)",
            )
    for name, sm in match.query_params.items():
        validate_string_match(r.at("queryParams"), key_path(name), sm)
    if match.ignore_uri_case and match.uri is not None and match.uri.regex is not None:
        r.warn(
            "ignoreUriCase",
            "ignoreUriCase does not apply to regex uri matches; use (?i) in the regex instead",
        )
    if match.port:  # 0 means "any port"
        validate_port(r, "port", match.port)
    validate_labels(r, "sourceLabels", match.source_labels)
    _match_gateways(r, match.gateways)
    if match.source_namespace and not is_dns1123_label(match.source_namespace):
        r.error("sourceNamespace", f"sourceNamespace match {match.source_namespace} is invalid")


def _match_gateways(r: Reporter, gateways: Sequence[str]) -> None:
    if gateways:
        validate_gateway_names(r, "gateways", gateways)
        _warn_non_mesh_gateways(r, "gateways", gateways)


def _match_value(sm: StringMatch) -> str | None:
    for value in (sm.exact, sm.prefix, sm.regex):
        if value is not None:
            return value
    return None


def _header_operations(r: Reporter, path: str, headers: Headers | None) -> None:
    """Names and values of request/response set/add/remove: request set/add may target the authority (its
    clash with ``rewrite.authority`` is checked separately); nothing may touch other pseudo-headers, and
    responses may not touch ``Host``."""
    if headers is None:
        return
    for side, ops in (("request", headers.request), ("response", headers.response)):
        if ops is None:
            continue
        at = r.at(f"{path}.{side}")
        for op, entries in (("set", ops.set), ("add", ops.add)):
            for name, value in entries.items():
                validate_header_operation_name(
                    at.at(op), key_path(name), name, allow_authority=side == "request"
                )
                validate_header_value(at.at(op), key_path(name), value)
        for k, name in enumerate(ops.remove):
            validate_header_operation_name(at, f"remove[{k}]", name)


def _authority_rewrite(r: Reporter, rewrite: HTTPRewrite | None, headers: Headers | None) -> None:
    """The authority may be rewritten in one place only: ``rewrite.authority`` or one request header."""
    current = rewrite.authority if rewrite is not None and rewrite.authority else ""
    request = headers.request if headers is not None else None
    if request is None:
        return
    for op, entries in (("set", request.set), ("add", request.add)):
        for name, value in entries.items():
            if not is_authority_header(name):
                continue
            if current:
                r.at(f"headers.request.{op}").error(
                    key_path(name),
                    f'authority header cannot be set multiple times: have "{current}", '
                    f'attempting to set "{value}"',
                )
                return
            current = value


def _cors_policy(r: Reporter, path: str, policy: CorsPolicy | None) -> None:
    if policy is None:
        return
    at = r.at(path)
    for k, origin in enumerate(policy.allow_origins):
        value = _match_value(origin)
        if not value:
            at.error(
                f"allowOrigins[{k}]", f"'{value or ''}' is not a valid match type for CORS allow origins"
            )
        elif origin.regex is not None:
            validate_regex(at, f"allowOrigins[{k}].regex", origin.regex)
    for k, method in enumerate(policy.allow_methods):
        if method not in CORS_METHODS:
            at.error(f"allowMethods[{k}]", f'"{method}" is not a supported HTTP method')
    for k, name in enumerate(policy.allow_headers):
        validate_cors_header_name(at, f"allowHeaders[{k}]", name)
    for k, name in enumerate(policy.expose_headers):
        validate_cors_header_name(at, f"exposeHeaders[{k}]", name)
    if policy.max_age is not None:
        validate_duration(at, "maxAge", policy.max_age)
        if policy.max_age.microseconds:
            at.error("maxAge", "max_age duration is accurate only to seconds precision")


def _fault(r: Reporter, path: str, fault: HTTPFaultInjection | None) -> None:
    if fault is None:
        return
    at = r.at(path)
    if fault.abort is None and fault.delay is None:
        r.error(path, "HTTP fault injection must have an abort and/or a delay")
    abort = fault.abort
    if abort is not None:
        validate_percentage(at, "abort.percentage", abort.percentage)
        if abort.grpc_status is not None:
            if abort.grpc_status not in GRPC_STATUS_CODES:
                at.error(
                    "abort.grpcStatus",
                    f'gRPC status "{abort.grpc_status}" is not supported. See '
                    "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported "
                    "codes, for example 'NOT_FOUND'",
                )
        elif abort.http2_error is not None:
            at.error("abort.http2Error", "HTTP/2 abort fault injection not supported yet")
        elif abort.http_status is not None:
            _http_status(at, "abort.httpStatus", abort.http_status)
        else:
            # Istio only warns, but an abort without an error type never aborts anything.
            at.error("abort", "abort configured, but error type not set (httpStatus or grpcStatus)")
    delay = fault.delay
    if delay is not None:
        validate_percentage(at, "delay.percentage", delay.percentage)
        if delay.fixed_delay is not None:
            validate_duration(at, "delay.fixedDelay", delay.fixed_delay)
        elif delay.exponential_delay is not None:
            validate_duration(at, "delay.exponentialDelay", delay.exponential_delay)
            at.error("delay.exponentialDelay", "exponentialDelay not supported yet")
        else:
            # Istio drops such a delay silently; refusing it shows the mistake.
            at.error("delay", "delay configured, but fixedDelay not set")


def _http_status(r: Reporter, path: str, status: int) -> None:
    if not 200 <= status <= 599:
        r.error(path, f"HTTP status {status} is not in range 200-599")


def _mirror_percentage(r: Reporter, path: str, value: float) -> None:
    if value > 100:
        r.error(path, f"mirror percentage must have a max value of 100 (it has {value:g})")
    if value < 0:
        r.error(path, f"mirror percentage must have a min value of 0 (it has {value:g})")


def _destination(r: Reporter, path: str, dest: Destination | None) -> None:
    if dest is None or dest.host is None:
        return  # a missing host is reported by the decoder ("Required value")
    if dest.host == "*":
        r.error(f"{path}.host", "invalid destination host *")
    elif problem := wildcard_domain_error(dest.host):
        r.error(f"{path}.host", problem)
    if dest.subset:
        validate_subset_name(r, f"{path}.subset", dest.subset)
    if dest.port is not None:
        validate_port(r, f"{path}.port.number", dest.port.number or 0)


def _redirect(
    r: Reporter, path: str, redirect: HTTPRedirect | None, matches: Sequence[HTTPMatchRequest]
) -> None:
    if redirect is None:
        return
    at = r.at(path)
    if redirect.uri and redirect.prefix_rewrite:
        at.error("prefixRewrite", "redirect may only specify one of uri or prefix_rewrite")
    if redirect.prefix_rewrite and any(m.uri is not None and m.uri.prefix is None for m in matches):
        at.error("prefixRewrite", "redirect prefix_rewrite requires all URI matches to use prefix match type")
    has_port = redirect.port is not None or redirect.derive_port is not None
    if not (redirect.uri or redirect.prefix_rewrite or redirect.authority or has_port or redirect.scheme):
        r.error(path, "redirect must specify URI, authority, scheme, or port")
    code = redirect.redirect_code
    if code:
        if not 300 <= code <= 399:
            at.error("redirectCode", f"{code} is not a valid redirect code, must be 3xx")
        elif code not in _REDIRECT_CODES:
            at.warn(
                "redirectCode",
                f"redirect code {code} is not supported by Istio's proxies, which drop the route; "
                "use 301, 302, 303, 307 or 308",
            )
    if redirect.scheme and redirect.scheme not in ("http", "https"):
        at.error("scheme", 'invalid redirect scheme, must be "http" or "https"')
    if redirect.port:
        validate_port(at, "port", redirect.port)


def _direct_response(r: Reporter, path: str, response: HTTPDirectResponse | None) -> None:
    if response is None:
        return
    body = response.body
    if body is not None:
        size = len(body.string.encode()) if body.string is not None else len(body.bytes_ or b"")
        if size > _MB:
            r.error(
                f"{path}.body",
                "large direct_responses may impact control plane performance, must be less than 1MB",
            )
        elif size > 100 * _KB:
            r.warn(f"{path}.body", "large direct_responses may impact control plane performance")
    if response.status is not None:
        _http_status(r, f"{path}.status", response.status)


def _rewrite(r: Reporter, path: str, rewrite: HTTPRewrite | None) -> None:
    if rewrite is None:
        return
    at = r.at(path)
    regex_rewrite = rewrite.uri_regex_rewrite
    if rewrite.uri and regex_rewrite is not None:
        r.error(path, "rewrite may only contain one of URI or UriRegexRewrite")
    if not rewrite.uri and regex_rewrite is None and not rewrite.authority:
        r.error(path, "rewrite must specify at least one of URI, UriRegexRewrite, or authority")
    if regex_rewrite is not None:
        if not regex_rewrite.match or not regex_rewrite.rewrite:
            at.error(
                "uriRegexRewrite", "UriRegexRewrite requires both Rewrite and Match fields to be specified"
            )
        if regex_rewrite.match:
            validate_regex(at, "uriRegexRewrite.match", regex_rewrite.match)


def _http_destinations(r: Reporter, routes: Sequence[HTTPRouteDestination], scope: _Scope) -> None:
    for k, dest in enumerate(routes):
        _header_operations(r, f"route[{k}].headers", dest.headers)
    _weighted_destinations(r, "route", routes, scope)


def _weighted_destinations(
    r: Reporter, path: str, routes: Sequence[HTTPRouteDestination | RouteDestination], scope: _Scope
) -> None:
    """Destinations and their relative weights: none negative, and not all zero when there are several (one
    destination alone may leave its weight out)."""
    total = 0
    for k, dest in enumerate(routes):
        if not scope.gateway_semantics:
            _destination(r, f"{path}[{k}].destination", dest.destination)
        weight = dest.weight or 0
        if weight < 0:
            r.error(f"{path}[{k}].weight", f"weight must not be negative (it is {weight})")
        total += weight
    if len(routes) > 1 and total == 0:
        r.error(path, "total destination weight = 0: give at least one destination a positive weight")


# --- TLS and TCP routes ----------------------------------------------------------------------------------


@checks(VirtualService)
def _tls_routes(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    scope = _scope(vs)
    for i, route in enumerate(scope.spec.tls):
        _tls_route(r.at(f"spec.tls[{i}]"), route, scope)


def _tls_route(r: Reporter, route: TLSRoute, scope: _Scope) -> None:
    if not route.match:
        r.error("match", "TLS route must have at least one match condition")
    for j, match in enumerate(route.match):
        _tls_match(r.at(f"match[{j}]"), match, scope)
    if not route.route:
        r.error("route", "TLS route is required")
    _weighted_destinations(r, "route", route.route, scope)


def _tls_match(r: Reporter, match: TLSMatchAttributes, scope: _Scope) -> None:
    if not match.sni_hosts:
        r.error("sniHosts", "TLS match must have at least one SNI host")
    for k, sni in enumerate(match.sni_hosts):
        _sni_host(r, f"sniHosts[{k}]", sni, scope)
    _l4_match(r, match)


def _sni_host(r: Reporter, path: str, sni: str, scope: _Scope) -> None:
    problem = _gateway_host_error(sni, sni=True) if scope.sni_gateway else wildcard_domain_error(sni)
    if problem:
        if is_ip_address(sni):
            r.warn(
                path,
                f'using an IP address ("{sni}") goes against SNI spec and most clients do not support this',
            )
        else:
            r.error(path, problem)
        return
    if not any(host_subset_of(sni, host) for host in scope.spec.hosts):
        hosts = ", ".join(scope.spec.hosts)
        r.error(
            path,
            f'SNI host "{sni}" is not a compatible subset of any of the virtual service hosts: [{hosts}]',
        )


def _l4_match(r: Reporter, match: TLSMatchAttributes | L4MatchAttributes) -> None:
    for k, subnet in enumerate(match.destination_subnets):
        validate_ip_subnet(r, f"destinationSubnets[{k}]", subnet)
    if match.port:  # 0 means "any port"
        validate_port(r, "port", match.port)
    validate_labels(r, "sourceLabels", match.source_labels)
    _match_gateways(r, match.gateways)
    if match.source_namespace and not is_dns1123_label(match.source_namespace):
        r.error("sourceNamespace", f"sourceNamespace match {match.source_namespace} is invalid")


@checks(VirtualService)
def _tcp_routes(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    scope = _scope(vs)
    for i, route in enumerate(scope.spec.tcp):
        _tcp_route(r.at(f"spec.tcp[{i}]"), route, scope)


def _tcp_route(r: Reporter, route: TCPRoute, scope: _Scope) -> None:
    for j, match in enumerate(route.match):
        at = r.at(f"match[{j}]")
        _l4_match(at, match)
        validate_ip_subnet(at, "sourceSubnet", match.source_subnet)
    if not route.route:
        r.error("route", "TCP route is required")
    _weighted_destinations(r, "route", route.route, scope)


# --- unreachable rules and ineffective matches (warnings, as istioctl gives them) ------------------------


def _match_key(match: Any) -> str:
    """A canonical form of a match for equality, ignoring its ``name``."""
    data = to_dict(match)
    data.pop("name", None)
    return json.dumps(data, sort_keys=True)


def _route_label(route: Any, index: int) -> str:
    name = getattr(route, "name", None)
    return f'"{name}"' if name else f"#{index}"


def _match_label(match: Any, index: int) -> str:
    name = getattr(match, "name", None)
    return f'"{name}"' if name else f"#{index}"


def _analyze_rules(
    r: Reporter,
    field: str,
    routes: Sequence[Any],
    on_new_match: Callable[[int, int, Any], None] | None = None,
) -> None:
    """Warn about rules that can never be chosen: any rule after a catch-all (match-less) rule, and rules or
    matches that repeat an earlier match exactly."""
    seen: dict[str, int] = {}
    catch_all = -1
    for i, route in enumerate(routes):
        label = _route_label(route, i)
        if not route.match:
            if catch_all >= 0:
                r.warn(
                    f"{field}[{i}]",
                    f"virtualService rule {label} not used (only the last rule can have no matches)",
                )
            catch_all = i
            continue
        if catch_all >= 0:
            r.warn(
                f"{field}[{i}]",
                f"virtualService rule {label} not used (route without matches defined before)",
            )
            continue
        duplicates = 0
        for j, match in enumerate(route.match):
            key = _match_key(match)
            if key in seen:
                first = seen[key]
                r.warn(
                    f"{field}[{i}].match[{j}]",
                    f"virtualService rule {label} match {_match_label(match, j)} is not used "
                    f"(duplicate/overlapping match in rule {_route_label(routes[first], first)})",
                )
                duplicates += 1
                continue
            seen[key] = i
            if on_new_match is not None:
                on_new_match(i, j, match)
        if duplicates == len(route.match):
            r.warn(f"{field}[{i}]", f"virtualService rule {label} not used (all matches used by prior rules)")


@dataclass(frozen=True, slots=True)
class _PrefixMatch:
    """The parts of a prefix-uri match that Istio compares to find an earlier match covering a later one."""

    route: int
    route_label: str
    match: int
    match_label: str
    prefix: str
    port: int
    method: str
    authority: str
    headers: Mapping[str, str]
    query_params: Mapping[str, str]
    without_headers: Mapping[str, str]


def _exact_or_prefix(sm: StringMatch | None) -> str:
    if sm is None:
        return ""
    if sm.exact:
        return "exact:" + sm.exact
    if sm.prefix:
        return "prefix:" + sm.prefix
    return ""


def _prefix_match(route: HTTPRoute, i: int, match: HTTPMatchRequest, j: int) -> _PrefixMatch | None:
    if match.uri is None or not match.uri.prefix:
        return None
    return _PrefixMatch(
        route=i,
        route_label=_route_label(route, i),
        match=j,
        match_label=_match_label(match, j),
        prefix=match.uri.prefix,
        port=match.port or 0,
        method=_exact_or_prefix(match.method) or "exact:GET",  # Istio's analysis assumes GET when unset
        authority=_exact_or_prefix(match.authority),
        headers={k: _exact_or_prefix(v) for k, v in match.headers.items()},
        query_params={k: _exact_or_prefix(v) for k, v in match.query_params.items()},
        without_headers={k: _exact_or_prefix(v) for k, v in match.without_headers.items()},
    )


def _same_or_narrower(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    if len(a) != len(b):
        return False
    return all(k in b and (v == b[k] or v.startswith(b[k])) for k, v in a.items())


def _covers(a: _PrefixMatch, b: _PrefixMatch) -> bool:
    """True when earlier match ``a`` takes every request later match ``b`` would, by Istio's heuristic."""
    if not b.prefix.startswith(a.prefix) or a.port != b.port:
        return False
    if a.method != b.method and not a.method.startswith(b.method):
        return False
    if a.authority != b.authority and not a.authority.startswith(b.authority):
        return False
    return (
        _same_or_narrower(a.headers, b.headers)
        and _same_or_narrower(a.query_params, b.query_params)
        and _same_or_narrower(a.without_headers, b.without_headers)
    )


@checks(VirtualService)
def _reachability(vs: VirtualService, r: Reporter, ctx: Context) -> None:
    spec = vs.spec
    prefixes: list[_PrefixMatch] = []

    def collect(i: int, j: int, match: HTTPMatchRequest) -> None:
        found = _prefix_match(spec.http[i], i, match, j)
        if found is not None:
            prefixes.append(found)

    _analyze_rules(r, "spec.http", spec.http, collect)
    _analyze_rules(r, "spec.tcp", spec.tcp)
    _analyze_rules(r, "spec.tls", spec.tls)
    for x, a in enumerate(prefixes):
        for b in prefixes[x + 1 :]:
            if b.prefix != a.prefix and _covers(a, b):
                r.warn(
                    f"spec.http[{b.route}].match[{b.match}]",
                    f"virtualService rule {b.route_label} match {b.match_label} of prefix {b.prefix} is not "
                    f"used (duplicate/overlapping match in rule {a.match_label} of prefix {a.prefix} on "
                    f"{a.route_label})",
                )
