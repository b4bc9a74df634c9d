"""The mesh runtime: the current snapshot, the registry, per-destination state and telemetry, for one process.

Build it from Istio YAML and describe the local workload::

    mesh = libmesh.Mesh.from_paths("mesh/", workload=libmesh.Workload(
        name="productpage-v1", namespace="default", labels={"app": "productpage", "version": "v1"}))
    client = httpx.Client(transport=MeshTransport(mesh))

Adapters ask it for a :class:`~libmesh.policy.engine.CallPlan` per outbound call and report inbound calls to
:meth:`Mesh.record_inbound`. A new configuration is compiled off the hot path and swapped in by reference
(:meth:`Mesh.apply`); calls already in flight keep the decision they started with, and a rejected
configuration leaves the last good one serving.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config.loader import ConfigSet, load_paths
from .config.resources import MeshConfig, MeshConfigSpec, OutboundMode
from .discovery.endpoint import Endpoint, Registry
from .discovery.static import StaticRegistry
from .errors import ConfigError
from .policy.cluster import Cluster
from .policy.engine import CallPlan
from .policy.retry import RetryBudget
from .reload import (
    DEFAULT_DEBOUNCE,
    ConfigSource,
    ConsulKVSource,
    FileSource,
    Reloader,
    ReloadResult,
    ReloadState,
    config_version,
    units_by_file,
)
from .routing.call import Call
from .routing.decision import Mirror, WeightedDestination
from .routing.policy import EffectivePolicy, effective_policy
from .routing.snapshot import Snapshot
from .telemetry import context as _context
from .telemetry.accesslog import AccessLogEntry, AccessLogger, default_details
from .telemetry.exchange import PeerExchange
from .workload import Workload

if TYPE_CHECKING:
    from .discovery.consul import Registration
    from .telemetry.metrics import IstioMetrics, Peer, RequestRecord
    from .telemetry.tracing import Tracer

try:
    # Imported once here rather than per recorded call; prometheus-client is an optional extra.
    from .telemetry import metrics as _metrics
except ImportError:  # pragma: no cover - metrics are off without prometheus-client
    _metrics = None  # type: ignore[assignment]

__all__ = ["Mesh"]

log = logging.getLogger("libmesh")

#: The header carrying a workload's identity to its peer (Istio's metadata exchange); see telemetry.metrics.
_PEER_HEADER = "x-libmesh-peer"


class Mesh:
    """The in-process mesh for one workload. Thread-safe; one per process is typical (tests make several).

    ``clock`` (monotonic seconds) and ``rand`` are injectable; ``registry`` defaults to the static registry
    built from the config's ServiceEntries and WorkloadEntries.
    """

    def __init__(
        self,
        config: ConfigSet | None = None,
        *,
        workload: Workload | None = None,
        namespace: str | None = None,
        registry: Registry | None = None,
        discovery: Registry | Sequence[Registry] | None = None,
        registration: Registration | None = None,
        mesh_config: MeshConfigSpec | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: random.Random | None = None,
        metrics: IstioMetrics | None = None,
        tracer: Tracer | None = None,
        access_log: AccessLogger | None = None,
    ) -> None:
        self.workload = workload or Workload(namespace=namespace or "default")
        self.namespace = namespace or self.workload.namespace
        self.clock = clock
        self.rand = rand or random.Random()
        self._explicit_mesh_config = mesh_config
        self._explicit_registry = registry
        #: This workload's Consul registration, made by the server adapters at startup (opt-in).
        self.registration = registration
        self._discovery: tuple[Registry, ...] = (
            ()
            if discovery is None
            else (discovery,)
            if not isinstance(discovery, Sequence)
            else tuple(discovery)
        )
        self._lock = threading.Lock()
        self._clusters: dict[tuple[str, str | None, int], Cluster] = {}
        self._budgets: dict[str, RetryBudget | None] = {}
        self._endpoint_peers: dict[tuple[str, str], Peer] = {}
        self.config = config or ConfigSet()
        self.mesh_config = self._mesh_config(self.config)
        self.registry: Registry = self._registry(self.config)
        self.snapshot = self._compile(self.config)
        self._unsubscribe = self.registry.subscribe(self._endpoints_changed)
        telemetry = self.mesh_config.telemetry
        self.metrics = metrics if metrics is not None else self._make_metrics(telemetry)
        self.tracer = tracer if tracer is not None else self._make_tracer(telemetry)
        self.access_log = (
            access_log
            if access_log is not None
            else AccessLogger.from_settings(telemetry.access_log if telemetry is not None else None)
        )
        self._peer = self._local_peer()
        self._peer_header = _encode_peer(self._peer)
        #: The metadata exchange with the other end of each call (see :class:`PeerExchange`).
        self.peer_exchange = PeerExchange(self._peer_header, self.clock)
        #: What every attempt carries when no request is being served and no deadline applies: who we are.
        #: Shared (never mutated) so the engine can cache what it builds from it.
        self.static_propagated: Mapping[str, str] = (
            {_PEER_HEADER: self._peer_header} if self._peer_header is not None else {}
        )
        #: Per-destination pieces the engine derives once (merged header edits, the delivery step), keyed by
        #: the destination's id and holding the destination so the id cannot be reused while cached.
        self.legs: dict[int, Any] = {}
        self._local_host: tuple[MeshConfigSpec, str] | None = None
        #: The config's history: version, source, last error, reload counts (see :meth:`status`).
        self.reload_state = ReloadState(version=config_version(self.config))
        self._reloader: Reloader | None = None
        if self.metrics is not None:
            from .telemetry.config_metrics import register_config_metrics

            register_config_metrics(self.metrics.registry, lambda: self.reload_state)
        #: The address outbound calls come from, which ``consistentHash.useSourceIp`` hashes: a sidecar sees
        #: the pod's IP there, so every call of this workload instance sticks to one endpoint while other
        #: instances spread. ``INSTANCE_IP``/``POD_IP`` (Kubernetes' downward API), else the host name.
        self.source_address: str = (
            os.environ.get("INSTANCE_IP") or os.environ.get("POD_IP") or socket.gethostname() or "127.0.0.1"
        )

    # --- construction --------------------------------------------------------------------------------------

    @classmethod
    def from_paths(
        cls,
        *paths: str | os.PathLike[str],
        workload: Workload | None = None,
        namespace: str | None = None,
        watch: bool = True,
        debounce: float = DEFAULT_DEBOUNCE,
        **kwargs: Any,
    ) -> Mesh:
        """A mesh configured from Istio YAML files and directories (raises :class:`ConfigError` when the config
        has errors). With ``watch`` (the default) the paths are followed: every valid change is swapped in
        within about ``debounce`` seconds plus the time to compile it, and an invalid one is logged with its
        ``file:line`` and rejected while the last good version keeps serving (see :mod:`libmesh.reload`)."""
        ns = namespace or (workload.namespace if workload is not None else "default")
        config = load_paths(paths, namespace=ns)
        mesh = cls(config, workload=workload, namespace=ns, **kwargs)
        # The files were just parsed: they are each unit's last good version, so following starts without
        # reading and validating the whole config a second time.
        mesh.reload_state.units = units_by_file(config)
        mesh.follow(FileSource(paths), debounce=debounce, watch=watch, initial=False)
        return mesh

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Mesh:
        """A mesh configured from the environment:

        - the workload: ``LIBMESH_WORKLOAD`` (name), ``LIBMESH_NAMESPACE``, ``LIBMESH_LABELS``
          (``app=reviews,version=v2``), ``LIBMESH_SERVICE_ACCOUNT``;
        - config: ``LIBMESH_CONFIG``, either paths separated by ``os.pathsep`` or
          ``consul-kv://HOST:PORT/PREFIX`` (Istio YAML under a Consul KV prefix, followed with blocking
          queries); followed for changes unless ``LIBMESH_WATCH=0``;
        - discovery: ``LIBMESH_DISCOVERY=consul`` adds Consul's passing instances (agent at
          ``CONSUL_HTTP_ADDR``) to the endpoints ServiceEntries give;
        - self-registration: ``LIBMESH_CONSUL_REGISTER=1`` with ``LIBMESH_PORT`` (the port the app serves
          on) registers the workload in Consul when the server adapters start and deregisters it when they
          stop (see :meth:`libmesh.discovery.consul.Registration.from_env` for the check settings).
        """
        env = os.environ if environ is None else environ
        labels = dict(pair.split("=", 1) for pair in env.get("LIBMESH_LABELS", "").split(",") if "=" in pair)
        namespace = env.get("LIBMESH_NAMESPACE", "default")
        workload = Workload(
            name=env.get("LIBMESH_WORKLOAD", labels.get("app", "unknown")),
            namespace=namespace,
            labels=labels,
            service_account=env.get("LIBMESH_SERVICE_ACCOUNT"),
        )
        if env.get("LIBMESH_DISCOVERY", "").strip().lower() == "consul" and "discovery" not in kwargs:
            from .discovery.consul import ConsulRegistry

            kwargs["discovery"] = ConsulRegistry(env.get("CONSUL_HTTP_ADDR"), namespace=namespace)
        if "registration" not in kwargs and _truthy(env.get("LIBMESH_CONSUL_REGISTER")):
            from .discovery.consul import Registration

            port = env.get("LIBMESH_PORT", "")
            if not port.isdigit():
                raise ValueError("LIBMESH_CONSUL_REGISTER needs LIBMESH_PORT, the port the app serves on")
            kwargs["registration"] = Registration.from_env(workload, int(port), env)
        watch = env.get("LIBMESH_WATCH", "1").strip().lower() not in ("0", "false", "no", "off")
        spec = env.get("LIBMESH_CONFIG", "")
        if spec.startswith(("consul-kv://", "consul-kvs://")):
            mesh = cls(ConfigSet(), workload=workload, namespace=namespace, **kwargs)
            mesh.follow(ConsulKVSource.from_url(spec), watch=watch)
            return mesh
        paths = [Path(p) for p in spec.split(os.pathsep) if p]
        if paths:
            return cls.from_paths(*paths, workload=workload, namespace=namespace, watch=watch, **kwargs)
        return cls(ConfigSet(), workload=workload, namespace=namespace, **kwargs)

    def _mesh_config(self, config: ConfigSet) -> MeshConfigSpec:
        if self._explicit_mesh_config is not None:
            return self._explicit_mesh_config
        meshes = config.of_kind(MeshConfig)
        return meshes[0].spec if meshes else MeshConfigSpec()

    def _registry(self, config: ConfigSet) -> Registry:
        """The registry for ``config``: the one passed as ``registry`` as is; otherwise the static registry
        built from its ServiceEntries and WorkloadEntries (rebuilt on every apply), followed by the
        ``discovery`` registries (Consul...) whose endpoints merge with it."""
        if self._explicit_registry is not None:
            return self._explicit_registry
        static = StaticRegistry.from_config(
            config, namespace=self.namespace, client_namespace=self.workload.namespace
        )
        if not self._discovery:
            return static
        from .discovery.chained import ChainedRegistry

        return ChainedRegistry(static, *self._discovery)

    def _compile(self, config: ConfigSet, mesh_config: MeshConfigSpec | None = None) -> Snapshot:
        return Snapshot.compile(
            config, workload=self.workload, mesh=mesh_config or self.mesh_config, namespace=self.namespace
        )

    def apply(self, config: ConfigSet) -> Snapshot:
        """Compile ``config`` and swap it in; calls in flight finish on the snapshot they started with.
        Raises :class:`ConfigError` (leaving the current snapshot serving) if ``config`` has errors.

        Everything is built before anything is swapped, so a config that fails to compile changes nothing.
        Telemetry settings (metrics on/off, tracing, access log) are read when the mesh is built; a change
        to them in MeshConfig takes effect on restart."""
        if config.errors:
            raise ConfigError(config.issues)
        mesh_config = self._mesh_config(config)
        snapshot = self._compile(config, mesh_config)
        registry = self._registry(config)
        with self._lock:
            if registry is not self.registry:
                self._unsubscribe()
                replaced = self.registry
                self.registry = registry
                self._unsubscribe = registry.subscribe(self._endpoints_changed)
                if replaced is not self._explicit_registry:
                    # A chain this mesh built: let go of the discovery registries it listened to.
                    detach = getattr(replaced, "detach", None)
                    if callable(detach):
                        detach()
            self.config = config
            self.mesh_config = mesh_config
            self.snapshot = snapshot
            self._budgets.clear()
            self.legs.clear()
        self._endpoints_changed()
        return snapshot

    # --- config sources and hot reload ------------------------------------------------------------------

    @property
    def config_version(self) -> str:
        """The version of the config serving now: 12 hex digits that depend on the resources' meaning only
        (see :func:`libmesh.reload.config_version`), the same on every workload running the same config."""
        return self.reload_state.version

    def follow(
        self,
        source: ConfigSource,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        initial: bool = True,
        watch: bool = True,
    ) -> Reloader:
        """Follow ``source`` (files, Consul KV, or any :class:`~libmesh.reload.ConfigSource`): each change is
        validated off the hot path and swapped in (see :mod:`libmesh.reload`). With ``initial`` the source
        is read now, on this thread; with ``watch`` it is then followed on a background thread (without,
        :meth:`reload` reads it on demand). Replaces any source followed before::

            mesh.follow(ConsulKVSource.from_url("consul-kv://127.0.0.1:8500/libmesh/config/"))
        """
        previous = self._reloader
        if previous is not None:
            previous.close()
        reloader = Reloader(self, source, debounce=debounce)
        self._reloader = reloader
        self.reload_state.source = source.describe()
        if initial:
            reloader.reload()
        return reloader.start() if watch else reloader

    def reload(self) -> ReloadResult:
        """Read the followed source now and apply what changed (raises ``RuntimeError`` when the mesh follows
        no source: build it with ``from_paths`` or call :meth:`follow`)."""
        if self._reloader is None:
            raise RuntimeError("this mesh follows no config source (use Mesh.from_paths or Mesh.follow)")
        return self._reloader.reload()

    def count_reload(self, result: str) -> None:
        """Note a reload's result for the logs' and metrics' sake (the :class:`Reloader` calls it)."""
        log.debug("libmesh: config reload %s", result)

    def status(self) -> dict[str, Any]:
        """What this workload's mesh runs now, as JSON-able data (the status endpoint serves it): the config
        version, its source, when it landed, the last error, reload counts, and per cluster its endpoints,
        the ejected ones and the circuit breakers' state."""
        state = self.reload_state
        clusters = {}
        for name, cluster in sorted(self.clusters().items()):
            stats = cluster.stats()
            clusters[name] = {
                "endpoints": list(stats.endpoints),
                "healthy": stats.healthy,
                "ejected": sorted(stats.ejected),
                "panic": stats.panic,
                "active_requests": stats.active_requests,
                "requests_overflowed": stats.requests_overflowed,
            }
        out: dict[str, Any] = {
            "workload": {
                "name": self.workload.name,
                "namespace": self.workload.namespace,
                "labels": dict(self.workload.labels),
            },
            "config": {
                "version": state.version,
                "source": state.source,
                "last_applied": state.last_applied,
                "last_attempt": state.last_attempt,
                "last_error": state.last_error,
                "last_rejected": list(state.last_rejected),
                "reloads": {"applied": state.applied, "rejected": state.rejected},
                "resources": len(self.config.documents),
            },
            "clusters": clusters,
        }
        describe = getattr(self.registry, "status", None)
        if callable(describe):
            out["registry"] = describe()
        return out

    def _make_metrics(self, telemetry: Any) -> IstioMetrics | None:
        if telemetry is not None and telemetry.metrics is False:
            return None
        try:
            from .telemetry.metrics import IstioMetrics
        except ImportError:  # pragma: no cover - prometheus-client missing
            log.warning(
                "prometheus-client is not installed: metrics are off (pip install 'libmesh[telemetry]')"
            )
            return None
        return IstioMetrics()

    def _make_tracer(self, telemetry: Any) -> Tracer | None:
        try:
            from .telemetry.tracing import Tracer
        except ImportError:  # pragma: no cover - opentelemetry missing
            return None
        return Tracer.from_settings(telemetry.tracing if telemetry is not None else None)

    def _local_peer(self) -> Peer | None:
        try:
            from .telemetry.metrics import Peer
        except ImportError:  # pragma: no cover
            return None
        return Peer.from_workload(self.workload, principal=self.principal)

    @property
    def principal(self) -> str | None:
        """The workload's SPIFFE identity (``spiffe://<trust domain>/ns/<ns>/sa/<sa>``), when it has a
        service account."""
        sa = self.workload.service_account
        if not sa:
            return None
        trust_domain = self.mesh_config.trust_domain or "cluster.local"
        return f"spiffe://{trust_domain}/ns/{self.workload.namespace}/sa/{sa}"

    # --- outbound -----------------------------------------------------------------------------------------

    def plan(self, call: Call, *, body_replayable: bool, protocol: str = "http") -> CallPlan:
        """The policy plan for one outbound ``call`` (see :mod:`libmesh.policy.engine`)."""
        return CallPlan(self, call, body_replayable=body_replayable, protocol=protocol)

    def call_headers(self, request_headers: Mapping[str, str]) -> Mapping[str, str]:
        """The headers an outbound call is routed on: the request's own (lower-case names) over the ones
        propagated from the inbound request being served (trace context, ``x-request-id``, MeshConfig's
        ``propagateHeaders``), so header routing works across hops without app code. With nothing
        propagated this is ``request_headers`` itself, not a copy: the mesh never changes a call's headers."""
        ctx = _context.current()
        if ctx is None or not ctx.headers:
            return request_headers
        merged = dict(ctx.headers)
        merged.update(request_headers)
        return merged

    def propagated_headers(self, call: Call, deadline: float | None) -> Mapping[str, str]:
        """Headers every attempt carries: the propagated context, the remaining deadline and who we are
        (:attr:`static_propagated` itself when there is no context and no deadline)."""
        ctx = _context.current()
        if deadline is None and (ctx is None or not ctx.headers):
            return self.static_propagated
        out: dict[str, str] = {}
        if ctx is not None:
            for name, value in ctx.headers.items():
                out[name] = call.headers.get(name, value)
        if deadline is not None:
            out[_context.DEADLINE_HEADER] = _context.deadline_header_value(max(0.0, deadline - self.clock()))
        if self._peer_header is not None:
            out[_PEER_HEADER] = self._peer_header
        return out

    def effective_timeout(self, route_timeout: float | None) -> float | None:
        """The route timeout capped by the deadline propagated from the inbound request."""
        return _context.effective_timeout(route_timeout, self.clock)

    def cluster(self, dest: WeightedDestination, call: Call) -> Cluster | None:
        """The live state of ``dest`` for this call's port; ``None`` when the destination has no cluster:
        an undefined subset (Envoy's ``NC``) or, under ``REGISTRY_ONLY``, a host the registry does not know."""
        if dest.subset_missing:
            return None
        port = dest.port or call.target_port
        key = (dest.host, dest.subset, port)
        cluster = self._clusters.get(key)
        if cluster is not None:
            return cluster
        endpoints = self.registry.endpoints(dest.host, port)
        known = endpoints is not None or self._registry_knows(dest.host, port)
        if not known and self._mode() is OutboundMode.REGISTRY_ONLY:
            return None
        policy = self._policy(dest, port)
        if not known or self._is_passthrough(dest.host, port):
            policy = _passthrough(policy)
        with self._lock:
            cluster = self._clusters.get(key)
            if cluster is None:
                selected = [e for e in endpoints or () if e.matches(dest.labels)]
                name = f"outbound|{port}|{dest.subset or ''}|{dest.host}"
                cluster = Cluster(name, policy, selected, clock=self.clock, rand=self.rand)
                self._clusters[key] = cluster
        return cluster

    def clusters(self) -> dict[str, Cluster]:
        """The clusters in use, by Envoy-style name (for status pages)."""
        return {c.name: c for c in list(self._clusters.values())}

    def _policy(self, dest: WeightedDestination, port: int) -> EffectivePolicy:
        return effective_policy(self.snapshot.traffic_policy(dest.host, dest.subset, port))

    def _mode(self) -> OutboundMode:
        otp = self.mesh_config.outbound_traffic_policy
        return otp.mode if otp is not None and otp.mode is not None else OutboundMode.ALLOW_ANY

    def _registry_knows(self, host: str, port: int) -> bool:
        return self.registry.service(host, port) is not None

    def _is_passthrough(self, host: str, port: int) -> bool:
        info = self.registry.service(host, port)
        return info is not None and info.passthrough

    def passthrough_address(self, host: str, call: Call) -> tuple[str, int]:
        """Where a passthrough attempt connects: the host the caller named, on the service's target port
        (resolution ``NONE``) or the port it called."""
        port = call.target_port
        info = self.registry.service(host, port)
        if info is not None:
            port = info.destination_port
        return call.host, port

    def mirror_target(self, mirror: Mirror, call: Call) -> tuple[str, int] | None:
        """Where a mirrored copy goes (an endpoint of the mirror's cluster), or ``None`` when it has none."""
        labels = self.snapshot.subset_labels(mirror.host, mirror.subset) if mirror.subset else None
        dest = WeightedDestination(mirror.host, mirror.subset, mirror.port, 100.0, mirror.policy, labels)
        cluster = self.cluster(dest, call)
        if cluster is None:
            return None
        if cluster.passthrough:
            return mirror.host, mirror.port or call.target_port
        ep = cluster.pick(call)
        return (ep.address, ep.port) if ep is not None else None

    def retry_budget(self, host: str) -> RetryBudget | None:
        """The request-rate retry budget of destination ``host``, when MeshConfig sets ``retryBudget`` (its
        fields default to 20 % of requests + 10 retries/s over 10 s); ``None`` without one, as in Istio,
        which has no such budget: retries are then bounded by the route's attempts and the
        DestinationRule's ``maxRetries``/``retryBudget`` only."""
        settings = self.mesh_config.retry_budget
        if settings is None:
            return None
        budget = self._budgets.get(host)
        if budget is None:
            budget = RetryBudget.from_settings(settings, clock=self.clock)
            self._budgets[host] = budget
        return budget

    def _endpoints_changed(self) -> None:
        # An endpoint may come back with other labels under the same address: describe it afresh.
        self._endpoint_peers.clear()
        metrics = getattr(self, "metrics", None)  # a registry may call back while the mesh is being built
        if metrics is not None:
            metrics.forget_bound()
        with self._lock:
            clusters = list(self._clusters.items())
        for (host, subset, port), cluster in clusters:
            found = self.registry.endpoints(host, port)
            endpoints = found or ()
            labels = self.snapshot.subset_labels(host, subset) if subset else None
            policy = effective_policy(self.snapshot.traffic_policy(host, subset, port))
            if (found is None and not self._registry_knows(host, port)) or self._is_passthrough(host, port):
                # As cluster() builds it, so that a host a registry has just learned of (it was passed
                # through until now) gets a real cluster, and the two policies compare like for like.
                policy = _passthrough(policy)
            if policy != cluster.policy:
                with self._lock:
                    self._clusters.pop((host, subset, port), None)  # rebuilt with the new policy on next use
                continue
            cluster.update([e for e in endpoints if e.matches(labels)])

    # --- telemetry ----------------------------------------------------------------------------------------

    def record_outbound(
        self, plan: CallPlan, status: int, request_bytes: int, response_bytes: int, peer: str | None
    ) -> None:
        """Record a finished outbound call once: Istio's metrics (``reporter="source"``) and the access log."""
        duration_ms = (self.clock() - plan.started) * 1000.0
        dest = plan.decision.destinations[0] if plan.decision.destinations else None
        host = dest.host if dest is not None else plan.decision.host
        # A gRPC adapter leaves (grpc status, request messages, response messages) in the call's extensions.
        grpc = plan.call.extensions.get("grpc") if plan.protocol == "grpc" else None
        metrics = self.metrics
        if metrics is not None:
            grpc_status = grpc[0] if grpc else None
            endpoint = plan.endpoint
            # Everything the labels depend on: the peer header the destination answered with (or, without
            # one, the endpoint whose labels describe it), the service, and the call's result.
            key = (
                "out",
                peer if peer is not None else (endpoint.key if endpoint is not None else None),
                host,
                plan.protocol,
                status,
                grpc_status,
                plan.response_flags,
            )
            # Looked up first: the labels are needed only the first time (and no closure is made per call,
            # which in a compiled build would move this method's locals into a heap object).
            series = metrics.known(key)
            if series is None:
                series = metrics.bound(
                    key,
                    partial(
                        self._outbound_record,
                        host,
                        peer,
                        endpoint,
                        plan.protocol,
                        status,
                        grpc_status,
                        plan.response_flags,
                    ),
                )
            series.observe(
                duration_ms, request_bytes, response_bytes, grpc[1] if grpc else 0, grpc[2] if grpc else 0
            )
        if self.access_log is not None:
            c = plan.call
            ep = plan.endpoint
            self.access_log.log(
                AccessLogEntry(
                    start_time=time.time() - duration_ms / 1000.0,
                    method=c.method,
                    path=c.path,
                    protocol="HTTP/2" if grpc is not None else "HTTP/1.1",
                    response_code=status,
                    response_flags=plan.response_flags,
                    response_code_details=default_details(status, plan.response_flags),
                    bytes_received=request_bytes,
                    bytes_sent=response_bytes,
                    duration_ms=duration_ms,
                    request_id=c.headers.get("x-request-id"),
                    authority=c.authority,
                    upstream_host=ep.key if ep is not None else None,
                    upstream_cluster=f"outbound|{c.target_port}||{host}",
                    route_name=plan.decision.route_name,
                )
            )

    def _outbound_record(
        self,
        host: str,
        peer: str | None,
        endpoint: Endpoint | None,
        protocol: str,
        status: int,
        grpc_status: int | None,
        flags: str,
    ) -> RequestRecord:
        m = _metrics
        name, namespace = _service_names(host)
        remote = m.decode_peer(peer)
        if remote is None:
            remote = self._endpoint_peer(endpoint, namespace)
        return m.RequestRecord(
            m.Reporter.SOURCE,
            self._peer or m.Peer(),
            remote,
            host,
            name,
            namespace,
            protocol,
            status,
            grpc_status,
            flags,
            "unknown",
        )

    def _inbound_record(
        self,
        host: str,
        peer: str | None,
        protocol: str,
        status: int,
        grpc_status: int | None,
        flags: str,
        secure: bool,
    ) -> RequestRecord:
        m = _metrics
        return m.RequestRecord(
            m.Reporter.DESTINATION,
            m.decode_peer(peer) or m.Peer(),
            self._peer or m.Peer(),
            host,
            _service_names(host)[0],
            self.workload.namespace,
            protocol,
            status,
            grpc_status,
            flags,
            "mutual_tls" if secure else "none",
        )

    def _endpoint_peer(self, endpoint: Endpoint | None, namespace: str) -> Peer:
        """The destination as its endpoint's labels describe it (when it sent no identity header); built
        once per endpoint, since every call to it would build the same one."""
        key = (endpoint.key if endpoint is not None else "", namespace)
        peer = self._endpoint_peers.get(key)
        if peer is None:
            labels: Mapping[str, str] = endpoint.labels if endpoint is not None else {}
            peer = _metrics.Peer.from_labels(labels, namespace=namespace)
            if len(self._endpoint_peers) >= 4096:
                self._endpoint_peers.clear()
            self._endpoint_peers[key] = peer
        return peer

    def record_inbound(
        self,
        headers: Mapping[str, str],
        peer_identity: str | None,
        status: int,
        *,
        duration_ms: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
        flags: str = "-",
        protocol: str = "http",
        grpc_status: int | None = None,
        request_messages: int = 0,
        response_messages: int = 0,
    ) -> None:
        """Record a served request once (``reporter="destination"``), as the server adapters see it: its
        ``headers`` (lower-case names), the peer identity its connection proved (``None`` without mTLS),
        and for gRPC the messages received and sent (``request_messages``/``response_messages``). The
        request's :class:`~libmesh.routing.call.Call` is not needed, so adapters need not build it."""
        metrics = self.metrics
        if metrics is None:
            return
        peer = headers.get(_PEER_HEADER)
        secure = bool(peer_identity)
        host = self.local_service_host()
        key = ("in", peer, host, protocol, status, grpc_status, flags, secure)
        series = metrics.known(key)
        if series is None:
            series = metrics.bound(
                key, partial(self._inbound_record, host, peer, protocol, status, grpc_status, flags, secure)
            )
        series.observe(duration_ms, request_bytes, response_bytes, request_messages, response_messages)

    def local_service_host(self) -> str:
        """The FQDN of the service this workload serves (its ``app`` label in its namespace)."""
        mesh_config = self.mesh_config
        cached = self._local_host
        if cached is not None and cached[0] is mesh_config:
            return cached[1]
        domain = mesh_config.cluster_domain_suffix or "cluster.local"
        host = f"{self.workload.app}.{self.workload.namespace}.svc.{domain}"
        self._local_host = (mesh_config, host)
        return host

    @property
    def peer_header(self) -> str | None:
        """The value of the peer-identity header this workload sends (Istio's metadata exchange)."""
        return self._peer_header

    def metrics_exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The Prometheus exposition of this mesh's metrics: ``(body, content type)``."""
        if self.metrics is None:
            return b"", "text/plain; version=0.0.4; charset=utf-8"
        return self.metrics.exposition(accept)

    def close(self) -> None:
        """Stop following the config source and the registry; the mesh keeps answering with what it has."""
        if self._reloader is not None:
            self._reloader.close()
            self._reloader = None
        self._unsubscribe()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _encode_peer(peer: Peer | None) -> str | None:
    if peer is None:
        return None
    from .telemetry.metrics import encode_peer

    return encode_peer(peer)


_NAMES: dict[str, tuple[str, str]] = {}


def _service_names(host: str) -> tuple[str, str]:
    """``(short name, namespace)`` of a service host, as Istio's ``destination_service_*`` labels show it."""
    names = _NAMES.get(host)
    if names is None:
        names = (host.split(".", 1)[0], _service_namespace(host))
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        _NAMES[host] = names
    return names


def _service_namespace(host: str) -> str:
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1]
    return "unknown"


def _passthrough(policy: EffectivePolicy) -> EffectivePolicy:
    from dataclasses import replace

    return replace(policy, load_balancer="PASSTHROUGH", consistent_hash=None)
