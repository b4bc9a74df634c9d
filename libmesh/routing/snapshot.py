"""The compiled routing table: an immutable snapshot of the config, built once, queried per call.

``Snapshot.compile`` does all the work that does not depend on the request (host resolution, VirtualService
precedence and visibility, route filtering by the local workload, DestinationRule merging, retry defaults),
so that ``Snapshot.route`` only resolves the host and runs the route matchers in order. ``route`` is pure: no
I/O, no clock, no randomness; a new config means a new snapshot swapped in by reference.

Example::

    snap = Snapshot.compile(load_paths(["mesh/"]), workload=Workload(namespace="default"))
    decision = snap.route(Call(authority="reviews:9080", path="/", headers={"end-user": "jason"}))
    decision.pick(random.random()).subset   # 'v2'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
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
    Resource,
    ServiceEntry,
    VirtualService,
)
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
from .regex import compile_full_match

__all__ = ["GRPC_STATUS", "Snapshot"]

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


# (port, uri prefix, uri exact, rest of the match, decision): unpacked in ``route``'s loop header.
_RouteRow = tuple[int | None, str | None, str | None, Predicate | None, RouteDecision]


@dataclass(frozen=True, slots=True)
class _VirtualHost:
    virtual_service: str
    routes: tuple[_CompiledRoute, ...]
    no_route: RouteDecision
    table: tuple[_RouteRow, ...] = ()
    tests_path: bool = False


@dataclass(slots=True)
class _DestinationRuleEntry:
    namespace: str
    host: str
    spec: DestinationRuleSpec
    selector: Mapping[str, str] | None
    export_to: frozenset[str]
    names: list[str] = field(default_factory=list)


class Snapshot:
    """An immutable, compiled view of one configuration for one local workload."""

    __slots__ = (
        "_default_cache",
        "_default_retry",
        "_destination_rules",
        "_dr_for_cache",
        "_dr_index",
        "_dr_keys",
        "_endpoint_cache",
        "_exact",
        "_known_hosts",
        "_policy_cache",
        "_resolve_cache",
        "_version",
        "_wildcards",
        "config",
        "domain",
        "mesh",
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
        self._exact: dict[str, _VirtualHost] = {}
        self._wildcards: list[tuple[str, _VirtualHost]] = []
        self._known_hosts: set[str] = set()
        self._destination_rules: dict[str, list[_DestinationRuleEntry]] = {}
        # Per namespace: entries by host (in precedence order) and the wildcard entries, built once all rules
        # are in, so that a lookup does not scan every rule.
        self._dr_index: dict[str, tuple[dict[str, list[_DestinationRuleEntry]], list[_DestinationRuleEntry]]]
        self._dr_index = {}
        self._dr_keys: dict[tuple[str, str, frozenset[str], bool], _DestinationRuleEntry] = {}
        self._dr_for_cache: dict[str, _DestinationRuleEntry | None] = {}
        self._default_retry = _retry_policy(mesh.default_http_retry_policy)
        self._default_cache: dict[tuple[str, int], RouteDecision] = {}
        self._resolve_cache: dict[str, str] = {}
        self._endpoint_cache: dict[tuple[str, str, int | None], tuple[str, int]] = {}
        self._policy_cache: dict[
            tuple[str, str | None, int | None], tuple[TrafficPolicy | None, str | None]
        ] = {}
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
        for se in self.config.of_kind(ServiceEntry):
            for h in se.spec.hosts:
                self._known_hosts.add(resolve_config_host(h, ns_of(se), self.domain))
        for dr in self.config.of_kind(DestinationRule):
            self._add_destination_rule(dr, ns_of(dr))
        self._index_destination_rules()
        services = sorted(
            (vs for vs in self.config.of_kind(VirtualService) if self._vs_applies(vs, ns_of(vs))),
            key=_creation_order,
        )
        for vs in services:
            ns = ns_of(vs)
            vhost: _VirtualHost | None = None
            for h in vs.spec.hosts:
                fqdn = resolve_config_host(h, ns, self.domain)
                taken = fqdn in self._exact or any(p == fqdn for p, _ in self._wildcards)
                if taken:
                    continue  # Istio: the oldest VirtualService for a host wins
                if vhost is None:
                    vhost = self._compile_virtual_service(vs, ns, fqdn)
                if is_wildcard(fqdn):
                    self._wildcards.append((fqdn, vhost))
                else:
                    self._exact[fqdn] = vhost
                    self._known_hosts.add(fqdn)
        # Longest wildcard suffix first: the most specific wins.
        self._wildcards.sort(key=lambda item: -len(item[0]))

    def _vs_applies(self, vs: VirtualService, ns: str) -> bool:
        gateways = vs.spec.gateways
        if gateways and _MESH not in gateways:
            return False
        return _visible(vs.spec.export_to, ns, self.workload.namespace)

    def _compile_virtual_service(self, vs: VirtualService, ns: str, host: str) -> _VirtualHost:
        name = f"{ns}/{vs.name}"
        vs_gateways = frozenset(vs.spec.gateways) if vs.spec.gateways else frozenset({_MESH})
        routes: list[_CompiledRoute] = []
        for i, http in enumerate(vs.spec.http):
            matches: Iterable[tuple[int | None, HTTPMatchRequest | None]]
            matches = enumerate(http.match) if http.match else [(None, None)]
            catch_all = False
            for j, m in matches:
                if m is not None and not self._source_matches(m, vs_gateways):
                    continue
                prefix, exact, predicate = _split_match(m) if m is not None else (None, None, None)
                decision = self._compile_decision(http, m, i, j, name, ns, host)
                port = m.port if m is not None and m.port else None
                routes.append(_CompiledRoute(port, predicate, decision, prefix, exact))
                if predicate is None and prefix is None and exact is None and port is None:
                    catch_all = True
                    break
            if catch_all:
                break  # later routes can never match
        no_route = RouteDecision(host=host, action=Action.NO_ROUTE, virtual_service=name)
        table = tuple((r.port, r.uri_prefix, r.uri_exact, r.match, r.decision) for r in routes)
        tests_path = any(r.uri_prefix is not None or r.uri_exact is not None for r in routes)
        return _VirtualHost(name, tuple(routes), no_route, table, tests_path)

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
        cumulative: list[float] = []
        total = 0.0
        for d in destinations:
            total += d.weight
            cumulative.append(total)
        timeout = http.timeout.total_seconds() if http.timeout is not None else None
        return RouteDecision(
            action=Action.ROUTE,
            destinations=destinations,
            cumulative=tuple(cumulative),
            timeout=timeout or None,  # 0s means no timeout, as in Envoy
            retries=_retry_policy(
                http.retries if http.retries is not None else self.mesh.default_http_retry_policy
            ),
            fault=_fault(http),
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
    ) -> WeightedDestination:
        host = resolve_config_host(dest.host or "", ns, self.domain)
        port = dest.port.number if dest.port is not None and dest.port.number else None
        policy, dr_name = self.traffic_policy_with_source(host, dest.subset or None, port)
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

    # --- DestinationRules --------------------------------------------------------------------------------

    def _add_destination_rule(self, dr: DestinationRule, ns: str) -> None:
        spec = dr.spec
        host = resolve_config_host(spec.host or "", ns, self.domain)
        selector = dict(spec.workload_selector.match_labels) if spec.workload_selector is not None else None
        if selector is not None and any(self.workload.labels.get(k) != v for k, v in selector.items()):
            return  # selects other workloads
        export = frozenset(ns if e == "." else e for e in spec.export_to) or frozenset({"*"})
        key = (ns, host, export, selector is None)
        entry = self._dr_keys.get(key)
        if entry is not None:
            entry.spec = _merge_destination_rules(entry.spec, spec)
            entry.names.append(dr.name)
            return
        entry = _DestinationRuleEntry(ns, host, spec, selector, export, [dr.name])
        self._dr_keys[key] = entry
        self._destination_rules.setdefault(ns, []).append(entry)

    def _index_destination_rules(self) -> None:
        for ns, entries in self._destination_rules.items():
            # Rules with a workload selector take precedence over those without, in the same namespace.
            entries.sort(key=lambda e: e.selector is None)
            by_host: dict[str, list[_DestinationRuleEntry]] = {}
            for e in entries:
                by_host.setdefault(e.host, []).append(e)
            self._dr_index[ns] = (by_host, [e for e in entries if is_wildcard(e.host)])

    def _destination_rule_for(self, host: str) -> _DestinationRuleEntry | None:
        if host in self._dr_for_cache:
            return self._dr_for_cache[host]
        entry = self._find_destination_rule(host)
        if len(self._dr_for_cache) >= _DEFAULT_CACHE_LIMIT:
            self._dr_for_cache.clear()
        self._dr_for_cache[host] = entry
        return entry

    def _find_destination_rule(self, host: str) -> _DestinationRuleEntry | None:
        # Istio's lookup order: the client's namespace, then the service's namespace, then any namespace the
        # rule is exported to; within each, an exact host beats the most specific wildcard.
        client_ns = self.workload.namespace
        service_ns = _service_namespace(host, self.domain)
        order = [client_ns]
        if service_ns and service_ns != client_ns:
            order.append(service_ns)
        order.extend(ns for ns in sorted(self._destination_rules) if ns not in order)
        visible_to = {"*", client_ns}
        for ns in order:
            index = self._dr_index.get(ns)
            if index is None:
                continue
            by_host, wildcards = index
            local = ns == client_ns
            for entry in by_host.get(host, ()):
                if local or visible_to & entry.export_to:
                    return entry
            best: _DestinationRuleEntry | None = None
            for entry in wildcards:
                if not host_matches(entry.host, host) or not (local or visible_to & entry.export_to):
                    continue
                if best is None or len(entry.host) > len(best.host):
                    best = entry
            if best is not None:
                return best
        return None

    def traffic_policy(
        self, host: str, subset: str | None = None, port: int | None = None
    ) -> TrafficPolicy | None:
        """The DestinationRule traffic policy for ``host`` (FQDN), ``subset`` and ``port``, merged as Istio
        merges it: port-level settings replace the top level wholesale, then the subset's policy overrides
        field by field (its own port-level settings again wholesale). ``None`` when no rule applies."""
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
        """The FQDN a caller in this workload's namespace means by ``host`` (no port)."""
        cached = self._resolve_cache.get(host)
        if cached is not None:
            return cached
        candidates = call_host_candidates(host, self.workload.namespace, self.domain)
        fqdn = candidates[-1] if len(candidates) > 1 else candidates[0]
        for c in candidates:
            if c in self._known_hosts or c in self._exact:
                fqdn = c
                break
        if len(self._resolve_cache) >= _DEFAULT_CACHE_LIMIT:
            self._resolve_cache.clear()
        self._resolve_cache[host] = fqdn
        return fqdn

    def route(self, call: Call) -> RouteDecision:
        """The routing decision for ``call``: the first matching route of the VirtualService for its host, or
        the default route when no VirtualService covers the host, or ``NO_ROUTE`` when one does but no route
        matches (Envoy's ``NR``, HTTP 404)."""
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
            for pattern, vh in self._wildcards:
                if host_matches(pattern, host):
                    vhost = vh
                    break
            else:
                return self._default_route(host, port)
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

    def _default_route(self, host: str, port: int) -> RouteDecision:
        key = (host, port)
        decision = self._default_cache.get(key)
        if decision is None:
            dest = self._weighted(Destination(host=host), self.workload.namespace, 100.0)
            decision = RouteDecision(
                host=host,
                action=Action.ROUTE,
                destinations=(dest,),
                cumulative=(100.0,),
                retries=self._default_retry,
            )
            if len(self._default_cache) >= _DEFAULT_CACHE_LIMIT:
                self._default_cache.clear()
            self._default_cache[key] = decision
        return decision


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
    test = _string_predicate(sm)
    if test is None:
        return lambda c: name in c.query

    def query(c: Call) -> bool:
        v = c.query.get(name)
        return v is not None and test(v)

    return query


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


