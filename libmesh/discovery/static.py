"""The static registry: services and endpoints declared by ServiceEntry and WorkloadEntry resources.

Everything is computed once, in :meth:`StaticRegistry.from_config`, as Istio's ServiceEntry controller and
sidecar scope would compute it for one client namespace; a lookup is then a dict access::

    registry = StaticRegistry.from_config(load_paths(["mesh/"]), client_namespace="default")
    registry.endpoints("reviews.default.svc.cluster.local", 9080)
    # (Endpoint('127.0.0.1', 9081, labels={'app': 'reviews', 'version': 'v1'}), ...)

How a ServiceEntry becomes services and endpoints (Istio's rules):

* every host (a short name expands in the entry's namespace, as elsewhere in libmesh) with every port is one
  service, looked up by ``(host, port)``;
* its endpoints are ``spec.endpoints``, or with ``workloadSelector`` the WorkloadEntries of the entry's
  namespace whose labels (``spec.labels`` with ``metadata.labels`` on top) match;
* an endpoint's port is, in order: none for a ``unix://`` address (port 0), the endpoint's ``ports`` entry
  named like the service port, the service port's ``targetPort``, the service port number;
* resolution ``STATIC``: endpoints are IP addresses or sockets. ``DNS`` and ``DNS_ROUND_ROBIN``: endpoint
  addresses may be host names, kept as written for the transport to resolve; without endpoints and without
  a selector the host itself, as written in the entry, is the one endpoint (Envoy's ``STRICT_DNS`` cluster
  on that name). ``DNS_ROUND_ROBIN`` keeps a single endpoint per port. WorkloadEntries whose address is a
  host name or a socket are only selected by DNS entries;
* resolution ``NONE`` is a passthrough: the service is known, with no endpoints. The caller then sends the
  request to the address it was given (the host it named, resolved by the system), on
  :attr:`ServiceInfo.destination_port`, the way Envoy's original-destination cluster does;
* a wildcard host (``*.example.com``) covers the concrete hosts under it that no exact host declares on
  that port. ``DYNAMIC_DNS`` (and a ``DNS`` wildcard with no endpoints, which validation rejects) connects
  to the concrete host itself.

Several ServiceEntries may name one host. Per host the client sees one namespace: its own if an entry
there is visible to it, else the one holding the oldest visible entry (Istio picks an arbitrary one). In that
namespace the oldest visible entry defines the service; a younger one adds the ports the oldest lacks when
both agree on resolution, metadata labels, workload selector and exportTo. The endpoints of a port are those
of every entry for the host in that namespace, oldest first, whether or not the entry is visible.

Visibility (``exportTo``) is applied when the registry is built, for one client namespace: ``*`` or none
exports everywhere, ``.`` to the entry's namespace, ``~`` nowhere, else to the namespaces named. A host the
client cannot see is unknown to its registry.

A WorkloadEntry with the annotation ``proxy.istio.io/health-checks-enabled: "true"`` serves only while its
``status.conditions`` hold ``Healthy`` ``True``, as in Istio. An endpoint with no address (reachable only
through another network's gateway) is left out: an in-process client cannot reach it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.loader import ConfigSet
from ..config.model.service_entry import ServiceEntryLocation, ServiceEntryResolution, ServicePort
from ..config.model.workload_entry import WorkloadEntrySpec
from ..config.resources import MeshConfig, Resource, ServiceEntry, WorkloadEntry
from ..routing.hosts import host_matches, is_wildcard, resolve_config_host
from .endpoint import Endpoint

__all__ = ["ServiceInfo", "StaticRegistry"]

_UNIX_PREFIX = "unix://"
_HEALTH_CHECKS_ANNOTATION = "proxy.istio.io/health-checks-enabled"
_LOCALITY_LABELS = ("topology.istio.io/locality", "istio-locality")
_DNS_RESOLUTIONS = frozenset({ServiceEntryResolution.DNS, ServiceEntryResolution.DNS_ROUND_ROBIN})
_CACHE_LIMIT = 4096
_NO_ENDPOINTS: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the registry knows about one service port, beyond its endpoints.

    ``host`` is the registry host (an FQDN, or the wildcard pattern that covered the looked-up host);
    ``service_entry`` is ``namespace/name`` of the ServiceEntry that declares the port. A ``STATIC`` or
    ``DNS`` service with no endpoints answers 503 (no healthy upstream); a ``NONE`` service is a passthrough
    (see :attr:`passthrough`)::

        info = registry.service("api.example.com", 443)
        if info.passthrough:
            connect(original_host, info.destination_port)
    """

    host: str
    port: int
    namespace: str
    service_entry: str
    resolution: ServiceEntryResolution
    port_name: str | None = None
    protocol: str | None = None
    target_port: int | None = None
    mesh_external: bool = True

    @property
    def passthrough(self) -> bool:
        """True for resolution ``NONE``: no endpoints; connect to the address the caller named."""
        return self.resolution is ServiceEntryResolution.NONE

    @property
    def destination_port(self) -> int:
        """The port a passthrough connection uses: ``targetPort`` when the port declares one, else the port."""
        return self.target_port or self.port


