"""What the snapshot decides for a call: immutable, built at compile time, shared by every call it covers.

A :class:`RouteDecision` is compiled once per (VirtualService route, match) pair, so ``Snapshot.route`` only
matches and returns a ready object. Anything random (which weighted destination, whether a fault fires) is
decided by the caller with an injected random number, via :meth:`RouteDecision.pick` and
:meth:`FaultPolicy.abort_fires`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..config.model.destination_rule import TrafficPolicy

__all__ = [
    "DEFAULT_RETRY_ON",
    "Action",
    "DirectResponse",
    "FaultPolicy",
    "HeaderOps",
    "Mirror",
    "Redirect",
    "RetryPolicy",
    "Rewrite",
    "RouteDecision",
    "WeightedDestination",
]

#: Istio's retryOn when no retry policy is given (pilot's default outbound route).
DEFAULT_RETRY_ON: tuple[str, ...] = (
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
)


class Action(StrEnum):
    """What a matched route does."""

    ROUTE = "route"
    REDIRECT = "redirect"
    DIRECT_RESPONSE = "direct_response"
    NO_ROUTE = "no_route"


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header operations: ``set`` overwrites, ``add`` appends, ``remove`` deletes (names lower-case)."""

    set: Mapping[str, str] = field(default_factory=dict)
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A route's retry policy, after Istio's defaults are applied.

    ``attempts`` is the number of retries (0 disables retrying); ``retry_on`` holds Envoy's conditions and
    ``retriable_status_codes`` the numeric codes from ``retryOn``.
    """

    attempts: int
    retry_on: tuple[str, ...]
    retriable_status_codes: frozenset[int] = frozenset()
    per_try_timeout: float | None = None
    backoff: float | None = None
    ignore_previous_hosts: bool = True


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    """Client-side fault injection: a fixed delay and/or an abort, each with a percentage (0-100)."""

    delay: float | None = None
    delay_percent: float = 0.0
    abort_http_status: int | None = None
    abort_grpc_status: int | None = None
    abort_percent: float = 0.0

    def delay_fires(self, rand: float) -> bool:
        """Whether the delay applies, given a uniform random number in [0, 1)."""
        return self.delay is not None and rand * 100.0 < self.delay_percent

    def abort_fires(self, rand: float) -> bool:
        """Whether the abort applies, given a uniform random number in [0, 1)."""
        has_abort = self.abort_http_status is not None or self.abort_grpc_status is not None
        return has_abort and rand * 100.0 < self.abort_percent


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Path and authority rewrite applied before forwarding (Envoy ``prefix_rewrite``/``regex_rewrite``).

    ``matched_prefix`` is the part of the path the route's match consumed: the prefix of a prefix match,
    or ``None`` when the whole path (exact or regex match) is replaced.
    """

    uri: str | None = None
    authority: str | None = None
    regex: Any = None  # a compiled RE2 pattern, for uriRegexRewrite
    regex_substitution: str | None = None
    matched_prefix: str | None = "/"
    ignore_case: bool = False

    def apply_path(self, path: str) -> str:
        """The rewritten path (the query string is kept).

        ``uriRegexRewrite`` is Envoy's ``regex_rewrite``: every match in the path (without the query) is
        replaced, with RE2's substitution syntax (``\\0`` is the whole match, ``\\1`` a group); an empty
        result leaves the path unchanged, as Envoy does.
        """
        q = path.find("?")
        base, query = (path, "") if q < 0 else (path[:q], path[q:])
        if self.regex is not None and self.regex_substitution is not None:
            new_base = str(self.regex.sub(_re2_template(self.regex_substitution), base))
            return new_base + query if new_base else path
        if self.uri is None:
            return path
        prefix = self.matched_prefix
        if prefix is None:
            return self.uri + query
        return self.uri + base[len(prefix) :] + query


