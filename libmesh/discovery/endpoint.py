"""Endpoints and the registry interface every discovery backend implements."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .static import ServiceInfo

__all__ = ["Endpoint", "Registry", "Subscribers"]

log = logging.getLogger("libmesh.discovery")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance of a service: where to connect and what it is (labels select subsets).

    ``address`` is an IP address, a DNS name, or ``unix://`` path; ``port`` is the port to connect to (the
    ServiceEntry ``targetPort`` or WorkloadEntry port mapping already applied); ``weight`` is the relative
    share for weighted load balancing (Istio's default 1)::

        Endpoint("10.0.0.7", 9080, labels={"app": "reviews", "version": "v2"})
    """

    address: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    weight: int = 1
    service_account: str | None = None
    locality: str | None = None
    network: str | None = None
    #: ``address:port`` (IPv6 addresses in brackets), the identity load balancers and outlier detection use.
    #: Computed once: every attempt reads it several times.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if ":" in self.address and not self.address.startswith("["):
            key = f"[{self.address}]:{self.port}"
        else:
            key = f"{self.address}:{self.port}"
        object.__setattr__(self, "key", key)

    def matches(self, selector: Mapping[str, str] | None) -> bool:
        """Whether this endpoint carries every label of ``selector`` (a subset's labels)."""
        if not selector:
            return True
        labels = self.labels
        return all(labels.get(k) == v for k, v in selector.items())


class Registry(Protocol):
    """Where endpoints come from. Implementations: the static registry (ServiceEntry/WorkloadEntry) and
    Consul. Calls happen on the hot path, so lookups must be cheap (precomputed per host and port).

    Example of a seam::

        class Fixed:
            def endpoints(self, host, port): return [Endpoint("127.0.0.1", 8080)] if host == "svc" else None
            def service(self, host, port): return None
            def subscribe(self, callback): return lambda: None
    """

    def endpoints(self, host: str, port: int) -> Sequence[Endpoint] | None:
        """The endpoints of ``host`` (FQDN) for service port ``port``; ``None`` when the host is unknown
        (the caller then applies the outbound traffic policy)."""
        ...

    def service(self, host: str, port: int) -> ServiceInfo | None:
        """What is known of ``host``'s port ``port`` beyond its endpoints (resolution, target port), or
        ``None`` when the registry does not know it. A known service with no endpoints and ``passthrough``
        set is sent to the address the caller named."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever endpoints change; returns a function that unsubscribes."""
        ...


class Subscribers:
    """The change callbacks of a registry, for implementations of :meth:`Registry.subscribe`: ``add``
    returns the function that removes the callback again, and ``notify`` calls every callback outside the
    lock (a failing one is logged, the others still run)::

        def subscribe(self, callback): return self._subscribers.add(callback)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Register ``callback``; returns its unsubscribe."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def notify(self) -> None:
        """Call every callback registered now."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("libmesh: a registry change callback failed")