@dataclass(frozen=True, slots=True)
class _Wildcard:
    """A wildcard service on one port. ``dynamic`` services connect to the looked-up host itself."""

    pattern: str
    info: ServiceInfo
    endpoints: tuple[Endpoint, ...]
    dynamic: bool


_Entry = tuple[ServiceInfo, tuple[Endpoint, ...]]


class StaticRegistry:
    """A :class:`~libmesh.discovery.Registry` of the services ServiceEntries declare, as one client namespace
    sees them. Build it with :meth:`from_config`; it never changes (a new config means a new registry).

    ``endpoints`` and ``service`` take the host as the snapshot resolves it (a lowercase FQDN) and a service
    port. A known host asked for a port it does not declare is unknown (``None``): Istio builds a service's
    cluster and routes only for its declared ports, so such a call falls to the outbound traffic policy
    (passthrough under ``ALLOW_ANY``, 502 under ``REGISTRY_ONLY``).
    """

    __slots__ = ("_cache", "_exact", "_hosts", "_wildcards", "client_namespace", "domain")

    def __init__(
        self,
        entries: Iterable[_Entry] = (),
        wildcards: Iterable[_Wildcard] = (),
        *,
        client_namespace: str = "default",
        domain: str = "cluster.local",
    ) -> None:
        self.client_namespace = client_namespace
        self.domain = domain
        self._exact: dict[tuple[str, int], _Entry] = {
            (info.host, info.port): (info, eps) for info, eps in entries
        }
        by_port: dict[int, list[_Wildcard]] = {}
        for w in wildcards:
            by_port.setdefault(w.info.port, []).append(w)
        # Longest suffix first: the most specific pattern covers a host, as Envoy picks virtual hosts.
        self._wildcards = {p: sorted(ws, key=lambda w: -len(w.pattern)) for p, ws in by_port.items()}
        self._hosts = frozenset(
            {h for h, _ in self._exact} | {w.pattern for ws in by_port.values() for w in ws}
        )
        self._cache: dict[tuple[str, int], _Entry | None] = {}

    @classmethod
    def from_config(
        cls,
        config: ConfigSet,
        *,
        namespace: str | None = None,
        domain: str | None = None,
        client_namespace: str | None = None,
    ) -> StaticRegistry:
        """Build the registry from the ServiceEntry and WorkloadEntry resources of ``config``.

        ``namespace`` is where resources that name none live and ``domain`` the cluster domain (defaults:
        the config's MeshConfig ``defaultNamespace`` and ``clusterDomainSuffix``, else ``"default"`` and
        ``"cluster.local"``, as :meth:`Snapshot.compile <libmesh.routing.snapshot.Snapshot.compile>` reads
        them). ``client_namespace`` is the namespace of the workload that calls (default: ``namespace``);
        ``exportTo`` is applied for it.
        """
        meshes = config.of_kind(MeshConfig)
        mesh = meshes[0].spec if meshes else None
        ns = namespace or (mesh.default_namespace if mesh else None) or "default"
        dom = domain or (mesh.cluster_domain_suffix if mesh else None) or "cluster.local"
        return _Builder(config, ns, dom, client_namespace or ns).build()

    # --- the Registry protocol ------------------------------------------------------------------------------

    def endpoints(self, host: str, port: int) -> Sequence[Endpoint] | None:
        """The endpoints of ``host`` on service port ``port``: ``None`` when the registry does not know that
        host and port; empty for a passthrough (``NONE``) service or one without endpoints."""
        entry = self._exact.get((host, port))
        if entry is None:
            entry = self._covered(host, port)
            if entry is None:
                return None
        return entry[1]

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Static endpoints never change, so ``callback`` is never called; returns a no-op unsubscribe."""
        return _unsubscribe

    # --- more lookups -------------------------------------------------------------------------------------

    def service(self, host: str, port: int) -> ServiceInfo | None:
        """The service behind ``host`` and ``port`` (resolution, port name, target port...), or ``None``."""
        entry = self._exact.get((host, port))
        if entry is None:
            entry = self._covered(host, port)
            if entry is None:
                return None
        return entry[0]

    def known_hosts(self) -> frozenset[str]:
        """Every host visible to the client namespace: FQDNs, and wildcard patterns (starting with ``*``)."""
        return self._hosts

    def services(self) -> tuple[ServiceInfo, ...]:
        """Every visible service port, exact hosts then wildcards, sorted by host and port (for tools)."""
        exact = sorted((info for info, _ in self._exact.values()), key=lambda i: (i.host, i.port))
        wild = sorted((w.info for ws in self._wildcards.values() for w in ws), key=lambda i: (i.host, i.port))
        return (*exact, *wild)

    def __repr__(self) -> str:
        return f"StaticRegistry(client_namespace={self.client_namespace!r}, hosts={len(self._hosts)})"

    def _covered(self, host: str, port: int) -> _Entry | None:
        """The entry of the wildcard service covering ``host`` on ``port``, cached per host and port."""
        patterns = self._wildcards.get(port)
        if patterns is None:
            return None
        key = (host, port)
        try:
            return self._cache[key]
        except KeyError:
            pass
        entry: _Entry | None = None
        for w in patterns:
            if host_matches(w.pattern, host):
                if w.dynamic:
                    entry = (w.info, (Endpoint(host, w.info.destination_port),))
                else:
                    entry = (w.info, w.endpoints)
                break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = entry
        return entry


def _unsubscribe() -> None:
    """Nothing to undo: a static registry keeps no subscribers."""


# --- building -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Declaration:
    """One ServiceEntry's view of one of its hosts."""

    se: ServiceEntry
    namespace: str
    order: tuple[str, str, str]
    written_host: str
    resolution: ServiceEntryResolution
    visible: bool
    # What must agree for a younger entry to add its ports to the oldest one's service (Istio's
    # canMergeServices: same namespace, resolution, labels, selector and exportTo).
    merge_key: tuple[Any, ...]

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.se.name}"


