"""Consul as a service registry, and registering this workload in Consul.

:class:`ConsulRegistry` follows the health of Consul services with blocking queries (one background thread
per service, py-consul's sync client) and answers the mesh's endpoint lookups from a table it rebuilds on
each change, so a lookup on the request path is one dict access::

    consul_registry = ConsulRegistry(address="127.0.0.1:8500", namespace="default")
    static = StaticRegistry.from_config(config, namespace="default")
    mesh = Mesh(config, workload=workload, registry=ChainedRegistry(static, consul_registry))

Which instances serve: only those whose checks all pass (``/v1/health/service/<name>?passing``); an
instance whose check turns warning or critical, or that is deregistered, leaves the table on the next
blocking-query answer (milliseconds after Consul learns of it).

Names (see :func:`kubernetes_hosts`): Consul service ``reviews`` is the mesh host
``reviews.<namespace>.svc.<domain>``, the name Istio YAML written for Kubernetes resolves ``reviews`` to, and
also ``reviews.service.consul``, the host Istio's former Consul adapter used (and Consul's DNS name). The
namespace is the instance's ``k8s-namespace`` meta (what consul-k8s catalog sync sets), else the registry's
``namespace``. Pass ``hosts=`` to map names differently.

Labels (see :func:`endpoint_labels`): an endpoint's labels are, by increasing precedence, its plain tags
(``canary`` becomes ``canary: "true"``), its ``key=value`` tags (and ``key|value``, the form Istio's Consul
adapter read), and its service meta. So an instance registered with ``Meta: {version: v2}`` or with tag
``version=v2`` is in a DestinationRule subset ``labels: {version: v2}``.

Ports: a Consul instance has one port. The mesh asks for a service port (the one in the URL, or a
ServiceEntry port); every instance answers for any port of its host, with its own ``Port`` as the port to
connect to, the way a ServiceEntry ``targetPort`` works. Meta ``protocol`` becomes the port protocol (as in
Istio's adapter).

When Consul is unreachable the watch threads retry with exponential backoff and jitter (``backoff_base``
doubling up to ``backoff_max`` seconds) while the table keeps the last endpoints they saw. How long a
service has gone without a confirmed view is :meth:`ConsulRegistry.staleness`, and the Prometheus gauge
``libmesh_registry_staleness_seconds{registry="consul",service="<name>"}``.

:func:`register_workload` registers this process in Consul (name, address, port, labels as meta, an HTTP,
gRPC or TTL check) and returns a handle whose ``close()`` deregisters it; adapters call it at startup and
close it at shutdown.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..config.model.service_entry import ServiceEntryResolution
from ..workload import Workload
from .chained import ChainedRegistry
from .endpoint import Endpoint, Subscribers
from .static import ServiceInfo

__all__ = [
    "ChainedRegistry",
    "ConsulRegistry",
    "HealthCheck",
    "RegisteredWorkload",
    "Registration",
    "endpoint_labels",
    "kubernetes_hosts",
    "register_workload",
    "register_workload_async",
]

log = logging.getLogger("libmesh.discovery.consul")

#: Maps a Consul service name and one instance's meta to the mesh hosts that instance serves.
HostMapper = Callable[[str, Mapping[str, str]], Sequence[str]]

_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_NAMESPACE_META = "k8s-namespace"
_PROTOCOL_META = "protocol"
_EXTERNAL_META = "external"


def kubernetes_hosts(
    namespace: str = "default", domain: str = "cluster.local", consul_domain: str | None = "consul"
) -> HostMapper:
    """The default name mapping: Consul service ``reviews`` is ``reviews.<ns>.svc.<domain>`` (``<ns>`` from
    the instance's ``k8s-namespace`` meta, else ``namespace``) and, unless ``consul_domain`` is ``None``,
    ``reviews.service.<consul_domain>``.

    The first form is what Istio YAML written for Kubernetes means by ``reviews`` or
    ``reviews.default.svc.cluster.local``, so such YAML applies unchanged to Consul services::

        hosts = kubernetes_hosts("prod")
        hosts("reviews", {})   # ['reviews.prod.svc.cluster.local', 'reviews.service.consul']
    """

    def hosts(name: str, meta: Mapping[str, str]) -> Sequence[str]:
        ns = meta.get(_NAMESPACE_META) or namespace
        out = [f"{name}.{ns}.svc.{domain}".lower()]
        if consul_domain:
            out.append(f"{name}.service.{consul_domain}".lower())
        return out

    return hosts


def endpoint_labels(tags: Iterable[str], meta: Mapping[str, str]) -> dict[str, str]:
    """An instance's endpoint labels from its Consul tags and service meta.

    Plain tags give ``tag: "true"``; ``key=value`` and ``key|value`` tags give ``key: value``; meta entries
    are copied. Later kinds win on a clash (meta over ``key=value`` tags over plain tags)::

        endpoint_labels(["canary", "version=v1"], {"version": "v2"})
        # {'canary': 'true', 'version': 'v2'}
    """
    plain: dict[str, str] = {}
    pairs: dict[str, str] = {}
    for tag in tags:
        for sep in ("=", "|"):
            if sep in tag:
                key, _, value = tag.partition(sep)
                if key:
                    pairs[key] = value
                break
        else:
            if tag:
                plain[tag] = "true"
    return {**plain, **pairs, **meta}


# --- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HostInfo:
    """What a host's instances say about the service (the first instance seen decides)."""

    service: str
    namespace: str
    protocol: str | None
    external: bool


@dataclass(slots=True)
class _WatchState:
    """One watched Consul service: its instances' endpoints by host, and its sync health."""

    name: str
    by_host: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    infos: dict[str, _HostInfo] = field(default_factory=dict)
    # Monotonic time since which the view is unconfirmed (None: the blocking-query loop is healthy).
    stale_since: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    synced: threading.Event = field(default_factory=threading.Event)


class ConsulRegistry:
    """A :class:`~libmesh.discovery.Registry` of the passing instances of Consul services.

    ``address`` is the agent's ``host:port`` or URL (default: ``CONSUL_HTTP_ADDR``, else
    ``127.0.0.1:8500``); ``token`` an ACL token (default: ``CONSUL_HTTP_TOKEN``). ``services`` names the
    Consul services to follow; without it the registry follows the catalog and watches every service in it
    but ``consul`` itself. ``namespace``/``domain`` feed the default name mapping (:func:`kubernetes_hosts`),
    ``hosts`` replaces it. ``wait`` is the blocking-query wait, ``timeout`` the connect/answer timeout on
    top of it; failures back off from ``backoff_base`` doubling to ``backoff_max`` seconds, with jitter.

    The constructor starts the watch threads and waits up to ``ready_timeout`` seconds for a first answer
    for every service (a mesh asking before that would treat the hosts as unknown); with Consul down it
    returns anyway and the hosts appear once Consul answers. Staleness is published on
    ``metrics_registry`` (default: prometheus_client's process-wide registry; ``None`` to skip; see
    :meth:`register_metrics`)::

        registry = ConsulRegistry(address=server.http_addr, services=["reviews", "ratings"])
        registry.endpoints("reviews.default.svc.cluster.local", 9080)
        registry.staleness("reviews")   # 0.0 while following Consul
        registry.close()
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        services: Iterable[str] | None = None,
        namespace: str = "default",
        domain: str = "cluster.local",
        hosts: HostMapper | None = None,
        token: str | None = None,
        wait: str = "10s",
        timeout: float = 5.0,
        backoff_base: float = 0.1,
        backoff_max: float = 10.0,
        min_query_interval: float = 0.05,
        ready_timeout: float = 5.0,
        metrics_registry: Any = "default",
        exclude: Iterable[str] = ("consul",),
    ) -> None:
        self.host, self.port, self.scheme = _parse_address(address or os.environ.get("CONSUL_HTTP_ADDR"))
        self.token = token if token is not None else os.environ.get("CONSUL_HTTP_TOKEN")
        self.namespace = namespace
        self.domain = domain
        self._hosts = hosts or kubernetes_hosts(namespace, domain)
        self.wait = wait
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.min_query_interval = min_query_interval
        self._exclude = frozenset(exclude)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rand = random.Random()
        self._subscribers = Subscribers()
        self._watches: dict[str, _WatchState] = {}
        self._threads: dict[str, threading.Thread] = {}
        # The hot-path tables, replaced whole on each change (readers never see a half-built one).
        self._table: dict[str, tuple[Endpoint, ...]] = {}
        self._infos: dict[str, _HostInfo] = {}
        self._service_cache: dict[tuple[str, int], ServiceInfo] = {}
        self._catalog_synced = threading.Event()
        self._started = time.monotonic()
        if metrics_registry == "default":
            self.register_metrics()
        elif metrics_registry is not None:
            self.register_metrics(metrics_registry)
        if services is not None:
            for name in services:
                self._watch(name)
            self._catalog_synced.set()
        else:
            t = threading.Thread(target=self._follow_catalog, name="consul-catalog", daemon=True)
            self._threads[""] = t
            t.start()
        if ready_timeout > 0:
            self.wait_ready(ready_timeout)

    # --- the Registry protocol ------------------------------------------------------------------------------

    def endpoints(self, host: str, port: int) -> Sequence[Endpoint] | None:
        """The passing instances serving ``host`` (any port: each instance's own port is its target), or
        ``None`` when no Consul service maps to ``host``."""
        return self._table.get(host)

    def service(self, host: str, port: int) -> ServiceInfo | None:
        """A :class:`ServiceInfo` for ``host`` and ``port`` (resolution ``STATIC``, ``service_entry``
        ``consul/<name>``), or ``None`` when no Consul service maps to ``host``."""
        key = (host, port)
        info = self._service_cache.get(key)
        if info is not None:
            return info
        hi = self._infos.get(host)
        if hi is None:
            return None
        info = ServiceInfo(
            host=host,
            port=port,
            namespace=hi.namespace,
            service_entry=f"consul/{hi.service}",
            resolution=ServiceEntryResolution.STATIC,
            protocol=hi.protocol,
            mesh_external=hi.external,
        )
        self._service_cache[key] = info
        return info

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from a watch thread) after each change of endpoints; returns the unsubscribe."""
        return self._subscribers.add(callback)

    # --- status ---------------------------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until every followed service has had a first answer from Consul; False on timeout."""
        deadline = time.monotonic() + timeout
        if not self._catalog_synced.wait(max(0.0, deadline - time.monotonic())):
            return False
        with self._lock:
            watches = list(self._watches.values())
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in watches)

    def services(self) -> tuple[str, ...]:
        """The Consul services followed, sorted."""
        with self._lock:
            return tuple(sorted(self._watches))

    def known_hosts(self) -> frozenset[str]:
        """Every mesh host some passing or known instance maps to."""
        return frozenset(self._table)

    def staleness(self, service: str) -> float:
        """Seconds the view of ``service`` has gone unconfirmed: 0 while its blocking queries succeed;
        after a failure, the time since the last successful answer (or since the watch began, if none).
        ``KeyError`` for a service not followed."""
        with self._lock:
            w = self._watches[service]
        since = w.stale_since
        return 0.0 if since is None else time.monotonic() - since

    def staleness_by_service(self) -> dict[str, float]:
        """:meth:`staleness` of every followed service."""
        now = time.monotonic()
        with self._lock:
            watches = list(self._watches.values())
        return {w.name: (0.0 if w.stale_since is None else now - w.stale_since) for w in watches}

    def status(self) -> dict[str, Any]:
        """What a status page shows: the agent, and per followed service its staleness and last error."""
        staleness = self.staleness_by_service()
        return {
            "consul": f"{self.scheme}://{self.host}:{self.port}",
            "services": {
                name: {"staleness_seconds": round(age, 3), "last_error": self.last_error(name)}
                for name, age in sorted(staleness.items())
            },
        }

    def last_error(self, service: str) -> str | None:
        """The error of the last failed query for ``service`` while it is stale, else ``None``."""
        with self._lock:
            w = self._watches[service]
        return w.last_error if w.stale_since is not None else None

    def register_metrics(self, registry: Any = None) -> None:
        """Publish ``libmesh_registry_staleness_seconds`` for this registry on a prometheus_client
        ``CollectorRegistry`` (default: the process-wide ``REGISTRY``), e.g. a mesh's own
        ``mesh.metrics.registry``. Several ConsulRegistry instances share one collector per registry."""
        try:
            import prometheus_client
        except ImportError:  # pragma: no cover - the telemetry extra is not installed
            log.info("prometheus-client is not installed: no staleness metric")
            return
        target = registry if registry is not None else prometheus_client.REGISTRY
        _staleness_collector(target).add(self)

    def close(self) -> None:
        """Stop following Consul (threads in a blocking query exit when it returns); lookups keep answering
        with the last endpoints."""
        self._stop.set()

    def __enter__(self) -> ConsulRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConsulRegistry({self.host}:{self.port}, services={len(self._watches)}, hosts={len(self._table)})"

    # --- watching -------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        import consul  # type: ignore[import-untyped]

        return consul.Consul(
            host=self.host,
            port=self.port,
            scheme=self.scheme,
            token=self.token,
            connections_timeout=self.timeout,
        )

    def _watch(self, name: str) -> None:
        with self._lock:
            if name in self._watches or self._stop.is_set():
                return
            state = _WatchState(name, stale_since=time.monotonic())
            self._watches[name] = state
            t = threading.Thread(target=self._follow, args=(state,), name=f"consul-watch-{name}", daemon=True)
            self._threads[name] = t
        t.start()

    def _unwatch(self, name: str) -> None:
        with self._lock:
            state = self._watches.pop(name, None)
            self._threads.pop(name, None)
        if state is not None:
            self._rebuild()

    def _follow(self, state: _WatchState) -> None:
        """Blocking-query loop for one service, as Consul's docs ask: reset the index when it goes backwards,
        never block on index 0, and rate-limit (a token bucket of 2) so churn cannot become a busy loop."""
        client = self._client()
        index = 0
        failures = 0
        bucket = _Bucket(self.min_query_interval)
        while not self._stop.is_set() and self._watching(state):
            bucket.take(self._stop)
            try:
                new_index, entries = client.health.service(
                    state.name, index=index or None, wait=self.wait, passing=True
                )
            except Exception as e:  # requests' and py-consul's errors alike mean "Consul not answering"
                if self._stop.is_set():
                    return
                failures += 1
                self._failed(state, e)
                self._stop.wait(self._backoff(failures))
                continue
            failures = 0
            if self._stop.is_set() or not self._watching(state):
                return
            new = _as_index(new_index)
            # An index that went backwards restarts the loop; otherwise never block on less than 1.
            index = 0 if new < index else max(new, 1)
            self._apply(state, entries or [])

    def _follow_catalog(self) -> None:
        client = self._client()
        index = 0
        failures = 0
        bucket = _Bucket(self.min_query_interval)
        while not self._stop.is_set():
            bucket.take(self._stop)
            try:
                new_index, services = client.catalog.services(index=index or None, wait=self.wait)
            except Exception as e:
                if self._stop.is_set():
                    return
                failures += 1
                if failures == 1:
                    log.warning("Consul catalog at %s:%s unreachable: %s", self.host, self.port, e)
                self._stop.wait(self._backoff(failures))
                continue
            failures = 0
            new = _as_index(new_index)
            index = 0 if new < index else max(new, 1)
            names = {n for n in (services or {}) if n not in self._exclude}
            for name in names:
                self._watch(name)
            with self._lock:
                gone = [n for n in self._watches if n not in names]
            for name in gone:
                self._unwatch(name)
            self._catalog_synced.set()

    def _watching(self, state: _WatchState) -> bool:
        return self._watches.get(state.name) is state

    def _backoff(self, failures: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** min(failures - 1, 30)))
        return self._rand.uniform(delay / 2, delay)

    def _failed(self, state: _WatchState, error: BaseException) -> None:
        first = state.stale_since is None
        if first:
            state.stale_since = state.last_success if state.last_success is not None else time.monotonic()
        state.last_error = f"{type(error).__name__}: {error}"
        if first:
            log.warning(
                "Consul at %s:%s unreachable for service %s (serving the last %d known hosts): %s",
                self.host,
                self.port,
                state.name,
                len(state.by_host),
                state.last_error,
            )

    def _apply(self, state: _WatchState, entries: Sequence[Mapping[str, Any]]) -> None:
        by_host: dict[str, list[Endpoint]] = {}
        infos: dict[str, _HostInfo] = {}
        for entry in entries:
            svc = entry.get("Service") or {}
            node = entry.get("Node") or {}
            meta = {str(k): str(v) for k, v in (svc.get("Meta") or {}).items()}
            tags = [str(t) for t in (svc.get("Tags") or [])]
            address = svc.get("Address") or node.get("Address") or ""
            port = int(svc.get("Port") or 0)
            if not address:
                continue
            weights = svc.get("Weights") or {}
            locality = svc.get("Locality") or None
            loc = None
            if isinstance(locality, Mapping) and locality.get("Region"):
                loc = "/".join(p for p in (locality.get("Region"), locality.get("Zone")) if p)
            ep = Endpoint(
                address,
                port,
                labels=endpoint_labels(tags, meta),
                weight=max(1, int(weights.get("Passing") or 1)),
                locality=loc,
            )
            for host in self._hosts(state.name, meta):
                by_host.setdefault(host, []).append(ep)
                if host not in infos:
                    infos[host] = _HostInfo(
                        state.name,
                        _host_namespace(host, meta.get(_NAMESPACE_META) or self.namespace, self.domain),
                        meta.get(_PROTOCOL_META) or None,
                        bool(meta.get(_EXTERNAL_META)),
                    )
        if not entries:
            # A followed service with no passing instance is still known: calls get 503 (no healthy upstream)
            # rather than being passed through to a host nobody serves.
            for host in self._hosts(state.name, {}):
                by_host.setdefault(host, [])
                infos.setdefault(
                    host,
                    _HostInfo(state.name, _host_namespace(host, self.namespace, self.domain), None, False),
                )
        new_by_host = {h: tuple(sorted(eps, key=lambda e: (e.address, e.port))) for h, eps in by_host.items()}
        changed = new_by_host != state.by_host or infos != state.infos
        state.by_host = new_by_host
        state.infos = infos
        state.stale_since = None
        state.last_error = None
        state.last_success = time.monotonic()
        state.synced.set()
        if changed:
            self._rebuild()

    def _rebuild(self) -> None:
        with self._lock:
            watches = sorted(self._watches.values(), key=lambda w: w.name)
            table: dict[str, list[Endpoint]] = {}
            infos: dict[str, _HostInfo] = {}
            for w in watches:
                for host, eps in w.by_host.items():
                    table.setdefault(host, []).extend(eps)
                for host, hi in w.infos.items():
                    infos.setdefault(host, hi)
            self._table = {h: tuple(eps) for h, eps in table.items()}
            self._infos = infos
            self._service_cache = {}
        self._subscribers.notify()


