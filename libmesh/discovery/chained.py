"""Several registries answering as one: the static registry (ServiceEntry, WorkloadEntry) and live ones
such as Consul. The mesh builds this chain itself when it is given ``discovery=`` registries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..config.model.service_entry import ServiceEntryResolution
from .endpoint import Endpoint, Registry, Subscribers
from .static import ServiceInfo

__all__ = ["ChainedRegistry"]

# Resolutions whose clusters Envoy resolves itself: they take no endpoints from other registries.
_OWN_RESOLUTION = frozenset(
    {
        ServiceEntryResolution.DNS,
        ServiceEntryResolution.DNS_ROUND_ROBIN,
        ServiceEntryResolution.NONE,
        ServiceEntryResolution.DYNAMIC_DNS,
    }
)


class ChainedRegistry:
    """Several registries as one, e.g. the static registry (ServiceEntry ports and protocols, fixed
    endpoints) before Consul (live endpoints)::

        ChainedRegistry(StaticRegistry.from_config(config), ConsulRegistry(...))

    ``service(host, port)`` is the first registry's answer that is not ``None``. ``endpoints`` merges every
    registry's endpoints for the host, as Istio merges the endpoints of one host from all its registries;
    except that when the service comes from a registry with resolution ``DNS``, ``DNS_ROUND_ROBIN``,
    ``NONE`` or ``DYNAMIC_DNS`` (clusters Envoy resolves itself, which take no discovered endpoints), only
    that registry's endpoints count. So declare a Consul-served host in a ServiceEntry with
    ``resolution: STATIC`` and no endpoints to give it ports and protocols while Consul supplies the
    endpoints. Answers are cached per host and port until a registry reports a change.
    """

    def __init__(self, *registries: Registry) -> None:
        if not registries:
            raise ValueError("ChainedRegistry needs at least one registry")
        self.registries = registries
        self._cache: dict[tuple[str, int], Sequence[Endpoint] | None] = {}
        self._services: dict[tuple[str, int], ServiceInfo | None] = {}
        self._subscribers = Subscribers()
        self._unsubscribes = [r.subscribe(self._changed) for r in registries]

    def endpoints(self, host: str, port: int) -> Sequence[Endpoint] | None:
        """Merged endpoints of ``host`` (see the class docstring), ``None`` when no registry knows it."""
        key = (host, port)
        cache = self._cache
        try:
            return cache[key]
        except KeyError:
            pass
        info = self.service(host, port)
        result: Sequence[Endpoint] | None = None
        if info is not None and info.resolution in _OWN_RESOLUTION:
            for r in self.registries:
                if r.service(host, port) is not None:
                    result = r.endpoints(host, port)
                    break
        else:
            merged: list[Endpoint] | None = None
            for r in self.registries:
                eps = r.endpoints(host, port)
                if eps is not None:
                    merged = [*(merged or ()), *eps]
            result = tuple(merged) if merged is not None else None
        cache[key] = result  # a dict replaced meanwhile by _changed takes this stale answer with it
        return result

    def service(self, host: str, port: int) -> ServiceInfo | None:
        """The first registry's :class:`ServiceInfo` for ``host`` and ``port``."""
        key = (host, port)
        services = self._services
        if key in services:
            return services[key]
        found = None
        for r in self.registries:
            found = r.service(host, port)
            if found is not None:
                break
        services[key] = found
        return found

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever one of the registries reports a change."""
        return self._subscribers.add(callback)

    def status(self) -> dict[str, Any]:
        """The status of every registry that can describe itself, by class name."""
        out: dict[str, Any] = {}
        for r in self.registries:
            describe = getattr(r, "status", None)
            if callable(describe):
                out[type(r).__name__] = describe()
        return out

    def detach(self) -> None:
        """Stop listening to the registries, leaving them open (the mesh does this when a reload replaces
        the chain; the discovery registries live on in the new one)."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes = []

    def close(self) -> None:
        """Stop listening to the registries and close the ones that can be closed."""
        self.detach()
        for r in self.registries:
            close = getattr(r, "close", None)
            if callable(close):
                close()

    def _changed(self) -> None:
        self._cache = {}
        self._services = {}
        self._subscribers.notify()