@dataclass(slots=True)
class _Workload:
    """A WorkloadEntry with its merged labels, ready to be selected."""

    name: str
    spec: WorkloadEntrySpec
    labels: dict[str, str]
    # A host name or socket address: only DNS entries select it (Istio's DNSServiceEntryOnly).
    by_name_only: bool


class _Builder:
    """Turns a ConfigSet into a :class:`StaticRegistry` for one client namespace."""

    def __init__(self, config: ConfigSet, namespace: str, domain: str, client_ns: str) -> None:
        self.config = config
        self.namespace = namespace
        self.domain = domain
        self.client_ns = client_ns
        self.workloads: dict[str, list[_Workload]] = {}

    def build(self) -> StaticRegistry:
        self._index_workloads()
        # host -> namespace -> declarations
        by_host: dict[str, dict[str, list[_Declaration]]] = {}
        for se in self.config.of_kind(ServiceEntry):
            ns = se.namespace or self.namespace
            spec = se.spec
            resolution = spec.resolution or ServiceEntryResolution.NONE
            export = _export_set(spec.export_to, ns)
            visible = _exported_to(export, self.client_ns)
            selector = dict(spec.workload_selector.labels) if spec.workload_selector is not None else None
            merge_key = (resolution, _frozen(se.metadata.labels), _frozen(selector), export)
            seen: set[str] = set()
            for written in spec.hosts:
                fqdn = resolve_config_host(written, ns, self.domain)
                if not fqdn or fqdn in seen:
                    continue
                seen.add(fqdn)
                decl = _Declaration(
                    se, ns, _creation_order(se, ns), written.strip().lower(), resolution, visible, merge_key
                )
                by_host.setdefault(fqdn, {}).setdefault(ns, []).append(decl)
        entries: list[_Entry] = []
        wildcards: list[_Wildcard] = []
        for host, namespaces in by_host.items():
            chosen = self._choose_namespace(namespaces)
            if chosen is None:
                continue
            decls = sorted(namespaces[chosen], key=lambda d: d.order)
            for info, endpoints, dynamic in self._services(host, decls):
                if is_wildcard(host):
                    wildcards.append(_Wildcard(host, info, endpoints, dynamic))
                elif dynamic:
                    entries.append((info, (Endpoint(host, info.destination_port),)))
                else:
                    entries.append((info, endpoints))
        return StaticRegistry(entries, wildcards, client_namespace=self.client_ns, domain=self.domain)

    def _index_workloads(self) -> None:
        for we in self.config.of_kind(WorkloadEntry):
            if not _healthy(we):
                continue
            spec: WorkloadEntrySpec = we.spec
            # Istio merges metadata labels over the spec's, so either place works for selectors.
            labels = {**spec.labels, **we.metadata.labels}
            address = spec.address or ""
            by_name_only = address.startswith(_UNIX_PREFIX) or (bool(address) and not _is_ip(address))
            wl = _Workload(we.name, spec, labels, by_name_only)
            self.workloads.setdefault(we.namespace or self.namespace, []).append(wl)
        for wls in self.workloads.values():
            wls.sort(key=lambda w: w.name)

    def _choose_namespace(self, namespaces: Mapping[str, list[_Declaration]]) -> str | None:
        """The one namespace whose entries define the host for the client (see the module docstring)."""
        visible = [ns for ns, decls in namespaces.items() if any(d.visible for d in decls)]
        if not visible:
            return None
        if self.client_ns in visible:
            return self.client_ns
        return min(visible, key=lambda ns: min(d.order for d in namespaces[ns] if d.visible))

    def _services(
        self, host: str, decls: Sequence[_Declaration]
    ) -> Iterable[tuple[ServiceInfo, tuple[Endpoint, ...], bool]]:
        """Per port of the host's service: its info, its endpoints, and whether it is dynamic (connects to
        the looked-up host). ``decls`` are the namespace's declarations, oldest first."""
        shown = [d for d in decls if d.visible]
        base = shown[0]
        ports: dict[int, tuple[ServicePort, _Declaration]] = {}
        for d in shown:
            if d is not base and d.merge_key != base.merge_key:
                continue
            for p in d.se.spec.ports:
                if p.number is not None and p.number not in ports:
                    ports[p.number] = (p, d)
        endpoints = self._endpoints_by_port(host, decls)
        for number, (p, d) in ports.items():
            info = ServiceInfo(
                host=host,
                port=number,
                namespace=d.namespace,
                service_entry=d.name,
                resolution=base.resolution,
                port_name=p.name,
                protocol=p.protocol,
                target_port=p.target_port or None,
                mesh_external=d.se.spec.location is not ServiceEntryLocation.MESH_INTERNAL,
            )
            if base.resolution is ServiceEntryResolution.NONE:
                yield info, _NO_ENDPOINTS, False
            elif base.resolution is ServiceEntryResolution.DYNAMIC_DNS or _resolves_host(base, host):
                yield info, _NO_ENDPOINTS, True
            else:
                yield info, tuple(endpoints.get(number, ())), False

    def _endpoints_by_port(self, host: str, decls: Sequence[_Declaration]) -> dict[int, list[Endpoint]]:
        """Endpoints of every entry for the host in one namespace, by service port number (Istio merges the
        instances of all entries with the same namespace and host)."""
        out: dict[int, list[Endpoint]] = {}
        for d in decls:
            round_robin = d.resolution is ServiceEntryResolution.DNS_ROUND_ROBIN
            for number, ep in self._instances(host, d):
                if round_robin and number in out:
                    continue  # Envoy's LOGICAL_DNS cluster takes a single address per port
                out.setdefault(number, []).append(ep)
        return out

    def _instances(self, host: str, d: _Declaration) -> Iterable[tuple[int, Endpoint]]:
        spec = d.se.spec
        if d.resolution in (ServiceEntryResolution.NONE, ServiceEntryResolution.DYNAMIC_DNS):
            return
        dns = d.resolution in _DNS_RESOLUTIONS
        if spec.workload_selector is not None:
            selector = spec.workload_selector.labels
            for wl in self.workloads.get(d.namespace, ()):
                if wl.by_name_only and not dns:
                    continue
                if all(wl.labels.get(k) == v for k, v in selector.items()):
                    yield from _port_instances(wl.spec, wl.labels, spec.ports)
        elif spec.endpoints:
            for we in spec.endpoints:
                yield from _port_instances(we, dict(we.labels), spec.ports)
        elif dns and not is_wildcard(host):
            # No endpoints: Envoy resolves the host as the entry wrote it (a short name keeps its search path).
            for p in spec.ports:
                if p.number is not None:
                    yield p.number, Endpoint(d.written_host, p.target_port or p.number)