class _Bucket:
    """A token bucket with a burst of 2: two quick queries pass, then one per ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tokens = 2.0
        self.last = time.monotonic()

    def take(self, stop: threading.Event) -> None:
        if self.interval <= 0:
            return
        now = time.monotonic()
        self.tokens = min(2.0, self.tokens + (now - self.last) / self.interval)
        self.last = now
        if self.tokens < 1:
            stop.wait((1 - self.tokens) * self.interval)
            self.tokens = 1.0
            self.last = time.monotonic()
        self.tokens -= 1


def _as_index(raw: Any) -> int:
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return 0


def _host_namespace(host: str, default: str, domain: str) -> str:
    suffix = f".svc.{domain}"
    if host.endswith(suffix):
        parts = host[: -len(suffix)].split(".")
        if len(parts) >= 2:
            return parts[-1]
    return default


def _parse_address(address: str | None) -> tuple[str, int, str]:
    """``(host, port, scheme)`` from ``host:port``, ``http(s)://host:port`` or ``None`` (127.0.0.1:8500)."""
    if not address:
        return "127.0.0.1", 8500, "http"
    scheme = "http"
    text = address.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"Consul address must be host:port or http(s)://host:port, not {address!r}")
    if scheme not in ("http", "https"):
        raise ValueError(f"Consul address scheme must be http or https, not {scheme!r} (in {address!r})")
    return host.strip("[]"), int(port), scheme


