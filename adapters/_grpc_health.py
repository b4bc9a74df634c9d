"""Active health checking with the standard gRPC health service (``grpc.health.v1.Health/Check``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from libmesh.discovery.endpoint import Endpoint, Registry, Subscribers

if TYPE_CHECKING:
    from libmesh.discovery.static import ServiceInfo

__all__ = ["HealthCheckedRegistry"]


class HealthCheckedRegistry:
    """A :class:`~libmesh.discovery.endpoint.Registry` that hides endpoints whose gRPC health service
    answers NOT_SERVING (or SERVICE_UNKNOWN), or that cannot be reached, so they get no new calls; they
    come back when a later check answers SERVING. A server without the health service (UNIMPLEMENTED) is
    taken as healthy.

    Wrap the registry the mesh would use, and give it to the mesh::

        registry = HealthCheckedRegistry(StaticRegistry.from_config(config), interval=5.0)
        mesh = Mesh(config, registry=registry)

    Checks run every ``interval`` seconds on a daemon thread (``interval=None``: only when :meth:`check_now`
    is called), each with ``timeout`` seconds, for the endpoints of the hosts the mesh has asked about
    (only ``hosts`` when given). ``service`` is the service name sent in the check (``""``: the server as a
    whole).
    """

    def __init__(
        self,
        inner: Registry,
        *,
        interval: float | None = 5.0,
        timeout: float = 1.0,
        service: str = "",
        hosts: Iterable[str] | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError(f"health check interval must be positive seconds, not {interval!r}")
        if timeout <= 0:
            raise ValueError(f"health check timeout must be positive seconds, not {timeout!r}")
        self._inner = inner
        self._timeout = timeout
        self._service = service
        self._hosts = frozenset(hosts) if hosts is not None else None
        self._lock = threading.Lock()
        self._unhealthy: frozenset[str] = frozenset()
        self._asked: set[tuple[str, int]] = set()
        self._channels: dict[str, grpc.Channel] = {}
        self._subscribers = Subscribers()
        self._inner_unsubscribe = inner.subscribe(self._changed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval is not None:
            self._thread = threading.Thread(
                target=self._loop, args=(interval,), daemon=True, name="libmesh-grpc-health"
            )
            self._thread.start()

    # --- Registry ----------------------------------------------------------------------------------------

    def endpoints(self, host: str, port: int) -> Sequence[Endpoint] | None:
        """The inner registry's endpoints of ``host`` without those failing their health check."""
        found = self._inner.endpoints(host, port)
        if found is None:
            return None
        if (host, port) not in self._asked and (self._hosts is None or host in self._hosts):
            with self._lock:
                self._asked.add((host, port))
        unhealthy = self._unhealthy
        if not unhealthy:
            return found
        return [e for e in found if e.key not in unhealthy]

    def service(self, host: str, port: int) -> ServiceInfo | None:
        """As the inner registry answers."""
        return self._inner.service(host, port)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """``callback`` runs when the inner registry changes or an endpoint's health does."""
        return self._subscribers.add(callback)

    def _changed(self) -> None:
        self._subscribers.notify()

    # --- checking ----------------------------------------------------------------------------------------

    @property
    def unhealthy(self) -> frozenset[str]:
        """The ``address:port`` keys of endpoints hidden now."""
        return self._unhealthy

    def check_now(self) -> frozenset[str]:
        """Check every endpoint once (blocking) and return the unhealthy ones' keys."""
        with self._lock:
            asked = list(self._asked)
        endpoints: dict[str, Endpoint] = {}
        for host, port in asked:
            for e in self._inner.endpoints(host, port) or ():
                endpoints[e.key] = e
        unhealthy = frozenset(key for key, e in endpoints.items() if not self._healthy(e))
        if unhealthy != self._unhealthy:
            self._unhealthy = unhealthy
            self._changed()
        return unhealthy

    def _healthy(self, endpoint: Endpoint) -> bool:
        channel = self._channels.get(endpoint.key)
        if channel is None:
            channel = grpc.insecure_channel(endpoint.key)
            self._channels[endpoint.key] = channel
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=self._service), timeout=self._timeout)
        except grpc.RpcError as e:
            err: Any = e
            return bool(err.code() == grpc.StatusCode.UNIMPLEMENTED)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check_now()
            except Exception:  # a failed round leaves the last answer standing
                continue

    def close(self) -> None:
        """Stop checking and close the checking channels."""
        self._stop.set()
        self._inner_unsubscribe()
        if self._thread is not None:
            self._thread.join(self._timeout + 1.0)
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