def _retry_policy(retry: HTTPRetry | None) -> RetryPolicy:
    if retry is None:
        return RetryPolicy(attempts=2, retry_on=DEFAULT_RETRY_ON)
    attempts = retry.attempts or 0
    if attempts <= 0:
        return RetryPolicy(attempts=0, retry_on=())
    retry_on = DEFAULT_RETRY_ON
    codes: frozenset[int] = frozenset()
    if retry.retry_on:
        parts = [p.strip() for p in retry.retry_on.split(",") if p.strip()]
        code_list = [int(p) for p in parts if p.isdigit()]
        names = [p for p in parts if not p.isdigit()]
        if code_list and "retriable-status-codes" not in names:
            names.append("retriable-status-codes")
        retry_on, codes = tuple(names), frozenset(code_list)
    return RetryPolicy(
        attempts=attempts,
        retry_on=retry_on,
        retriable_status_codes=codes,
        per_try_timeout=retry.per_try_timeout.total_seconds() if retry.per_try_timeout is not None else None,
        backoff=retry.backoff.total_seconds() if retry.backoff is not None else None,
        ignore_previous_hosts=retry.retry_ignore_previous_hosts is not False,
    )


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


def _creation_order(r: Resource) -> tuple[str, str, str]:
    ts = r.metadata.creation_timestamp
    return (str(ts) if ts is not None else "", r.name, r.namespace or "")


def _config_version(config: ConfigSet) -> str:
    h = hashlib.sha256()
    for r in config.resources:
        h.update(repr(sorted(resource_to_dict(r).items())).encode())
    return h.hexdigest()[:16]