# --- metrics --------------------------------------------------------------------------------------------

_COLLECTORS: weakref.WeakKeyDictionary[Any, _StalenessCollector] = weakref.WeakKeyDictionary()
_COLLECTORS_LOCK = threading.Lock()


class _StalenessCollector:
    """``libmesh_registry_staleness_seconds`` over every ConsulRegistry added (weakly held); a service
    followed by several reports the largest staleness."""

    def __init__(self) -> None:
        self.registries: weakref.WeakSet[ConsulRegistry] = weakref.WeakSet()

    def add(self, registry: ConsulRegistry) -> None:
        self.registries.add(registry)

    def describe(self) -> list[Any]:
        return [self._family()]

    def _family(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        return GaugeMetricFamily(
            "libmesh_registry_staleness_seconds",
            "Seconds the registry's view of a service has gone unconfirmed (0 while in sync).",
            labels=["registry", "service"],
        )

    def collect(self) -> Iterable[Any]:
        family = self._family()
        worst: dict[str, float] = {}
        for registry in list(self.registries):
            for service, value in registry.staleness_by_service().items():
                worst[service] = max(value, worst.get(service, 0.0))
        for service in sorted(worst):
            family.add_metric(["consul", service], worst[service])
        yield family


def _staleness_collector(target: Any) -> _StalenessCollector:
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(target)
        if collector is None:
            collector = _StalenessCollector()
            target.register(collector)
            _COLLECTORS[target] = collector
        return collector


# --- combining registries -------------------------------------------------------------------------------


# --- self-registration ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How Consul checks a registered workload: ``kind`` is ``"http"`` (GET ``target``, a path on the
    workload or a full URL), ``"grpc"`` (``grpc.health.v1`` for service ``target``, ``""`` for the whole
    server), ``"tcp"`` (connect) or ``"ttl"`` (the workload reports in; :func:`register_workload` sends a
    pass every ``ttl/3``). Durations are Consul's (``"10s"``). ``deregister_after`` is Consul's
    ``DeregisterCriticalServiceAfter``::

        HealthCheck.http("/healthz", interval="5s")
        HealthCheck.grpc(interval="5s")
        HealthCheck.ttl_check("10s")
    """

    kind: str
    target: str = ""
    interval: str = "10s"
    timeout: str | None = None
    ttl: str = "10s"
    deregister_after: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("http", "grpc", "tcp", "ttl"):
            raise ValueError(f"HealthCheck kind must be http, grpc, tcp or ttl, not {self.kind!r}")
        for name in ("interval", "ttl", "timeout", "deregister_after"):
            value = getattr(self, name)
            if value is not None:
                _seconds(value, f"HealthCheck.{name}")

    @classmethod
    def http(
        cls,
        path: str = "/healthz",
        *,
        interval: str = "10s",
        timeout: str | None = None,
        deregister_after: str | None = None,
    ) -> HealthCheck:
        """An HTTP check of ``path`` on the workload (or of a full ``http(s)://`` URL)."""
        return cls("http", path, interval, timeout, deregister_after=deregister_after)

    @classmethod
    def grpc(
        cls,
        service: str = "",
        *,
        interval: str = "10s",
        timeout: str | None = None,
        deregister_after: str | None = None,
    ) -> HealthCheck:
        """A gRPC health check (``grpc.health.v1.Health/Check``) of ``service`` on the workload."""
        return cls("grpc", service, interval, timeout, deregister_after=deregister_after)

    @classmethod
    def tcp(
        cls, *, interval: str = "10s", timeout: str | None = None, deregister_after: str | None = None
    ) -> HealthCheck:
        """A TCP connect check of the workload's address and port."""
        return cls("tcp", "", interval, timeout, deregister_after=deregister_after)

    @classmethod
    def ttl_check(cls, ttl: str = "10s", *, deregister_after: str | None = None) -> HealthCheck:
        """A TTL check the workload keeps passing (see :func:`register_workload`)."""
        return cls("ttl", ttl=ttl, deregister_after=deregister_after)

    def definition(self, address: str, port: int) -> dict[str, Any]:
        """The Consul check definition for a workload at ``address:port``."""
        host = f"[{address}]" if ":" in address else address
        out: dict[str, Any]
        if self.kind == "ttl":
            out = {"TTL": self.ttl}
        elif self.kind == "http":
            target = (
                self.target if "://" in self.target else f"http://{host}:{port}/{self.target.lstrip('/')}"
            )
            out = {"HTTP": target, "Interval": self.interval}
        elif self.kind == "grpc":
            out = {
                "GRPC": f"{host}:{port}" + (f"/{self.target}" if self.target else ""),
                "Interval": self.interval,
            }
        else:
            out = {"TCP": f"{host}:{port}", "Interval": self.interval}
        if self.timeout and self.kind != "ttl":
            out["Timeout"] = self.timeout
        if self.deregister_after:
            out["DeregisterCriticalServiceAfter"] = self.deregister_after
        return out


@dataclass(frozen=True, slots=True)
class Registration:
    """A workload instance as it registers in Consul.

    ``labels`` become service meta; those whose key Consul does not accept in meta (only letters, digits,
    ``_`` and ``-`` are allowed, so not ``app.kubernetes.io/name``) become ``key=value`` tags, which
    :class:`ConsulRegistry` reads back as the same labels. ``service_id`` defaults to
    ``<name>-<hostname>-<port>``, unique per agent as Consul requires::

        Registration("reviews", 9080, address="10.0.0.7", labels={"version": "v2"},
                     check=HealthCheck.http("/healthz"))
    """

    name: str
    port: int
    address: str = "127.0.0.1"
    service_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    check: HealthCheck | None = None
    weight: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Registration needs a service name")
        if not 0 < self.port < 65536:
            raise ValueError(f"Registration port must be 1-65535, not {self.port}")
        if self.weight < 1:
            raise ValueError(f"Registration weight must be at least 1, not {self.weight}")

    @property
    def id(self) -> str:
        """The Consul service ID."""
        return self.service_id or f"{self.name}-{socket.gethostname()}-{self.port}"

    @property
    def check_id(self) -> str | None:
        """The ID Consul gives the check (``service:<id>``), or ``None`` without a check."""
        return f"service:{self.id}" if self.check is not None else None

    @classmethod
    def from_workload(
        cls,
        workload: Workload,
        port: int,
        *,
        address: str | None = None,
        check: HealthCheck | None = None,
        name: str | None = None,
        service_id: str | None = None,
    ) -> Registration:
        """The registration of ``workload`` serving on ``port``: its ``app`` as the service name, its labels
        as meta (with ``k8s-namespace`` set to its namespace, so :class:`ConsulRegistry` maps it back to
        ``<app>.<namespace>.svc.cluster.local``). ``address`` defaults to ``INSTANCE_IP``/``POD_IP`` from the
        environment, else ``127.0.0.1``."""
        addr = address or os.environ.get("INSTANCE_IP") or os.environ.get("POD_IP") or "127.0.0.1"
        labels = {**workload.labels, _NAMESPACE_META: workload.namespace}
        return cls(name or workload.app, port, addr, service_id, labels, (), check)

    @classmethod
    def from_env(
        cls, workload: Workload, port: int, environ: Mapping[str, str] | None = None
    ) -> Registration | None:
        """The registration the environment asks for, or ``None`` unless ``LIBMESH_CONSUL_REGISTER`` is
        true (self-registration is opt-in). Read: ``LIBMESH_CONSUL_CHECK`` (``tcp``, the default;
        ``http:/healthz``; ``grpc`` or ``grpc:<service>``; ``ttl:10s``; ``none``),
        ``LIBMESH_CONSUL_CHECK_INTERVAL`` (``10s``), ``LIBMESH_CONSUL_DEREGISTER_AFTER``,
        ``LIBMESH_CONSUL_SERVICE_ID``, and the address from ``LIBMESH_ADVERTISE_ADDRESS``, ``INSTANCE_IP`` or
        ``POD_IP`` (else ``127.0.0.1``). The agent itself is ``CONSUL_HTTP_ADDR``, as for every Consul tool::

            LIBMESH_CONSUL_REGISTER=1 LIBMESH_CONSUL_CHECK=http:/healthz CONSUL_HTTP_ADDR=127.0.0.1:8500
        """
        env = os.environ if environ is None else environ
        if env.get("LIBMESH_CONSUL_REGISTER", "").strip().lower() not in ("1", "true", "yes", "on"):
            return None
        spec = env.get("LIBMESH_CONSUL_CHECK", "tcp").strip()
        kind, _, arg = spec.partition(":")
        interval = env.get("LIBMESH_CONSUL_CHECK_INTERVAL", "10s")
        deregister = env.get("LIBMESH_CONSUL_DEREGISTER_AFTER") or None
        check: HealthCheck | None
        if kind == "none":
            check = None
        elif kind == "ttl":
            check = HealthCheck.ttl_check(arg or "10s", deregister_after=deregister)
        elif kind in ("http", "grpc", "tcp"):
            target = arg or ("/healthz" if kind == "http" else "")
            check = HealthCheck(kind, target, interval, deregister_after=deregister)
        else:
            raise ValueError(
                f"LIBMESH_CONSUL_CHECK must be tcp, http:<path>, grpc[:<service>], ttl:<duration> or none, "
                f"not {spec!r}"
            )
        address = (
            env.get("LIBMESH_ADVERTISE_ADDRESS") or env.get("INSTANCE_IP") or env.get("POD_IP") or "127.0.0.1"
        )
        return cls.from_workload(
            workload,
            port,
            address=address,
            check=check,
            service_id=env.get("LIBMESH_CONSUL_SERVICE_ID") or None,
        )

    def payload(self) -> dict[str, Any]:
        """The body of ``PUT /v1/agent/service/register``."""
        meta: dict[str, str] = {}
        tags = list(self.tags)
        for key, value in self.labels.items():
            if (
                _META_KEY.match(key)
                and not key.startswith("consul-")
                and len(key) <= 128
                and len(value) <= 512
            ):
                meta[key] = value
            else:
                tags.append(f"{key}={value}")
        body: dict[str, Any] = {
            "Name": self.name,
            "ID": self.id,
            "Address": self.address,
            "Port": self.port,
            "Tags": tags,
            "Meta": meta,
            "Weights": {"Passing": self.weight, "Warning": 1},
        }
        if self.check is not None:
            body["Check"] = self.check.definition(self.address, self.port)
        return body


class RegisteredWorkload:
    """A workload registered by :func:`register_workload`. It keeps a TTL check passing from a background
    thread; :meth:`close` (or leaving the ``with`` block, or process exit when ``atexit`` was asked)
    deregisters it. Closing twice is harmless."""

    def __init__(self, registration: Registration, client: Any, *, at_exit: bool = False) -> None:
        self.registration = registration
        self._client = client
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None
        check = registration.check
        if check is not None and check.kind == "ttl":
            period = max(0.05, _seconds(check.ttl, "ttl") / 3)
            self._heartbeat = threading.Thread(
                target=self._beat, args=(period,), name=f"consul-ttl-{registration.id}", daemon=True
            )
            self._heartbeat.start()
        if at_exit:
            atexit.register(self.close)

    @property
    def service_id(self) -> str:
        """The Consul service ID."""
        return self.registration.id

    def _beat(self, period: float) -> None:
        check_id = self.registration.check_id
        while True:
            try:
                self._client.agent.check.ttl_pass(check_id)
            except Exception as e:  # Consul away: keep trying, the check goes critical meanwhile
                log.debug("Consul TTL heartbeat for %s failed: %s", check_id, e)
            if self._closed.wait(period):
                return

    def close(self) -> None:
        """Deregister from Consul (best effort: logged, not raised, when Consul is unreachable)."""
        if self._closed.is_set():
            return
        self._closed.set()
        atexit.unregister(self.close)
        try:
            self._client.agent.service.deregister(self.service_id)
        except Exception as e:
            log.warning("could not deregister %s from Consul: %s", self.service_id, e)

    def __enter__(self) -> RegisteredWorkload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def register_workload(
    registration: Registration, *, address: str | None = None, token: str | None = None, at_exit: bool = False
) -> RegisteredWorkload:
    """Register ``registration`` with the Consul agent at ``address`` (default ``CONSUL_HTTP_ADDR``, else
    ``127.0.0.1:8500``) and return the handle that deregisters it. ``at_exit`` also deregisters at interpreter
    exit (for WSGI servers, which have no shutdown hook). Raises ``ConnectionError``-like errors from the
    client when Consul is unreachable, so a misconfigured address is seen at startup::

        handle = register_workload(Registration.from_workload(workload, 8080, check=HealthCheck.http()))
        ...
        handle.close()
    """
    import consul

    host, port, scheme = _parse_address(address or os.environ.get("CONSUL_HTTP_ADDR"))
    client = consul.Consul(
        host=host,
        port=port,
        scheme=scheme,
        token=token or os.environ.get("CONSUL_HTTP_TOKEN"),
        connections_timeout=5,
    )
    ok = client.http.put(
        _register_callback,
        "/v1/agent/service/register",
        data=_json(registration.payload()),
        headers=client.prepare_headers(),
    )
    if not ok:
        raise RuntimeError(f"Consul refused to register {registration.id}")
    return RegisteredWorkload(registration, client, at_exit=at_exit)


class AsyncRegisteredWorkload:
    """A workload registered by :func:`register_workload_async`; ``await aclose()`` deregisters it (for an
    ASGI lifespan shutdown). A TTL check is kept passing by an asyncio task."""

    def __init__(self, registration: Registration, client: Any) -> None:
        import asyncio

        self.registration = registration
        self._client = client
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        check = registration.check
        if check is not None and check.kind == "ttl":
            self._task = asyncio.get_running_loop().create_task(
                self._beat(max(0.05, _seconds(check.ttl, "ttl") / 3))
            )

    async def _beat(self, period: float) -> None:
        import asyncio

        while True:
            try:
                await self._client.agent.check.ttl_pass(self.registration.check_id)
            except Exception as e:
                log.debug("Consul TTL heartbeat for %s failed: %s", self.registration.check_id, e)
            await asyncio.sleep(period)

    async def aclose(self) -> None:
        """Deregister from Consul (best effort) and close the client."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        try:
            await self._client.agent.service.deregister(self.registration.id)
        except Exception as e:
            log.warning("could not deregister %s from Consul: %s", self.registration.id, e)
        finally:
            await self._client.close()


async def register_workload_async(
    registration: Registration, *, address: str | None = None, token: str | None = None
) -> AsyncRegisteredWorkload:
    """:func:`register_workload` with py-consul's asyncio client (needs ``aiohttp``), for ASGI lifespans::

    handle = await register_workload_async(Registration.from_workload(workload, 8000))
    ...
    await handle.aclose()
    """
    import consul.aio  # type: ignore[import-untyped]

    host, port, scheme = _parse_address(address or os.environ.get("CONSUL_HTTP_ADDR"))
    client = consul.aio.Consul(
        host=host, port=port, scheme=scheme, token=token or os.environ.get("CONSUL_HTTP_TOKEN")
    )
    try:
        ok = await client.http.put(
            _register_callback,
            "/v1/agent/service/register",
            data=_json(registration.payload()),
            headers=client.prepare_headers(),
        )
    except BaseException:
        await client.close()
        raise
    if not ok:
        await client.close()
        raise RuntimeError(f"Consul refused to register {registration.id}")
    return AsyncRegisteredWorkload(registration, client)


def _register_callback(response: Any) -> bool:
    """py-consul's boolean callback, but raising on 404 too (a register must not fail silently)."""
    from consul.callback import CB  # type: ignore[import-untyped]

    CB._status(response, allow_404=False)
    return bool(response.code == 200)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj)


def _seconds(duration: str, what: str) -> float:
    """A Consul duration (``"10s"``, ``"1m"``, ``"500ms"``) in seconds; ``ValueError`` naming ``what``."""
    m = re.fullmatch(r"\s*((?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)\s*", duration)
    if not m:
        raise ValueError(f"{what}: {duration!r} is not a duration such as '10s', '1m' or '500ms'")
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", duration))