def _port_instances(
    we: WorkloadEntrySpec, labels: dict[str, str], ports: Sequence[ServicePort]
) -> Iterable[tuple[int, Endpoint]]:
    """One endpoint per service port for a workload; none for a workload without an address."""
    address = we.address
    if not address:
        return
    locality = we.locality or _locality_label(labels)
    for p in ports:
        if p.number is None:
            continue
        if address.startswith(_UNIX_PREFIX):
            target = 0  # a socket has no port
        else:
            mapped = we.ports.get(p.name) if p.name is not None else None
            target = mapped or p.target_port or p.number
        yield (
            p.number,
            Endpoint(
                address,
                target,
                labels=labels,
                weight=we.weight or 1,
                service_account=we.service_account,
                locality=locality,
                network=we.network,
            ),
        )


def _resolves_host(d: _Declaration, host: str) -> bool:
    """A DNS wildcard with neither endpoints nor selector: each concrete host resolves itself. Validation
    rejects it; connecting to the named host is the only reading that can work."""
    spec = d.se.spec
    return (
        is_wildcard(host)
        and d.resolution in _DNS_RESOLUTIONS
        and not spec.endpoints
        and spec.workload_selector is None
    )


def _locality_label(labels: Mapping[str, str]) -> str | None:
    for key in _LOCALITY_LABELS:
        value = labels.get(key)
        if value:
            # Label values cannot hold "/", so Istio writes region.zone.subzone there.
            return value if "/" in value else value.replace(".", "/")
    return None


