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
        """The rewritten path (the query string is kept)."""
        q = path.find("?")
        base, query = (path, "") if q < 0 else (path[:q], path[q:])
        if self.regex is not None and self.regex_substitution is not None:
            return str(self.regex.sub(self.regex_substitution, base)) + query
        if self.uri is None:
            return path
        prefix = self.matched_prefix
        if prefix is None:
            return self.uri + query
        return self.uri + base[len(prefix) :] + query


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

    def location(self, scheme: str, host: str, port: int, path: str) -> str:
        """The ``Location`` header for a request with the given scheme, host (no port), port and path."""
        out_scheme = self.scheme or scheme
        out_port: int | None
        if self.port is not None:
            out_port = self.port
        elif self.derive_port:
            out_port = port
        elif self.authority is not None or out_scheme != scheme:
            out_port = None  # a new host or scheme does not inherit the request's port
        else:
            out_port = port
        if (out_port == 80 and out_scheme == "http") or (out_port == 443 and out_scheme == "https"):
            out_port = None
        q = path.find("?")
        base, query = (path, "") if q < 0 else (path[:q], path[q:])
        if self.prefix_rewrite is not None:
            cut = len(self.matched_prefix) if self.matched_prefix is not None else len(base)
            new_path = self.prefix_rewrite + base[cut:] + query
        elif self.uri is not None:
            new_path = self.uri
        else:
            new_path = path
        out_host = self.authority or host
        host_part = f"{out_host}:{out_port}" if out_port is not None else out_host
        return f"{out_scheme}://{host_part}{new_path}"


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
