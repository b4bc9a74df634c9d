"""A cluster: the live state of one (host, subset, port) destination, as an Envoy cluster holds it.

It owns the endpoints (replaced with :meth:`Cluster.update`), the load balancer, the outlier detector and
the circuit breakers of the DestinationRule's ``connectionPool`` and ``retryBudget``. The executor uses it
per call like this::

    if not cluster.acquire_request():          # once per attempt, retries included
        ...                                    # 503, response flag UO
    try:
        ep = cluster.pick(call, exclude=tried)
        if ep is None:                          # (cluster.passthrough: use the call's own address instead)
            ...                                 # 503, response flag UH: no healthy upstream
        with cluster.attempt(ep) as attempt:    # counts the endpoint's active requests
            attempt.outcome = send(ep)          # an Outcome; feeds outlier detection on exit
    finally:
        cluster.release_request()

and for each retry, before the backoff: ``cluster.acquire_retry()`` (False: no retry, the last response
stands; Envoy counts it as a retry overflow), then ``cluster.release_retry()`` once that retry's attempt has
finished (Envoy holds the retry through the backoff and the attempt).

Circuit breakers, with Istio's defaults (it sets every Envoy threshold to 2^32-1 unless the
DestinationRule sets it, and ignores 0 values, which it cannot tell from unset; both mean unlimited here):

- ``http2MaxRequests``: requests in flight (attempts, as Envoy counts upstream requests). Beyond it the
  attempt overflows (UO).
- ``http1MaxPendingRequests``: Envoy's pending requests wait for a connection. In process there is no
  connection queue of our own, so libmesh counts as pending the requests in flight beyond
  ``tcp.maxConnections`` (those the connection pool would have to queue); with ``maxConnections`` set,
  more than ``maxConnections + http1MaxPendingRequests`` requests in flight overflow (UO). Without
  ``maxConnections`` nothing is pending and only ``http2MaxRequests`` applies.
- ``maxRetries``: retries in flight. Envoy's own default is 3, but Istio always sends 2^32-1 (so that pod
  churn does not trip it), hence unlimited unless set.
- ``retryBudget``: when present it replaces ``maxRetries`` (as in Envoy): retries in flight may reach
  ``percent`` % of the requests in flight (rounded down), and never fewer than ``minRetryConcurrency``
  (defaults 20 % and 3, Istio's). With ``budgetInterval`` above 0, the requests started during the last
  ``budgetInterval`` seconds are counted instead of those in flight.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from ..discovery.endpoint import Endpoint
from ..routing.call import Call
from ..routing.policy import ConcurrentRetryBudget, EffectivePolicy
from .lb import LoadBalancer, make_load_balancer
from .outcome import Outcome
from .outlier import OutlierDetector

__all__ = ["Attempt", "Cluster", "ClusterStats", "Limits"]

_NO_EXCLUDE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Limits:
    """Circuit-breaker thresholds of a cluster; ``None`` is unlimited (Istio's 2^32-1)."""

    max_requests: int | None = None
    max_connections: int | None = None
    max_pending: int | None = None
    max_retries: int | None = None
    retry_budget: ConcurrentRetryBudget | None = None

    @classmethod
    def from_policy(cls, policy: EffectivePolicy) -> Limits:
        """The thresholds Istio derives from the policy's connection pool and retry budget."""
        pool = policy.pool
        return cls(
            max_requests=pool.http2_max_requests or None,
            max_connections=pool.max_connections or None,
            max_pending=pool.http1_max_pending_requests or None,
            max_retries=pool.max_retries or None,
            retry_budget=policy.retry_budget,
        )


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """A point-in-time view of a cluster for status pages (:meth:`as_dict` is JSON-ready)."""

    name: str
    load_balancer: str
    endpoints: list[str]
    healthy: int
    ejected: dict[str, float]
    panic: bool
    active_requests: int
    pending_requests: int
    active_retries: int
    active_by_endpoint: dict[str, int]
    requests_overflowed: int
    pending_overflowed: int
    retries_overflowed: int
    limits: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stats as plain dicts and lists."""
        return asdict(self)


class Attempt:
    """One attempt on an endpoint, as a context manager: entering counts it as active on the endpoint,
    leaving uncounts it and reports ``outcome`` to outlier detection (left ``None``, e.g. when the caller
    went away, nothing is reported)."""

    __slots__ = ("_cluster", "_key", "endpoint", "outcome")

    def __init__(self, cluster: Cluster, endpoint: Endpoint) -> None:
        self._cluster = cluster
        self._key = endpoint.key
        self.endpoint = endpoint
        self.outcome: Outcome | None = None

    def __enter__(self) -> Attempt:
        self._cluster._start(self._key)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cluster._finish(self._key, self.outcome)


class _RecentRequests:
    """Requests started during the last ``window`` seconds, counted in ten buckets."""

    __slots__ = ("_buckets", "_clock", "_current", "_width")

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self._width = window / 10
        self._clock = clock
        self._buckets = [0] * 10
        self._current = int(clock() // self._width)

    def _roll(self) -> None:
        now = int(self._clock() // self._width)
        gap = now - self._current
        if gap > 0:
            for i in range(1, min(gap, 10) + 1):
                self._buckets[(self._current + i) % 10] = 0
            self._current = now

    def add(self) -> None:
        """Count one request started now."""
        self._roll()
        self._buckets[self._current % 10] += 1

    def count(self) -> int:
        """Requests started within the window."""
        self._roll()
        return sum(self._buckets)


class Cluster:
    """The endpoints, load balancer, outlier detector and circuit breakers of one destination.

    ``clock`` (monotonic seconds) and ``rand`` are injectable for tests. Thread-safe; asyncio code calls it
    from the event loop thread."""

    def __init__(
        self,
        name: str,
        policy: EffectivePolicy,
        endpoints: Sequence[Endpoint] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.limits = Limits.from_policy(policy)
        self.lb: LoadBalancer = make_load_balancer(
            policy, rand if rand is not None else random.Random(), clock
        )
        self.outlier: OutlierDetector | None = (
            OutlierDetector(policy.outlier, clock) if policy.outlier is not None else None
        )
        self._lock = threading.Lock()
        self._endpoints: tuple[Endpoint, ...] = ()
        self._active: dict[str, int] = {}
        self._requests = 0
        self._retries = 0
        self._overflow_requests = 0
        self._overflow_pending = 0
        self._overflow_retries = 0
        budget = self.limits.retry_budget
        self._recent = (
            _RecentRequests(budget.budget_interval, clock)
            if budget is not None and budget.budget_interval > 0
            else None
        )
        self.update(endpoints)

    # --- endpoints and balancing --------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The cluster's endpoints (healthy or not)."""
        return self._endpoints

    @property
    def passthrough(self) -> bool:
        """PASSTHROUGH load balancing: connect to the call's original address; :meth:`pick` gives ``None``."""
        return self.lb.passthrough

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the endpoints (after discovery changed). Active counts of remaining endpoints are kept."""
        eps = tuple(endpoints)
        with self._lock:
            self._endpoints = eps
            keys = {e.key for e in eps}
            for k in [k for k, n in self._active.items() if n <= 0 and k not in keys]:
                del self._active[k]
        self.lb.update(eps)
        if self.outlier is not None:
            self.outlier.update(eps)

    def pick(self, call: Call | None = None, exclude: Collection[str] = _NO_EXCLUDE) -> Endpoint | None:
        """The endpoint for the next attempt, among those outlier detection allows, preferring one outside
        ``exclude`` (keys already tried). ``None`` means no healthy upstream (503 ``UH``): no endpoints, or
        all ejected with ``minHealthPercent`` 0; for a PASSTHROUGH cluster it means use the original address."""
        eps: Sequence[Endpoint] = self._endpoints
        if self.outlier is not None:
            eps = self.outlier.healthy(eps)
        if not eps:
            return None
        return self.lb.pick(eps, call, exclude, self._active)

    def start(self, endpoint: Endpoint) -> None:
        """An attempt on ``endpoint`` begins (LEAST_REQUEST reads these counts)."""
        self._start(endpoint.key)

    def finish(self, endpoint: Endpoint, outcome: Outcome | None) -> None:
        """The attempt on ``endpoint`` ended with ``outcome`` (``None``: nothing to tell outlier detection,
        e.g. the caller cancelled)."""
        self._finish(endpoint.key, outcome)

    def _start(self, key: str) -> None:
        with self._lock:
            self._active[key] = self._active.get(key, 0) + 1

    def _finish(self, key: str, outcome: Outcome | None) -> None:
        with self._lock:
            self._uncount(key)
        if outcome is not None and self.outlier is not None:
            self.outlier.record(key, outcome)

    def _uncount(self, key: str) -> None:
        n = self._active.get(key, 0) - 1
        if n > 0:
            self._active[key] = n
        else:
            self._active.pop(key, None)

    def attempt(self, endpoint: Endpoint) -> Attempt:
        """A context manager around one attempt on ``endpoint``: :meth:`start` on entry, :meth:`finish`
        with the ``outcome`` set on it at exit."""
        return Attempt(self, endpoint)

    # --- circuit breakers ---------------------------------------------------------------------------------

    def acquire_request(self) -> bool:
        """Take a request slot for one attempt; False when a limit is reached (503 ``UO``)."""
        with self._lock:
            return self._take_request()

    def start_request(self, endpoint: Endpoint | None) -> bool:
        """:meth:`acquire_request` and :meth:`start` in one step, for an attempt on ``endpoint`` (``None``: a
        passthrough attempt, counted on no endpoint). False, with nothing taken, when a limit is reached
        (503 ``UO``). The endpoint is picked first, as Envoy's router picks the host before its connection
        pool checks the circuit breakers."""
        with self._lock:
            if not self._take_request():
                return False
            if endpoint is not None:
                key = endpoint.key
                self._active[key] = self._active.get(key, 0) + 1
            return True

    def end_request(self, endpoint: Endpoint | None, outcome: Outcome | None) -> None:
        """Give back what :meth:`start_request` took (:meth:`finish` and :meth:`release_request` in one
        step); ``outcome`` goes to outlier detection (``None``: nothing to tell it)."""
        with self._lock:
            if self._requests > 0:
                self._requests -= 1
            if endpoint is not None:
                self._uncount(endpoint.key)
        if endpoint is not None and outcome is not None and self.outlier is not None:
            self.outlier.record(endpoint.key, outcome)

    def _take_request(self) -> bool:
        lim = self.limits
        n = self._requests
        if lim.max_requests is not None and n >= lim.max_requests:
            self._overflow_requests += 1
            return False
        if (
            lim.max_connections is not None
            and lim.max_pending is not None
            and n - lim.max_connections >= lim.max_pending
        ):
            self._overflow_pending += 1
            return False
        self._requests = n + 1
        if self._recent is not None:
            self._recent.add()
        return True

    def release_request(self) -> None:
        """Give back the slot of :meth:`acquire_request`."""
        with self._lock:
            if self._requests > 0:
                self._requests -= 1

    def acquire_retry(self) -> bool:
        """Take a retry slot (before backing off); False when ``maxRetries`` or the retry budget is spent."""
        with self._lock:
            limit = self._retry_limit()
            if limit is not None and self._retries >= limit:
                self._overflow_retries += 1
                return False
            self._retries += 1
            return True

    def release_retry(self) -> None:
        """Give back the slot of :meth:`acquire_retry` once that retry's attempt has finished."""
        with self._lock:
            if self._retries > 0:
                self._retries -= 1

    def retry_limit(self) -> int | None:
        """How many retries may be in flight right now (``None``: unlimited)."""
        with self._lock:
            return self._retry_limit()

    def _retry_limit(self) -> int | None:
        budget = self.limits.retry_budget
        if budget is None:
            return self.limits.max_retries
        base = self._recent.count() if self._recent is not None else self._requests
        return max(int(budget.percent * base / 100.0), budget.min_retry_concurrency)

    # --- status -------------------------------------------------------------------------------------------

    @property
    def active_requests(self) -> int:
        """Requests (attempts) in flight."""
        return self._requests

    @property
    def active_retries(self) -> int:
        """Retries in flight."""
        return self._retries

    def stats(self) -> ClusterStats:
        """Endpoints, ejections, active counts and overflows, for a status page."""
        outlier = self.outlier
        ejected = outlier.ejected() if outlier is not None else {}
        if outlier is not None:
            outlier.healthy(self._endpoints)  # refreshes the panic flag
        lim = self.limits
        with self._lock:
            pending = 0
            if lim.max_connections is not None:
                pending = max(0, self._requests - lim.max_connections)
            return ClusterStats(
                name=self.name,
                load_balancer=self.policy.load_balancer,
                endpoints=[e.key for e in self._endpoints],
                healthy=sum(1 for e in self._endpoints if e.key not in ejected),
                ejected=ejected,
                panic=outlier is not None and outlier.panic,
                active_requests=self._requests,
                pending_requests=pending,
                active_retries=self._retries,
                active_by_endpoint=dict(self._active),
                requests_overflowed=self._overflow_requests,
                pending_overflowed=self._overflow_pending,
                retries_overflowed=self._overflow_retries,
                limits={
                    "max_requests": lim.max_requests,
                    "max_connections": lim.max_connections,
                    "max_pending": lim.max_pending,
                    "max_retries": lim.max_retries,
                    "retry_budget": asdict(lim.retry_budget) if lim.retry_budget is not None else None,
                },
            )