def _re2_template(substitution: str) -> str:
    """An RE2 rewrite string as a Python ``sub`` template: only ``\\N`` (a group, ``\\0`` the whole match)
    and ``\\\\`` are special in RE2; every other character, backslashes included, is literal."""
    if "\\" not in substitution:
        return substitution
    out: list[str] = []
    i, n = 0, len(substitution)
    while i < n:
        ch = substitution[i]
        nxt = substitution[i + 1] if i + 1 < n else ""
        if ch == "\\" and nxt != "" and "0" <= nxt <= "9":
            out.append(f"\\g<{nxt}>")
            i += 2
        elif ch == "\\":
            out.append("\\\\")
            i += 2 if nxt == "\\" else 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Redirect:
    """An HTTP redirect answered by the mesh itself (``HTTPRedirect``)."""

    uri: str | None = None
    authority: str | None = None
    status: int = 301
    scheme: str | None = None
    port: int | None = None
    derive_port: bool = False
    prefix_rewrite: str | None = None
    matched_prefix: str | None = "/"

    def location(self, scheme: str, host: str, port: int, path: str, authority: str | None = None) -> str:
        """The ``Location`` header for a request with the given scheme, host (no port), port and path.

        ``authority`` is the request's Host header as sent; without it the host is taken to have been sent
        with its port unless the port is the scheme's default. This follows Envoy's redirect (``newUri``)
        after pilot's translation (``ApplyRedirect``):

        - the scheme is ``scheme`` if configured, else the request's;
        - a configured ``port`` (or ``derivePort: FROM_REQUEST_PORT``, the port called) replaces the request's
          port, except that pilot drops 80 when the redirect's scheme (default ``http``) is http and 443 when
          it is https, and then the Host header is kept as sent;
        - a new ``authority`` replaces the whole Host header; otherwise the request's port is also dropped
          when the scheme changes and the port was the old scheme's default;
        - ``uri`` replaces the path and keeps the request's query string unless it has its own;
          ``prefixRewrite`` replaces the matched prefix (the whole path for exact and regex matches).
        """
        new_port = self.port if self.port is not None else (port if self.derive_port else None)
        if new_port is not None:
            configured_scheme = self.scheme or "http"  # a sidecar never terminates TLS
            if (new_port == 80 and configured_scheme == "http") or (
                new_port == 443 and configured_scheme == "https"
            ):
                new_port = None
        out_scheme = self.scheme or scheme
        port_part = f":{new_port}" if new_port else ""
        if self.authority is not None:
            out_host = self.authority
        else:
            sent = authority if authority is not None else _host_header(host, port, scheme)
            out_host = _request_host(sent, out_scheme, scheme, bool(port_part))
        q = path.find("?")
        base, query = (path, "") if q < 0 else (path[:q], path[q:])
        if self.prefix_rewrite is not None:
            cut = len(self.matched_prefix) if self.matched_prefix is not None else len(base)
            new_path = self.prefix_rewrite + base[cut:] + query
        elif self.uri is not None:
            new_path = self.uri if "?" in self.uri else self.uri + query
        else:
            new_path = path
        if not new_path.startswith("/"):
            new_path = "/" + new_path
        return f"{out_scheme}://{out_host}{port_part}{new_path}"


_SCHEME_PORTS = {"http": 80, "https": 443}


def _host_header(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return shown if _SCHEME_PORTS.get(scheme) == port else f"{shown}:{port}"


def _request_host(sent: str, new_scheme: str, old_scheme: str, new_port: bool) -> str:
    """The request's Host header for a redirect (Envoy's ``processRequestHost``): its port goes when the
    redirect sets one, or when the scheme changes and the port was the old scheme's default."""
    if sent.startswith("["):
        end = sent.rfind("]:")
        cut = end + 1 if end >= 0 else -1
    else:
        cut = sent.rfind(":")
    if cut < 0:
        return sent
    remove = new_port or (new_scheme != old_scheme and sent[cut:] == f":{_SCHEME_PORTS.get(old_scheme, 0)}")
    return sent[:cut] if remove else sent


@dataclass(frozen=True, slots=True)
class DirectResponse:
    """A fixed response answered by the mesh itself (``HTTPDirectResponse``)."""

    status: int
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    """A shadow copy of the request to ``host``/``subset``/``port`` for ``percent`` % of requests."""

    host: str
    subset: str | None = None
    port: int | None = None
    percent: float = 100.0
    policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class WeightedDestination:
    """One destination of a route with its share (``weight`` in percent of the route's traffic).

    ``policy`` is the DestinationRule traffic policy that applies to this host/subset/port, merged as Istio
    merges it (subset over top level, port-level settings wholesale). ``labels`` selects the subset's endpoints.
    """

    host: str
    subset: str | None
    port: int | None
    weight: float
    policy: TrafficPolicy | None = None
    labels: Mapping[str, str] | None = None
    destination_rule: str | None = None
    headers_request: HeaderOps = field(default_factory=HeaderOps)
    headers_response: HeaderOps = field(default_factory=HeaderOps)
    authority: str | None = None
    subset_missing: bool = False


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Everything the mesh does with one call, as decided by the routing table.

    ``virtual_service`` is ``"ns/name"`` (``None`` for the default route), ``route_index`` indexes
    ``spec.http`` and ``match_index`` the route's ``match`` list (``None`` when it has none).
    """

    host: str
    action: Action
    virtual_service: str | None = None
    route_index: int | None = None
    match_index: int | None = None
    route_name: str | None = None
    destinations: tuple[WeightedDestination, ...] = ()
    timeout: float | None = None
    retries: RetryPolicy | None = None
    fault: FaultPolicy | None = None
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    cumulative: tuple[float, ...] = ()

    def pick(self, rand: float) -> WeightedDestination:
        """The destination for a uniform random number ``rand`` in [0, 1), by weight."""
        dests = self.destinations
        if len(dests) == 1:
            return dests[0]
        i = bisect_right(self.cumulative, rand * 100.0)
        return dests[min(i, len(dests) - 1)]
