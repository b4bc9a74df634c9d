"""The compiled routing table: an immutable snapshot of the config, built once, queried per call.

``Snapshot.compile`` does all the work that does not depend on the request (host resolution, VirtualService
precedence and visibility, delegate merging, route filtering by the local workload, DestinationRule selection
and merging, retry defaults), so that ``Snapshot.route`` only resolves the host and runs the route matchers
in order. The rules are pilot's for a sidecar; the functions they come from are named where they apply.
``route`` is pure: no I/O, no clock, no randomness; a new config means a new snapshot swapped in by reference.

Example::

    snap = Snapshot.compile(load_paths(["mesh/"]), workload=Workload(namespace="default"))
    decision = snap.route(Call(authority="reviews:9080", path="/", headers={"end-user": "jason"}))
    decision.pick(random.random()).subset   # 'v2'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import re2

from ..config.dump import resource_to_dict
from ..config.loader import ConfigSet
from ..config.model.destination_rule import DestinationRuleSpec, PortTrafficPolicy, TrafficPolicy
from ..config.model.virtual_service import (
    Destination,
    Headers,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    StringMatch,
)
from ..config.resources import (
    DestinationRule,
    MeshConfig,
    MeshConfigSpec,
    OutboundMode,
    Resource,
    ServiceEntry,
    VirtualService,
)
from ..config.validation.service_entry import HTTP_PROTOCOLS, parse_protocol
from ..workload import Workload
from .call import Call
from .decision import (
    DEFAULT_RETRY_ON,
    Action,
    DirectResponse,
    FaultPolicy,
    HeaderOps,
    Mirror,
    Redirect,
    RetryPolicy,
    Rewrite,
    RouteDecision,
    WeightedDestination,
)
from .hosts import call_host_candidates, host_matches, is_wildcard, resolve_config_host
from .paths import normalize_path
from .regex import compile_full_match

__all__ = ["GRPC_STATUS", "ROOT_NAMESPACE", "Snapshot"]

#: gRPC status names (as ``grpcStatus`` takes them) and their codes.
GRPC_STATUS: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

#: Istio's default ``rootNamespace``: DestinationRules it exports apply to every namespace, last.
ROOT_NAMESPACE = "istio-system"

Predicate = Callable[[Call], bool]
_MESH = "mesh"
_DEFAULT_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    port: int | None
    match: Predicate | None
    decision: RouteDecision
    # A case-sensitive uri prefix or exact match, tested inline by ``route`` rather than through ``match``.
    uri_prefix: str | None = None
    uri_exact: str | None = None
    # The DestinationRule policy of a destination without a port depends on the port called.
    by_port: bool = False


# (port, uri prefix, uri exact, rest of the match, decision): unpacked in ``route``'s loop header.
_RouteRow = tuple[int | None, str | None, str | None, Predicate | None, RouteDecision]


@dataclass(frozen=True, slots=True)
class _VirtualHost:
    virtual_service: str
    routes: tuple[_CompiledRoute, ...]
    no_route: RouteDecision
    table: tuple[_RouteRow, ...] = ()
    tests_path: bool = False
    # The ports the VirtualService has routes on (``None``: every port). pilot builds a VirtualService into
    # a listener port's route table only if some route is left there.
    ports: frozenset[int] | None = None
    # No port restriction and no port-dependent decision: ``route`` may run the table inline.
    fast: bool = True


@dataclass(frozen=True, slots=True)
class _Route:
    """One HTTP route of a VirtualService as pilot builds it: ``index`` is the root's ``spec.http`` index and
    ``ns`` the namespace its short names resolve in (the delegate's, for delegated routes)."""

    http: HTTPRoute
    ns: str
    index: int


@dataclass(slots=True)
class _DestinationRuleEntry:
    namespace: str
    host: str
    spec: DestinationRuleSpec
    selector: Mapping[str, str] | None
    export_to: frozenset[str]
    names: list[str] = field(default_factory=list)


class _RuleIndex:
    """DestinationRules of one namespace by host, as pilot's ``consolidatedDestRules``."""

    __slots__ = ("by_host", "wildcards")

    def __init__(self) -> None:
        self.by_host: dict[str, list[_DestinationRuleEntry]] = {}
        self.wildcards: list[str] = []

    def most_specific(self, host: str) -> list[_DestinationRuleEntry] | None:
        """pilot's ``MostSpecificHostMatch``: the exact host, else the longest wildcard covering it."""
        entries = self.by_host.get(host)
        if entries is not None:
            return entries
        for pattern in self.wildcards:
            if host_matches(pattern, host):
                return self.by_host[pattern]
        return None


class Snapshot:
    """An immutable, compiled view of one configuration for one local workload."""

    __slots__ = (
        "_default_cache",
        "_default_retry",
        "_dr_exported",
        "_dr_for_cache",
        "_dr_local",
        "_dr_root_local",
        "_endpoint_cache",
        "_exact",
        "_exact_all",
        "_exact_named",
        "_known_hosts",
        "_known_namespaces",
        "_policy_cache",
        "_registry_cache",
        "_registry_exact",
        "_registry_http_ports",
        "_registry_wild",
        "_resolve_cache",
        "_root_namespace",
        "_specialized",
        "_version",
        "_wildcards",
        "config",
        "domain",
        "mesh",
        "path_normalization",
        "workload",
    )

    def __init__(
        self,
        config: ConfigSet,
        workload: Workload,
        mesh: MeshConfigSpec,
        domain: str,
    ) -> None:
        self.config = config
        self.workload = workload
        self.mesh = mesh
        self.domain = domain
        # Per host, the VirtualServices that claim it in precedence order; ``_exact`` holds the first.
        self._exact: dict[str, _VirtualHost] = {}
        self._exact_all: dict[str, list[_VirtualHost]] = {}
        self._exact_named: set[str] = set()  # hosts some applicable VirtualService names exactly
        self._wildcards: list[tuple[str, _VirtualHost]] = []
        self._known_hosts: set[str] = set()
        self._known_namespaces: set[str] = set()
        # The service registry libmesh can see: Kubernetes names (``*.svc.<domain>``) plus ServiceEntry hosts
        # visible to the workload, each with the ServiceEntry's namespace.
        self._registry_exact: dict[str, str] = {}
        # Per ServiceEntry host, the ports pilot serves HTTP on (HTTP protocols, and unknown ones it sniffs).
        self._registry_http_ports: dict[str, set[int]] = {}
        self._registry_wild: list[tuple[str, str]] = []
        self._registry_cache: dict[str, bool] = {}
        # DestinationRules indexed as pilot's setDestinationRules does: per namespace the rules usable there,
        # per namespace the rules exported from it, and the root namespace's private rules.
        self._root_namespace: str = getattr(mesh, "root_namespace", None) or ROOT_NAMESPACE
        self._dr_local: dict[str, _RuleIndex] = {}
        self._dr_exported: dict[str, _RuleIndex] = {}
        self._dr_root_local = _RuleIndex()
        self._dr_for_cache: dict[str, _DestinationRuleEntry | None] = {}
        settings = getattr(mesh, "path_normalization", None)
        mode = settings.normalization if settings is not None else None
        #: MeshConfig ``pathNormalization`` as :func:`~libmesh.routing.paths.normalize_path` takes it.
        self.path_normalization: str = "BASE" if mode is None or mode == "DEFAULT" else str(mode)
        self._default_retry = _retry_policy(mesh.default_http_retry_policy)
        self._default_cache: dict[tuple[str, int], RouteDecision] = {}
        self._resolve_cache: dict[str, str] = {}
        self._endpoint_cache: dict[tuple[str, str, int | None], tuple[str, int]] = {}
        self._policy_cache: dict[
            tuple[str, str | None, int | None], tuple[TrafficPolicy | None, str | None]
        ] = {}
        self._specialized: dict[tuple[int, str, int], RouteDecision] = {}
        self._version: str | None = None

    @property
    def version(self) -> str:
        """A short hash of the configuration this snapshot was compiled from (stable across processes)."""
        if self._version is None:
            self._version = _config_version(self.config)
        return self._version

    # --- compiling ---------------------------------------------------------------------------------------

    @classmethod
    def compile(
        cls,
        config: ConfigSet,
        *,
        workload: Workload | None = None,
        mesh: MeshConfigSpec | None = None,
        namespace: str | None = None,
    ) -> Snapshot:
        """Compile a validated config for ``workload`` (default: a workload in the default namespace).

        ``mesh`` overrides any ``MeshConfig`` resource in ``config``; ``namespace`` is where resources that
        name none live (default: MeshConfig's ``defaultNamespace``, else ``"default"``).
        """
        if mesh is None:
            meshes = config.of_kind(MeshConfig)
            mesh = meshes[0].spec if meshes else MeshConfigSpec()
        default_ns = namespace or mesh.default_namespace or "default"
        wl = workload or Workload(namespace=default_ns)
        snap = cls(config, wl, mesh, mesh.cluster_domain_suffix or "cluster.local")
        snap._build(default_ns)
        return snap

    def _build(self, default_ns: str) -> None:
        ns_of: Callable[[Resource], str] = lambda r: r.namespace or default_ns  # noqa: E731
        client = self.workload.namespace
        self._known_namespaces.update({client, self._root_namespace})
        self._known_namespaces.update(ns_of(r) for r in self.config.resources)
        for se in sorted(self.config.of_kind(ServiceEntry), key=_creation_order):
            ns = ns_of(se)
            if not _visible(se.spec.export_to, ns, client):
                continue
            for h in se.spec.hosts:
                fqdn = resolve_config_host(h, ns, self.domain)
                if is_wildcard(fqdn):
                    self._registry_wild.append((fqdn, ns))
                else:
                    self._registry_exact.setdefault(fqdn, ns)
                    self._known_hosts.add(fqdn)
                    self._registry_http_ports.setdefault(fqdn, set()).update(
                        p.number
                        for p in se.spec.ports
                        if p.number is not None and _http_or_sniffed(p.protocol)
                    )
        self._registry_wild.sort(key=lambda item: (-len(item[0]), item[0]))
        for dr in sorted(self.config.of_kind(DestinationRule), key=_destination_rule_order):
            self._add_destination_rule(dr, ns_of(dr))
        rule_hosts: set[str] = set()
        for index in (*self._dr_local.values(), *self._dr_exported.values(), self._dr_root_local):
            index.wildcards = sorted((h for h in index.by_host if is_wildcard(h)), key=lambda h: (-len(h), h))
            rule_hosts.update(index.by_host)
        self._build_virtual_services(ns_of)
        # Namespaces the config mentions: a caller's "name.namespace" there means a Kubernetes service.
        for host in (*rule_hosts, *self._known_hosts, *(p for p, _ in self._wildcards)):
            host_ns = _service_namespace(host, self.domain)
            if host_ns is not None:
                self._known_namespaces.add(host_ns)

    def _build_virtual_services(self, ns_of: Callable[[Resource], str]) -> None:
        client = self.workload.namespace
        delegates: dict[tuple[str, str], VirtualService] = {}
        roots: list[tuple[int, tuple[float, str, str], VirtualService, str]] = []
        for vs in self.config.of_kind(VirtualService):
            ns = ns_of(vs)
            if not vs.spec.hosts:
                delegates[(ns, vs.name)] = vs  # only reachable through another VirtualService's delegate
                continue
            group = _virtual_service_group(vs, ns, client)
            if group is not None:
                roots.append((group, _creation_order(vs), vs, ns))
        # pilot's SelectVirtualServices: the client namespace's private VirtualServices, then those exported
        # to it by name, then public ones, each in creation order. The first to build a host wins it.
        roots.sort(key=lambda item: (item[0], item[1]))
        for _, _, vs, ns in roots:
            name = f"{ns}/{vs.name}"
            routes = self._http_routes(vs, ns, delegates)
            compiled: list[_CompiledRoute] | None = None
            first_host = ""
            outside = self._non_registry_ports(vs, ns)
            for h in vs.spec.hosts:
                fqdn = resolve_config_host(h, ns, self.domain)
                if compiled is None:
                    compiled, first_host = self._compile_routes(routes, name, fqdn), fqdn
                if not compiled:
                    # No route is left for this workload: pilot builds nothing for this VirtualService, yet
                    # it still holds the services it names against wildcard VirtualServices.
                    if is_wildcard(fqdn):
                        no_route = RouteDecision(host=fqdn, action=Action.NO_ROUTE, virtual_service=name)
                        self._wildcards.append((fqdn, _VirtualHost(name, (), no_route, ports=frozenset())))
                    else:
                        self._exact_named.add(fqdn)
                    continue
                vhost = _virtual_host(name, compiled, fqdn, first_host)
                if is_wildcard(fqdn):
                    self._wildcards.append((fqdn, vhost))
                    continue
                self._exact_named.add(fqdn)
                if not self._in_registry(fqdn) and outside is not None:
                    restricted = _restrict_ports(vhost, outside)
                    if restricted is None:
                        continue
                    vhost = restricted
                claims = self._exact_all.setdefault(fqdn, [])
                if not claims or claims[-1].virtual_service != vhost.virtual_service:
                    claims.append(vhost)
                self._known_hosts.add(fqdn)
        for fqdn, claims in self._exact_all.items():
            self._exact[fqdn] = claims[0]
        # Longest wildcard suffix first: the most specific wins (ties keep precedence order).
        self._wildcards.sort(key=lambda item: -len(item[0]))

    def _non_registry_ports(self, vs: VirtualService, ns: str) -> frozenset[int] | None:
        """The ports a host of ``vs`` that matches no service is routed on (``None``: every port). pilot puts
        such a host in the route table of port 80, and in those of the HTTP ports of the services ``vs``
        names (buildSidecarVirtualHostsForVirtualService): those named by their exact host (a name that only
        a wildcard ServiceEntry host covers is not one). A Kubernetes service's ports are not known here: one
        named in ``vs`` lets its other hosts be routed on every port."""
        ports = {80}
        for h in vs.spec.hosts:
            fqdn = resolve_config_host(h, ns, self.domain)
            if is_wildcard(fqdn):
                continue
            known = self._registry_http_ports.get(fqdn)
            if known is not None:
                ports.update(known)
            elif fqdn.endswith(f".svc.{self.domain}"):
                return None
        return frozenset(ports)

    def _http_routes(
        self, vs: VirtualService, ns: str, delegates: Mapping[tuple[str, str], VirtualService]
    ) -> list[_Route]:
        """The VirtualService's HTTP routes with delegate routes merged in (pilot's mergeVirtualServices)."""
        out: list[_Route] = []
        for i, http in enumerate(vs.spec.http):
            if http.delegate is None:
                out.append(_Route(http, ns, i))
                continue
            key = (http.delegate.namespace or ns, http.delegate.name or "")
            delegate = delegates.get(key)
            if delegate is None:
                continue  # pilot drops the route when the delegate does not exist
            exports = {key[0] if e == "." else e for e in delegate.spec.export_to} or {"*"}
            if "*" not in exports and ns not in exports:
                continue  # nor when the delegate is not exported to the root's namespace
            root = _qualify(replace(http, delegate=None), ns, self.domain)
            for sub in delegate.spec.http:
                if sub.delegate is not None:
                    continue  # delegation does not nest
                merged = _merge_http_route(root, _qualify(sub, key[0], self.domain))
                if merged is not None:
                    out.append(_Route(merged, key[0], i))
        return out

    def _compile_routes(self, routes: list[_Route], name: str, host: str) -> list[_CompiledRoute]:
        vs_gateways = frozenset({_MESH})
        compiled: list[_CompiledRoute] = []
        for route in routes:
            http = route.http
            matches: Iterable[tuple[int | None, HTTPMatchRequest | None]]
            matches = enumerate(http.match) if http.match else [(None, None)]
            catch_all = False
            for j, m in matches:
                if m is not None and not self._source_matches(m, vs_gateways):
                    continue
                prefix, exact, predicate = _split_match(m) if m is not None else (None, None, None)
                decision = self._compile_decision(http, m, route.index, j, name, route.ns, host)
                port = m.port if m is not None and m.port else None
                by_port = self._depends_on_port(decision)
                compiled.append(_CompiledRoute(port, predicate, decision, prefix, exact, by_port))
                if predicate is None and prefix is None and exact is None and port is None:
                    catch_all = True
                    break
            if catch_all:
                break  # later routes can never match
        return compiled

    def _source_matches(self, m: HTTPMatchRequest, vs_gateways: frozenset[str]) -> bool:
        # As pilot's sourceMatchHTTP: gateways named in the match replace the VirtualService's; sourceLabels and
        # sourceNamespace are only consulted when the match names no gateways.
        if m.gateways:
            return _MESH in m.gateways
        if _MESH not in vs_gateways:
            return False
        labels = self.workload.labels
        if any(labels.get(k) != v for k, v in m.source_labels.items()):
            return False
        return not m.source_namespace or m.source_namespace == self.workload.namespace

    def _compile_decision(
        self,
        http: HTTPRoute,
        m: HTTPMatchRequest | None,
        route_index: int,
        match_index: int | None,
        vs_name: str,
        ns: str,
        host: str,
    ) -> RouteDecision:
        route_name = http.name
        if m is not None and m.name:
            route_name = f"{route_name or ''}.{m.name}"
        matched_prefix = _matched_prefix(m)
        ignore_case = bool(m is not None and m.ignore_uri_case)
        req_ops, resp_ops, header_authority = _header_ops(http.headers)
        common: dict[str, Any] = {
            "host": host,
            "virtual_service": vs_name,
            "route_index": route_index,
            "match_index": match_index,
            "route_name": route_name,
            "request_headers": req_ops,
            "response_headers": resp_ops,
            # pilot attaches the fault filter config to the route whatever its action (a delegated redirect
            # can inherit the root's fault).
            "fault": _fault(http),
        }
        if http.redirect is not None:
            rd = http.redirect
            redirect = Redirect(
                uri=rd.uri or None,
                authority=rd.authority or None,
                status=rd.redirect_code or 301,
                scheme=rd.scheme or None,
                port=rd.port or None,
                derive_port=rd.derive_port is not None and rd.derive_port.name == "FROM_REQUEST_PORT",
                prefix_rewrite=rd.prefix_rewrite if rd.prefix_rewrite else None,
                matched_prefix=matched_prefix,
            )
            return RouteDecision(action=Action.REDIRECT, redirect=redirect, **common)
        if http.direct_response is not None:
            dr = http.direct_response
            body: bytes | None = None
            if dr.body is not None:
                body = dr.body.string.encode() if dr.body.string is not None else dr.body.bytes_
            return RouteDecision(
                action=Action.DIRECT_RESPONSE,
                direct_response=DirectResponse(dr.status or 200, body),
                **common,
            )
        rewrite = _rewrite(http, matched_prefix, ignore_case, header_authority)
        destinations = self._destinations(http, ns)
        if len(http.route) == 1:
            # pilot's processDestination appends a lone destination's header edits to the route's own list, so
            # Envoy applies them after the route's: fold them in (its 'set' then wins, on responses too).
            only = destinations[0]
            common["request_headers"] = _then(req_ops, only.headers_request)
            common["response_headers"] = _then(resp_ops, only.headers_response)
            destinations = (replace(only, headers_request=HeaderOps(), headers_response=HeaderOps()),)
        else:
            # Weighted clusters: Envoy applies a destination's edits first and the route's after them, so the
            # route's 'set' and 'remove' win over the destination's (requests and responses alike).
            destinations = tuple(
                replace(
                    d,
                    headers_request=_under(d.headers_request, req_ops),
                    headers_response=_under(d.headers_response, resp_ops),
                )
                for d in destinations
            )
        cumulative: list[float] = []
        total = 0.0
        for d in destinations:
            total += d.weight
            cumulative.append(total)
        timeout = http.timeout.total_seconds() if http.timeout is not None else None
        # retry.ConvertPolicy keeps retrying on the same host when the route hashes its only destination.
        hashed = len(http.route) == 1 and len(destinations) == 1 and self._hashes(destinations[0])
        return RouteDecision(
            action=Action.ROUTE,
            destinations=destinations,
            cumulative=tuple(cumulative),
            timeout=timeout or None,  # 0s means no timeout, as in Envoy
            retries=_retry_policy(
                http.retries if http.retries is not None else self.mesh.default_http_retry_policy, hashed
            ),
            rewrite=rewrite,
            mirrors=self._mirrors(http, ns),
            **common,
        )

    def _destinations(self, http: HTTPRoute, ns: str) -> tuple[WeightedDestination, ...]:
        entries = list(http.route)
        if len(entries) > 1:
            entries = [e for e in entries if e.weight]  # Istio drops zero-weight destinations
        weights = [float(e.weight or 0) if len(entries) > 1 else 100.0 for e in entries]
        total = sum(weights) or 1.0
        out = []
        for e, w in zip(entries, weights, strict=True):
            assert e.destination is not None
            req, resp, authority = _header_ops(e.headers)
            out.append(self._weighted(e.destination, ns, round(w * 100.0 / total, 6), req, resp, authority))
        return tuple(out)

    def _weighted(
        self,
        dest: Destination,
        ns: str,
        weight: float,
        req: HeaderOps | None = None,
        resp: HeaderOps | None = None,
        authority: str | None = None,
        called_port: int | None = None,
    ) -> WeightedDestination:
        host = resolve_config_host(dest.host or "", ns, self.domain)
        port = dest.port.number if dest.port is not None and dest.port.number else None
        # Without a port, pilot sends to the cluster of the port called (GetDestinationCluster).
        policy, dr_name = self.traffic_policy_with_source(host, dest.subset or None, port or called_port)
        labels = self.subset_labels(host, dest.subset) if dest.subset else None
        return WeightedDestination(
            host=host,
            subset=dest.subset or None,
            port=port,
            weight=weight,
            policy=policy,
            labels=labels,
            destination_rule=dr_name,
            headers_request=req or HeaderOps(),
            headers_response=resp or HeaderOps(),
            authority=authority,
            subset_missing=bool(dest.subset) and labels is None,
        )

    def _mirrors(self, http: HTTPRoute, ns: str) -> tuple[Mirror, ...]:
        out: list[Mirror] = []
        if http.mirror is not None:
            if http.mirror_percentage is not None:
                pct = http.mirror_percentage.value or 0.0
            elif http.mirror_percent is not None:
                pct = float(http.mirror_percent)
            else:
                pct = 100.0
            if pct > 0:
                out.append(self._mirror(http.mirror, ns, pct))
        for mp in http.mirrors:
            pct = (mp.percentage.value or 0.0) if mp.percentage is not None else 100.0
            if pct > 0 and mp.destination is not None:
                out.append(self._mirror(mp.destination, ns, pct))
        return tuple(out)

    def _mirror(self, dest: Destination, ns: str, pct: float) -> Mirror:
        w = self._weighted(dest, ns, 100.0)
        return Mirror(host=w.host, subset=w.subset, port=w.port, percent=min(pct, 100.0), policy=w.policy)

    def _hashes(self, dest: WeightedDestination) -> bool:
        """Whether pilot's HashForHTTPDestination finds a consistent hash for ``dest``: in the subset's
        port-level settings, the subset's policy, the top level's port-level settings or the top level."""
        entry = self._destination_rule_for(dest.host)
        if entry is None:
            return False
        policies = [entry.spec.traffic_policy]
        policies.extend(s.traffic_policy for s in entry.spec.subsets if s.name == (dest.subset or ""))
        for policy in policies:
            if policy is None:
                continue
            if policy.load_balancer is not None and policy.load_balancer.consistent_hash is not None:
                return True
            for pls in policy.port_level_settings:
                if dest.port and pls.port is not None and pls.port.number == dest.port:
                    if pls.load_balancer is not None and pls.load_balancer.consistent_hash is not None:
                        return True
                    break
        return False

    def _depends_on_port(self, decision: RouteDecision) -> bool:
        """Whether a destination or mirror without a port has a DestinationRule with port-level settings."""
        targets = [(d.host, d.subset) for d in decision.destinations if d.port is None]
        targets.extend((m.host, m.subset) for m in decision.mirrors if m.port is None)
        for host, subset in targets:
            entry = self._destination_rule_for(host)
            if entry is None:
                continue
            top = entry.spec.traffic_policy
            if top is not None and top.port_level_settings:
                return True
            for s in entry.spec.subsets:
                if s.name == subset and s.traffic_policy is not None and s.traffic_policy.port_level_settings:
                    return True
        return False

    # --- DestinationRules --------------------------------------------------------------------------------

    def _add_destination_rule(self, dr: DestinationRule, ns: str) -> None:
        # pilot's setDestinationRules: a rule with a workload selector is private to its namespace; a rule
        # is usable in its own namespace unless exported only elsewhere, and is exported from it unless
        # private.
        spec = dr.spec
        host = resolve_config_host(spec.host or "", ns, self.domain)
        selector = dict(spec.workload_selector.match_labels) if spec.workload_selector is not None else None
        export = frozenset(spec.export_to) if selector is None else frozenset({"."})
        if not export or "*" in export or "." in export or ns in export:
            index = self._dr_local.get(ns)
            if index is None:
                index = self._dr_local[ns] = _RuleIndex()
            _merge_into(index, dr.name, ns, host, spec, selector, export)
        private = len(export) == 1 and ("." in export or ns in export)
        if not private:
            index = self._dr_exported.get(ns)
            if index is None:
                index = self._dr_exported[ns] = _RuleIndex()
            _merge_into(index, dr.name, ns, host, spec, selector, export)
        elif ns == self._root_namespace:
            _merge_into(self._dr_root_local, dr.name, ns, host, spec, selector, export)

    def _destination_rule_for(self, host: str) -> _DestinationRuleEntry | None:
        if host in self._dr_for_cache:
            return self._dr_for_cache[host]
        entry = self._find_destination_rule(host)
        if len(self._dr_for_cache) >= _DEFAULT_CACHE_LIMIT:
            self._dr_for_cache.clear()
        self._dr_for_cache[host] = entry
        return entry

    def _find_destination_rule(self, host: str) -> _DestinationRuleEntry | None:
        # pilot's PushContext.destinationRule: the client's namespace (the root namespace's private rules
        # for a client there), then rules the service's namespace exports to the client, then rules the
        # root namespace exports. In each, the most specific host decides before exportTo is checked.
        client, root = self.workload.namespace, self._root_namespace
        local = self._dr_root_local if client == root else self._dr_local.get(client)
        if local is not None:
            found = local.most_specific(host)
            if found is not None:
                return self._pick_destination_rule(found)
        service_ns = self._service_namespace(host)
        for ns in (service_ns, root):
            index = self._dr_exported.get(ns) if ns else None
            found = index.most_specific(host) if index is not None else None
            if found:
                visible = [e for e in found if not e.export_to or "*" in e.export_to or client in e.export_to]
                if visible:
                    return self._pick_destination_rule(visible)
        return None

    def _pick_destination_rule(self, entries: list[_DestinationRuleEntry]) -> _DestinationRuleEntry | None:
        # SidecarScope.DestinationRule: a rule of the client's namespace whose selector matches the workload,
        # else the last rule without a selector.
        labels = self.workload.labels
        catch_all: _DestinationRuleEntry | None = None
        for entry in entries:
            if entry.selector is None:
                catch_all = entry
            elif entry.namespace == self.workload.namespace and all(
                labels.get(k) == v for k, v in entry.selector.items()
            ):
                return entry
        return catch_all

    def _service_namespace(self, host: str) -> str | None:
        ns = _service_namespace(host, self.domain)
        if ns is not None:
            return ns
        ns = self._registry_exact.get(host)
        if ns is not None:
            return ns
        for pattern, se_ns in self._registry_wild:
            if host_matches(pattern, host):
                return se_ns
        return None

    def _in_registry(self, host: str) -> bool:
        """Whether pilot knows ``host`` as a service: a Kubernetes name or a visible ServiceEntry host."""
        known = self._registry_cache.get(host)
        if known is None:
            known = (
                host.endswith(f".svc.{self.domain}")
                or host in self._registry_exact
                or any(host_matches(p, host) for p, _ in self._registry_wild)
            )
            if len(self._registry_cache) >= _DEFAULT_CACHE_LIMIT:
                self._registry_cache.clear()
            self._registry_cache[host] = known
        return known

    def traffic_policy(
        self, host: str, subset: str | None = None, port: int | None = None
    ) -> TrafficPolicy | None:
        """The DestinationRule traffic policy for ``host`` (FQDN), ``subset`` and ``port``, merged as Istio
        merges it: port-level settings replace the top level wholesale, then the subset's policy overrides
        field by field (its own port-level settings again wholesale). ``None`` when no rule applies.

        The rule is the one pilot picks for this workload: its own namespace's, else the one the service's
        namespace exports to it, else the one the root namespace (``istio-system``) exports."""
        return self.traffic_policy_with_source(host, subset, port)[0]

    def traffic_policy_with_source(
        self, host: str, subset: str | None = None, port: int | None = None
    ) -> tuple[TrafficPolicy | None, str | None]:
        """Like :meth:`traffic_policy`, also naming the DestinationRule(s) it came from (``ns/name``)."""
        key = (host, subset, port)
        cached = self._policy_cache.get(key)
        if cached is not None or key in self._policy_cache:
            return cached if cached is not None else (None, None)
        entry = self._destination_rule_for(host)
        result: tuple[TrafficPolicy | None, str | None] = (None, None)
        if entry is not None:
            policy, _ = _port_level(entry.spec.traffic_policy, port)
            for s in entry.spec.subsets:
                if subset is not None and s.name == subset and s.traffic_policy is not None:
                    policy = _merge_subset_policy(policy, s.traffic_policy, port)
                    break
            result = (policy, ",".join(f"{entry.namespace}/{n}" for n in entry.names))
        self._policy_cache[key] = result
        return result

    def subset_labels(self, host: str, subset: str) -> dict[str, str] | None:
        """The labels subset ``subset`` of ``host`` selects, or ``None`` when no rule defines it."""
        entry = self._destination_rule_for(host)
        if entry is None:
            return None
        for s in entry.spec.subsets:
            if s.name == subset:
                return dict(s.labels)
        return None

    # --- routing ------------------------------------------------------------------------------------------

    def resolve_host(self, host: str) -> str:
        """The FQDN a caller in this workload's namespace means by ``host`` (no port): along Kubernetes' DNS
        search path, preferring a name the config knows, then a Kubernetes name in a namespace the config
        mentions, else the name as written."""
        cached = self._resolve_cache.get(host)
        if cached is not None:
            return cached
        candidates = call_host_candidates(host, self.workload.namespace, self.domain)
        fqdn = candidates[-1] if len(candidates) > 1 else candidates[0]
        for c in candidates:
            if c in self._known_hosts or c in self._exact:
                fqdn = c
                break
        else:
            for c in candidates:
                if _service_namespace(c, self.domain) in self._known_namespaces:
                    fqdn = c
                    break
        if len(self._resolve_cache) >= _DEFAULT_CACHE_LIMIT:
            self._resolve_cache.clear()
        self._resolve_cache[host] = fqdn
        return fqdn

    def route(self, call: Call) -> RouteDecision:
        """The routing decision for ``call``: the first matching route of the VirtualService for its host, or
        the default route when no VirtualService covers the host, or ``NO_ROUTE`` when one does but no route
        matches (Envoy's ``NR``, HTTP 404).

        The default route of a service (a Kubernetes name or a ServiceEntry host) retries as Istio does; a
        host outside the registry is passed through without retries, or answered with 502 when MeshConfig's
        ``outboundTrafficPolicy`` is ``REGISTRY_ONLY``.

        First the call's path is normalized as MeshConfig ``pathNormalization`` says (Istio's ``BASE`` by
        default: ``/a/../b`` is ``/b``), in place: routing matches the normalized path, and it is the path
        sent upstream, as a sidecar rewrites ``:path`` before anything reads it."""
        mode = self.path_normalization
        if mode != "NONE":
            target = call.path
            normalized = normalize_path(target, mode)
            if normalized is not target:
                call.set_path(normalized)
        # (authority, scheme, explicit port) -> (FQDN, port): a fresh Call need not parse its authority.
        key = (call.authority, call.scheme, call.port)
        endpoint = self._endpoint_cache.get(key)
        if endpoint is None:
            endpoint = (self.resolve_host(call.host), call.target_port)
            if len(self._endpoint_cache) >= _DEFAULT_CACHE_LIMIT:
                self._endpoint_cache.clear()
            self._endpoint_cache[key] = endpoint
        host, port = endpoint
        vhost = self._exact.get(host)
        if vhost is None:
            if not self._wildcards:
                default = self._default_cache.get(endpoint)
                return default if default is not None else self._default_route(host, port)
            return self._route_slowly(call, host, port, None)
        if not vhost.fast:
            return self._route_slowly(call, host, port, vhost)
        path = call.path_only if vhost.tests_path else ""
        # Inline str tests on unpacked tuples: the common uri match costs no Python call per route.
        for r_port, prefix, exact, match, decision in vhost.table:
            if r_port is not None and r_port != port:
                continue
            if prefix is not None and not path.startswith(prefix):
                continue
            if exact is not None and path != exact:
                continue
            if match is None or match(call):
                return decision
        return vhost.no_route

    def _route_slowly(self, call: Call, host: str, port: int, first: _VirtualHost | None) -> RouteDecision:
        """``route`` for wildcard hosts, VirtualServices limited to some ports and port-dependent policies."""
        vhost = self._virtual_host_for(host, port, first)
        if vhost is None:
            return self._default_route(host, port)
        path = call.path_only if vhost.tests_path else ""
        for r in vhost.routes:
            if r.port is not None and r.port != port:
                continue
            if r.uri_prefix is not None and not path.startswith(r.uri_prefix):
                continue
            if r.uri_exact is not None and path != r.uri_exact:
                continue
            if r.match is None or r.match(call):
                return self._specialize(r.decision, host, port, r.by_port)
        return self._specialize(vhost.no_route, host, port, False)

    def _virtual_host_for(self, host: str, port: int, first: _VirtualHost | None) -> _VirtualHost | None:
        # For a service, pilot gives the host to the first VirtualService naming it exactly that has routes
        # on this port, and only when none names it exactly, to its most specific wildcard VirtualService
        # (computeWildcardHostVirtualServiceIndex). Hosts outside the registry follow Envoy's domain
        # matching among the virtual hosts built on port 80.
        registry = self._in_registry(host)
        if first is not None:
            for vhost in self._exact_all[host]:
                if vhost.ports is None or port in vhost.ports:
                    return vhost
            if registry:
                return None
        elif registry and host in self._exact_named:
            return None
        if not registry and port != 80:
            return None
        for pattern, vhost in self._wildcards:
            if host_matches(pattern, host):
                if vhost.ports is None or port in vhost.ports:
                    return vhost
                if registry:
                    return None
        return None

    def _specialize(self, decision: RouteDecision, host: str, port: int, by_port: bool) -> RouteDecision:
        """``decision`` for a wildcard's concrete host, with port-dependent policies for the port called."""
        if not by_port and decision.host == host:
            return decision
        key = (id(decision), host, port if by_port else 0)
        out = self._specialized.get(key)
        if out is None:
            out = replace(decision, host=host)
            if by_port:
                out = replace(
                    out,
                    destinations=tuple(self._at_port(d, port) for d in decision.destinations),
                    mirrors=tuple(
                        m
                        if m.port is not None
                        else replace(m, policy=self.traffic_policy(m.host, m.subset, port))
                        for m in decision.mirrors
                    ),
                )
            if len(self._specialized) >= _DEFAULT_CACHE_LIMIT:
                self._specialized.clear()
            self._specialized[key] = out
        return out

    def _at_port(self, dest: WeightedDestination, port: int) -> WeightedDestination:
        if dest.port is not None:
            return dest
        policy, _ = self.traffic_policy_with_source(dest.host, dest.subset, port)
        return replace(dest, policy=policy)

    def _default_route(self, host: str, port: int) -> RouteDecision:
        key = (host, port)
        decision = self._default_cache.get(key)
        if decision is None:
            decision = self._default_decision(host, port)
            if len(self._default_cache) >= _DEFAULT_CACHE_LIMIT:
                self._default_cache.clear()
            self._default_cache[key] = decision
        return decision

    def _default_decision(self, host: str, port: int) -> RouteDecision:
        if self._in_registry(host):
            # BuildDefaultHTTPOutboundRoute: the service's cluster for this port, with the default retries.
            dest = self._weighted(Destination(host=host), self.workload.namespace, 100.0, called_port=port)
            return RouteDecision(
                host=host,
                action=Action.ROUTE,
                destinations=(dest,),
                cumulative=(100.0,),
                retries=self._default_retry,
            )
        # buildCatchAllVirtualHost: unknown hosts go to the passthrough cluster (no retries, no timeout, no
        # DestinationRule), or get 502 when only the registry may be reached.
        otp = self.mesh.outbound_traffic_policy
        if otp is not None and otp.mode == OutboundMode.REGISTRY_ONLY:
            return RouteDecision(
                host=host, action=Action.DIRECT_RESPONSE, direct_response=DirectResponse(502)
            )
        return RouteDecision(
            host=host,
            action=Action.ROUTE,
            destinations=(WeightedDestination(host=host, subset=None, port=None, weight=100.0),),
            cumulative=(100.0,),
            retries=_NO_RETRIES,
        )


def _virtual_host(name: str, compiled: list[_CompiledRoute], host: str, compiled_for: str) -> _VirtualHost:
    if host != compiled_for:
        compiled = [replace(r, decision=replace(r.decision, host=host)) for r in compiled]
    no_route = RouteDecision(host=host, action=Action.NO_ROUTE, virtual_service=name)
    table = tuple((r.port, r.uri_prefix, r.uri_exact, r.match, r.decision) for r in compiled)
    tests_path = any(r.uri_prefix is not None or r.uri_exact is not None for r in compiled)
    ports: frozenset[int] | None = None
    if all(r.port is not None for r in compiled):
        ports = frozenset(r.port for r in compiled if r.port is not None)
    fast = ports is None and not any(r.by_port for r in compiled)
    return _VirtualHost(name, tuple(compiled), no_route, table, tests_path, ports, fast)


def _http_or_sniffed(protocol: str | None) -> bool:
    """Whether pilot builds HTTP routes for a port of ``protocol``: an HTTP one, or one it does not know
    (whose protocol it sniffs)."""
    name = parse_protocol(protocol)
    return name is None or name in HTTP_PROTOCOLS


def _restrict_ports(vhost: _VirtualHost, ports: frozenset[int]) -> _VirtualHost | None:
    allowed = ports if vhost.ports is None else vhost.ports & ports
    return replace(vhost, ports=allowed, fast=False) if allowed else None


def _virtual_service_group(vs: VirtualService, ns: str, client: str) -> int | None:
    """Where pilot's SelectVirtualServices puts ``vs`` for a client in ``client``: 0 private to the client's
    namespace, 1 exported to it by name, 2 public; ``None`` when it does not apply to this sidecar."""
    gateways = vs.spec.gateways
    if gateways and _MESH not in gateways:
        return None
    exports = set(vs.spec.export_to) or {"*"}  # MeshConfig's defaultVirtualServiceExportTo is '*'
    if "*" in exports:
        return 2
    if "~" in exports:
        return None
    names = {ns if e == "." else e for e in exports}
    if client not in names:
        return None
    return 0 if client == ns else 1


# --- delegation ---------------------------------------------------------------------------------------


def _qualify(http: HTTPRoute, ns: str, domain: str) -> HTTPRoute:
    """``http`` with its destination hosts resolved in ``ns`` (pilot's ResolveVirtualServiceShortnames)."""

    def q(d: Destination) -> Destination:
        return replace(d, host=resolve_config_host(d.host or "", ns, domain))

    return replace(
        http,
        route=tuple(replace(r, destination=q(r.destination)) if r.destination else r for r in http.route),
        mirror=q(http.mirror) if http.mirror is not None else None,
        mirrors=tuple(replace(m, destination=q(m.destination)) if m.destination else m for m in http.mirrors),
    )


def _merge_http_route(root: HTTPRoute, sub: HTTPRoute) -> HTTPRoute | None:
    """pilot's mergeHTTPRoute: the delegate route under the root's matches, inheriting what it leaves out;
    ``None`` when its matches conflict with the root's."""
    matches = _merge_matches(root.match, sub.match)
    if matches is None:
        return None
    return replace(
        sub,
        match=matches,
        name=_joined_name(root.name, sub.name),
        rewrite=sub.rewrite if sub.rewrite is not None else root.rewrite,
        direct_response=sub.direct_response if sub.direct_response is not None else root.direct_response,
        timeout=sub.timeout if sub.timeout is not None else root.timeout,
        retries=sub.retries if sub.retries is not None else root.retries,
        fault=sub.fault if sub.fault is not None else root.fault,
        mirror=sub.mirror if sub.mirror is not None else root.mirror,
        mirror_percent=sub.mirror_percent if sub.mirror_percent is not None else root.mirror_percent,
        mirror_percentage=sub.mirror_percentage
        if sub.mirror_percentage is not None
        else root.mirror_percentage,
        cors_policy=sub.cors_policy if sub.cors_policy is not None else root.cors_policy,
        mirrors=sub.mirrors or root.mirrors,
        headers=sub.headers if sub.headers is not None else root.headers,
    )


def _joined_name(root: str | None, sub: str | None) -> str | None:
    if not sub:
        return root
    return f"{root}-{sub}" if root else sub


def _merge_matches(
    root: tuple[HTTPMatchRequest, ...], sub: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    # pilot's mergeHTTPMatchRequests: every delegate match must fit under some root match; it is merged with
    # each root match it does not conflict with.
    if not root:
        return sub
    if not sub:
        return root
    out: list[HTTPMatchRequest] = []
    for s in sub:
        fits = [r for r in root if not _match_conflict(r, s)]
        if not fits:
            return None
        out.extend(_merge_match(r, s) for r in fits)
    return tuple(out)


def _merge_match(r: HTTPMatchRequest, s: HTTPMatchRequest) -> HTTPMatchRequest:
    return replace(
        s,
        name=_joined_name(r.name, s.name),
        uri=s.uri if s.uri is not None else r.uri,
        scheme=s.scheme if s.scheme is not None else r.scheme,
        method=s.method if s.method is not None else r.method,
        authority=s.authority if s.authority is not None else r.authority,
        headers={**r.headers, **s.headers},
        without_headers={**r.without_headers, **s.without_headers},
        query_params={**r.query_params, **s.query_params},
        port=s.port or r.port,
        source_labels={**r.source_labels, **s.source_labels},
        source_namespace=s.source_namespace or r.source_namespace,
        gateways=s.gateways or r.gateways,
        stat_prefix=s.stat_prefix or r.stat_prefix,
    )


def _match_conflict(r: HTTPMatchRequest, s: HTTPMatchRequest) -> bool:
    """pilot's hasConflict: whether delegate match ``s`` cannot narrow root match ``r``."""
    pairs = [(r.uri, s.uri), (r.scheme, s.scheme), (r.method, s.method), (r.authority, s.authority)]
    pairs.extend((r.headers.get(k), v) for k, v in s.headers.items())
    pairs.extend((r.without_headers.get(k), v) for k, v in s.without_headers.items())
    pairs.extend((r.query_params.get(k), v) for k, v in s.query_params.items())
    if any(_string_match_conflict(a, b) for a, b in pairs):
        return True
    if bool(r.ignore_uri_case) != bool(s.ignore_uri_case):
        return True
    if r.port and s.port and r.port != s.port:
        return True
    if r.source_namespace and (s.source_namespace or "") != r.source_namespace:
        return True
    if any(k in r.source_labels and r.source_labels[k] != v for k, v in s.source_labels.items()):
        return True
    if r.gateways and s.gateways:
        return len(r.gateways) < len(s.gateways) or any(g not in r.gateways for g in s.gateways)
    return False


def _string_match_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    # pilot's stringMatchConflict (an empty string counts as unset, as with Go's getters).
    if root is None or leaf is None:
        return False
    r_exact, r_prefix, r_regex = root.exact or "", root.prefix or "", root.regex or ""
    l_exact, l_prefix, l_regex = leaf.exact or "", leaf.prefix or "", leaf.regex or ""
    if r_regex and (l_regex or l_prefix or l_exact):
        return True
    if l_regex and (r_regex or r_prefix or r_exact):
        return True
    if r_exact:
        return bool(l_prefix) or l_exact != r_exact
    if r_prefix:
        if l_prefix:
            return not l_prefix.startswith(r_prefix)
        if l_exact:
            return not l_exact.startswith(r_prefix)
    return True


# --- match compilation ---------------------------------------------------------------------------------


def _string_predicate(sm: StringMatch | None, *, ignore_case: bool = False) -> Callable[[str], bool] | None:
    """A value predicate for a StringMatch; ``None`` means "present" (empty match or regex ``*``)."""
    if sm is None:
        return None
    if sm.exact is not None:
        exact = sm.exact
        if ignore_case:
            low = exact.lower()
            return lambda v: v.lower() == low
        return exact.__eq__
    if sm.prefix is not None:
        prefix = sm.prefix
        if ignore_case:
            lowp = prefix.lower()
            return lambda v: v.lower().startswith(lowp)
        return lambda v: v.startswith(prefix)
    if sm.regex is not None:
        if sm.regex == "*":  # Istio reads a bare * as "present", not as a regex
            return None
        return compile_full_match(sm.regex)
    return None


def _header_getter(name: str) -> Callable[[Call], str | None]:
    n = name.lower()
    if n == ":method":
        return lambda c: c.method
    if n == ":authority" or n == "host":
        return lambda c: c.authority
    if n == ":scheme":
        return lambda c: c.scheme
    if n == ":path":
        return lambda c: c.path
    return lambda c: c.headers.get(n)


def _header_predicate(name: str, sm: StringMatch | None, *, invert: bool) -> Predicate:
    n = name.lower()
    if not invert and sm is not None and sm.exact is not None and n[:1] != ":" and n != "host":
        exact = sm.exact
        return lambda c: c.headers.get(n) == exact  # one call, not three; a missing header is None
    get = _header_getter(name)
    test = _string_predicate(sm)
    if test is None:
        if invert:
            return lambda c: get(c) is None
        return lambda c: get(c) is not None
    if invert:
        # Istio sets treat_missing_header_as_empty on withoutHeaders: a missing header is tested as "".

        def without(c: Call) -> bool:
            v = get(c)
            return not test("" if v is None else v)

        return without

    def with_header(c: Call) -> bool:
        v = get(c)
        return v is not None and test(v)

    return with_header


def _uri_predicate(sm: StringMatch, ignore_case: bool) -> Predicate | None:
    if sm.exact is None and sm.prefix is None and sm.regex is None:
        return None
    if sm.regex is not None:
        # Envoy's case_sensitive flag does not apply to safe_regex.
        rx = compile_full_match(sm.regex)
        return lambda c: rx(c.path_only)
    test = _string_predicate(sm, ignore_case=ignore_case)
    assert test is not None
    if sm.prefix is not None and not ignore_case:
        prefix = sm.prefix
        if prefix == "/":
            return None
        return lambda c: c.path_only.startswith(prefix)
    if sm.exact is not None and not ignore_case:
        exact = sm.exact
        return lambda c: c.path_only == exact
    return lambda c: test(c.path_only)


def _query_predicate(name: str, sm: StringMatch | None) -> Predicate:
    # Envoy matches query parameters as sent (QueryParamsMulti::parseQueryString does not percent-decode,
    # and '+' stays '+'), on the first value of a repeated name.
    test = _string_predicate(sm)
    if test is None:
        return lambda c: _query_value(c.path, name) is not None

    def query(c: Call) -> bool:
        v = _query_value(c.path, name)
        return v is not None and test(v)

    return query


def _query_value(path: str, name: str) -> str | None:
    """The first raw value of query parameter ``name`` in ``path`` ('' for a name without '=')."""
    q = path.find("?")
    if q < 0:
        return None
    query = path[q + 1 :]
    h = query.find("#")
    if h >= 0:
        query = query[:h]
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


def _split_match(m: HTTPMatchRequest) -> tuple[str | None, str | None, Predicate | None]:
    """A case-sensitive uri prefix or exact (for ``route`` to test inline) and a predicate for the rest."""
    uri = m.uri
    if uri is None or m.ignore_uri_case or (uri.prefix is None and uri.exact is None):
        return None, None, _compile_match(m)
    rest = _compile_match(replace(m, uri=None))
    if uri.prefix is not None:
        return (uri.prefix if uri.prefix != "/" else None), None, rest
    return None, uri.exact, rest


def _compile_match(m: HTTPMatchRequest) -> Predicate | None:
    preds: list[Predicate] = []
    if m.uri is not None:
        p = _uri_predicate(m.uri, bool(m.ignore_uri_case))
        if p is not None:
            preds.append(p)
    for name, getter_name in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        sm = getattr(m, name)
        if sm is not None:
            preds.append(_header_predicate(getter_name, sm, invert=False))
    for hname, sm in sorted(m.headers.items()):
        preds.append(_header_predicate(hname, sm, invert=False))
    for hname, sm in sorted(m.without_headers.items()):
        preds.append(_header_predicate(hname, sm, invert=True))
    for qname, sm in sorted(m.query_params.items()):
        preds.append(_query_predicate(qname, sm))
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda c: a(c) and b(c)
    all_preds = tuple(preds)
    return lambda c: all(p(c) for p in all_preds)


def _matched_prefix(m: HTTPMatchRequest | None) -> str | None:
    if m is None or m.uri is None:
        return "/"  # a route without a uri match is Envoy's prefix "/"
    if m.uri.prefix is not None:
        return m.uri.prefix
    if m.uri.exact is None and m.uri.regex is None:
        return "/"
    return None  # exact and regex matches consume the whole path


# --- decision pieces -----------------------------------------------------------------------------------


def _header_ops(headers: Headers | None) -> tuple[HeaderOps, HeaderOps, str | None]:
    if headers is None:
        return HeaderOps(), HeaderOps(), None
    authority: str | None = None

    def ops(h: Any, request: bool) -> HeaderOps:
        nonlocal authority
        if h is None:
            return HeaderOps()
        set_: dict[str, str] = {}
        add: dict[str, str] = {}
        for src, dst, is_set in ((h.add, add, False), (h.set, set_, True)):
            for k, v in src.items():
                low = k.lower()
                if low in (":authority", "host"):
                    if request and (is_set or authority is None):
                        authority = v  # 'set' wins over 'add', as pilot translates it
                    continue
                if low.startswith(":"):
                    continue
                dst[low] = v
        remove = tuple(k.lower() for k in h.remove if not k.startswith(":") and k.lower() != "host")
        return HeaderOps(set_, add, remove)

    return ops(headers.request, True), ops(headers.response, False), authority


def _then(first: HeaderOps, second: HeaderOps) -> HeaderOps:
    """``first`` then ``second`` as one Envoy header list: every removal first, then the edits in order (a
    later 'set' replaces earlier values, an 'add' appends). Adapters apply removals, then sets, then adds."""
    if not second:
        return first
    if not first:
        return second
    add = {k: v for k, v in first.add.items() if k not in second.set}
    for k, v in second.add.items():
        add[k] = f"{add[k]},{v}" if k in add else v
    remove = first.remove + tuple(k for k in second.remove if k not in first.remove)
    return HeaderOps({**first.set, **second.set}, add, remove)


def _under(dest: HeaderOps, route: HeaderOps) -> HeaderOps:
    """A weighted destination's edits as they survive the route's, which Envoy applies after them: what the
    route sets or removes is dropped from the destination's edits, and a header both add carries both
    values (the engine lets the destination's 'add' replace the route's for a request)."""
    if not dest or not route:
        return dest
    overridden = set(route.set) | set(route.remove)
    set_ = {k: v for k, v in dest.set.items() if k not in overridden}
    add = {k: v for k, v in dest.add.items() if k not in overridden}
    for k, v in route.add.items():
        if k in add:
            add[k] = f"{add[k]},{v}"
    if len(set_) == len(dest.set) and add == dict(dest.add):
        return dest
    return HeaderOps(set_, add, dest.remove)


def _rewrite(
    http: HTTPRoute, matched_prefix: str | None, ignore_case: bool, authority: str | None
) -> Rewrite | None:
    rw = http.rewrite
    if rw is None:
        return Rewrite(authority=authority) if authority else None
    regex = None
    substitution = None
    if rw.uri_regex_rewrite is not None and rw.uri_regex_rewrite.match:
        regex = re2.compile(rw.uri_regex_rewrite.match)
        substitution = rw.uri_regex_rewrite.rewrite or ""
    return Rewrite(
        uri=rw.uri or None,
        authority=rw.authority or authority,
        regex=regex,
        regex_substitution=substitution,
        matched_prefix=matched_prefix,
        ignore_case=ignore_case,
    )


_DEFAULT_RETRIES = RetryPolicy(attempts=2, retry_on=DEFAULT_RETRY_ON)
_DEFAULT_HASHED_RETRIES = RetryPolicy(attempts=2, retry_on=DEFAULT_RETRY_ON, ignore_previous_hosts=False)
_NO_RETRIES = RetryPolicy(attempts=0, retry_on=())

# The status codes Go's http.StatusText knows: pilot's parseRetryOn reads only these as retriable codes.
_HTTP_STATUSES = frozenset(
    (
        *(100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308, *range(400, 419)),
        *(421, 422, 423, 424, 425, 426, 428, 429, 431, 451, *range(500, 509), 510, 511),
    )
)


def _retry_policy(retry: HTTPRetry | None, hashed: bool = False) -> RetryPolicy:
    """pilot's retry.ConvertPolicy. ``hashed``: the route sends to one destination with a consistent hash,
    where retries stay on the same host unless ``retryIgnorePreviousHosts`` says otherwise."""
    if retry is None:
        return _DEFAULT_HASHED_RETRIES if hashed else _DEFAULT_RETRIES
    attempts = retry.attempts or 0
    if attempts <= 0:
        return _NO_RETRIES
    retry_on = DEFAULT_RETRY_ON
    codes: frozenset[int] = frozenset()
    if retry.retry_on:
        names: list[str] = []
        code_list: list[int] = []
        for part in (p.strip() for p in retry.retry_on.split(",")):
            if not part:
                continue
            code = _status_code(part)
            if code is not None:
                code_list.append(code)
            else:
                names.append(part)
        if code_list and not any("retriable-status-codes" in n for n in names):
            names.append("retriable-status-codes")
        retry_on, codes = tuple(names), frozenset(code_list)
    ignore = retry.retry_ignore_previous_hosts
    return RetryPolicy(
        attempts=attempts,
        retry_on=retry_on,
        retriable_status_codes=codes,
        per_try_timeout=retry.per_try_timeout.total_seconds() if retry.per_try_timeout is not None else None,
        backoff=retry.backoff.total_seconds() if retry.backoff is not None else None,
        ignore_previous_hosts=(not hashed) if ignore is None else ignore,
    )


def _status_code(part: str) -> int | None:
    # As Go's strconv.Atoi followed by http.StatusText: an optional sign, ASCII digits, a known status.
    digits = part[1:] if part[:1] in "+-" else part
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(part)
    return value if value in _HTTP_STATUSES else None


def _fault(http: HTTPRoute) -> FaultPolicy | None:
    f = http.fault
    if f is None:
        return None
    delay: float | None = None
    delay_pct = 0.0
    if f.delay is not None and f.delay.fixed_delay is not None:
        delay = f.delay.fixed_delay.total_seconds()
        if f.delay.percentage is not None:
            delay_pct = f.delay.percentage.value or 0.0
        else:
            delay_pct = float(f.delay.percent or 0)
    http_status = grpc_status = None
    abort_pct = 0.0
    if f.abort is not None:
        if f.abort.http_status is not None:
            http_status = f.abort.http_status
        elif f.abort.grpc_status is not None:
            grpc_status = GRPC_STATUS.get(f.abort.grpc_status.upper())
        if f.abort.percentage is not None:
            abort_pct = f.abort.percentage.value or 0.0
    if delay is None and http_status is None and grpc_status is None:
        return None
    return FaultPolicy(delay, min(delay_pct, 100.0), http_status, grpc_status, min(abort_pct, 100.0))


def _port_level(policy: TrafficPolicy | None, port: int | None) -> tuple[TrafficPolicy | None, bool]:
    if policy is None:
        return None, False
    if port is not None:
        for p in policy.port_level_settings:
            if p.port is not None and p.port.number == port:
                return _from_port_policy(p), True
    if policy.port_level_settings:
        policy = replace(policy, port_level_settings=())
    return policy, False


def _from_port_policy(p: PortTrafficPolicy) -> TrafficPolicy:
    # Port-level settings do not inherit: omitted fields fall back to defaults (pilot's shadow copy keeps
    # only these four).
    return TrafficPolicy(
        connection_pool=p.connection_pool,
        load_balancer=p.load_balancer,
        outlier_detection=p.outlier_detection,
        tls=p.tls,
    )


def _merge_subset_policy(
    original: TrafficPolicy | None, subset: TrafficPolicy, port: int | None
) -> TrafficPolicy:
    sub, has_port_level = _port_level(subset, port)
    assert sub is not None
    if original is None:
        return sub
    # A subset overrides field by field; its port-level settings (if any) replace these four wholesale.
    return replace(
        original,
        port_level_settings=(),
        connection_pool=sub.connection_pool
        if sub.connection_pool or has_port_level
        else original.connection_pool,
        outlier_detection=sub.outlier_detection
        if sub.outlier_detection or has_port_level
        else original.outlier_detection,
        load_balancer=sub.load_balancer if sub.load_balancer or has_port_level else original.load_balancer,
        tls=sub.tls if sub.tls or has_port_level else original.tls,
        tunnel=sub.tunnel or original.tunnel,
        proxy_protocol=sub.proxy_protocol or original.proxy_protocol,
        retry_budget=sub.retry_budget or original.retry_budget,
    )


def _merge_destination_rules(first: DestinationRuleSpec, other: DestinationRuleSpec) -> DestinationRuleSpec:
    # Same host, same namespace: subsets are concatenated (first definition of a name wins) and the first
    # rule's top-level traffic policy is kept, as pilot merges them.
    names = {s.name for s in first.subsets}
    subsets = first.subsets + tuple(s for s in other.subsets if s.name not in names)
    policy = first.traffic_policy if first.traffic_policy is not None else other.traffic_policy
    return replace(first, subsets=subsets, traffic_policy=policy)


def _merge_into(
    index: _RuleIndex,
    name: str,
    ns: str,
    host: str,
    spec: DestinationRuleSpec,
    selector: Mapping[str, str] | None,
    export: frozenset[str],
) -> None:
    """pilot's mergeDestinationRule (with its default enhanced merge): a rule merges into an existing one
    for the same host when their exportTo sets are equal (or it is a superset, when it is also kept apart)
    and their workload selectors agree; otherwise it is kept as a separate entry."""
    entries = index.by_host.get(host)
    if entries is None:
        index.by_host[host] = [_DestinationRuleEntry(ns, host, spec, selector, export, [name])]
        return
    separate = True
    for entry in entries:
        if export == entry.export_to:
            separate = False
        elif entry.export_to and export >= entry.export_to:
            separate = True
        else:
            separate = True
            continue
        both_with = selector is not None and entry.selector is not None
        if both_with and dict(selector or {}) != dict(entry.selector or {}):
            separate = True
            continue
        if both_with or (selector is None and entry.selector is None):
            separate = False
        entry.spec = _merge_destination_rules(entry.spec, spec)
        entry.names.append(name)
    if separate:
        entries.append(_DestinationRuleEntry(ns, host, spec, selector, export, [name]))


def _visible(export_to: tuple[str, ...], resource_ns: str, client_ns: str) -> bool:
    if not export_to:
        return True
    return any(e in ("*", client_ns) or (e == "." and resource_ns == client_ns) for e in export_to)


def _service_namespace(host: str, domain: str) -> str | None:
    suffix = f".svc.{domain}"
    if host.endswith(suffix):
        parts = host[: -len(suffix)].split(".")
        if len(parts) >= 2:
            return parts[-1]
    return None


def _creation_order(r: Resource) -> tuple[float, str, str]:
    # pilot's configCompareByCreationTime: creation time, then name, then namespace; no time sorts first.
    return (_timestamp(r.metadata.creation_timestamp), r.name, r.namespace or "")


def _destination_rule_order(r: DestinationRule) -> tuple[bool, float, str, str]:
    # sortConfigBySelectorAndCreationTime: rules with a workload selector first.
    return (r.spec.workload_selector is None, *_creation_order(r))


def _timestamp(ts: Any) -> float:
    if ts is None:
        return float("-inf")
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()
    try:
        parsed = datetime.fromisoformat(str(ts).strip().replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    return _timestamp(parsed)


def _config_version(config: ConfigSet) -> str:
    h = hashlib.sha256()
    for r in config.resources:
        h.update(repr(sorted(resource_to_dict(r).items())).encode())
    return h.hexdigest()[:16]