def _export_set(export_to: Sequence[str], namespace: str) -> frozenset[str]:
    """``exportTo`` as a set of namespaces, ``*`` (everyone) or empty (no one)."""
    if not export_to or "*" in export_to:
        return frozenset({"*"})
    if "~" in export_to:
        return frozenset()
    return frozenset(namespace if e == "." else e for e in export_to)


def _exported_to(export: frozenset[str], namespace: str) -> bool:
    return "*" in export or namespace in export


def _healthy(we: WorkloadEntry) -> bool:
    """Istio's WorkloadEntry health: with health checks enabled, serve only once reported ``Healthy``."""
    enabled = we.metadata.annotations.get(_HEALTH_CHECKS_ANNOTATION, "")
    if enabled.strip().lower() not in ("1", "t", "true"):
        return True
    status = we.status if isinstance(we.status, Mapping) else {}
    conditions = status.get("conditions")
    if not isinstance(conditions, Sequence) or isinstance(conditions, str):
        return False
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == "Healthy":
            return str(c.get("status", "")).lower() == "true"
    return False


def _creation_order(r: Resource, namespace: str) -> tuple[str, str, str]:
    # Istio's order for services of one host: creation time, then namespace, then name.
    ts = r.metadata.creation_timestamp
    return (str(ts) if ts is not None else "", namespace, r.name)


def _frozen(labels: Mapping[str, str] | None) -> frozenset[tuple[str, str]] | None:
    return None if labels is None else frozenset(labels.items())


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return True
