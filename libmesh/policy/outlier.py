"""Outlier detection (passive health checking) as Envoy runs it for an Istio DestinationRule.

Per endpoint, two counters follow the results of its requests (:meth:`OutlierDetector.record`):

- consecutive 5xx: every 5xx response or transport failure adds one, anything else resets it;
- consecutive gateway errors: 502, 503, 504 and transport failures add one, any other response (a 500
  included) resets it.

When a counter reaches its threshold (a threshold of 0 disables that detector) the counter is reset and the
endpoint is ejected at once, unless that would exceed ``maxEjectionPercent``. Envoy's rule, kept exactly:
eject when ``100 * (ejected + 1) / hosts <= maxEjectionPercent``; Istio does not set Envoy's
``always_eject_one_host``, so with 3 endpoints and the default 10 % nothing is ever ejected (set
``maxEjectionPercent`` to 34 or more to allow one). The count of hosts is the whole endpoint set of the
cluster, ejected ones included.

An ejected endpoint stays out for ``baseEjectionTime * multiplier`` (capped at Envoy's ``max_ejection_time``
default, 300 s or the base time when larger). The multiplier grows by one on each ejection and shrinks by one
at each interval tick the endpoint spends healthy, starting one interval after it returned (Envoy's
``ejectTimeBackoff``). Like Envoy, endpoints return only on an interval tick: ticks fall every ``interval``
seconds from the detector's creation, and an endpoint comes back at the first tick at or after the end of its
ejection time (so with a 10 s interval and 30 s ejection it is out for 30 to 40 s). There are no timers: ticks
that fell due are replayed lazily, in order, at the next :meth:`~OutlierDetector.record` or
:meth:`~OutlierDetector.healthy` call, skipping ticks where nothing can change. Returning resets both
counters.

``minHealthPercent`` is Envoy's panic threshold, as Istio sets it: when fewer than that percentage of the
endpoints are healthy (and the healthy ones cannot carry the load even with Envoy's 1.4 overprovisioning
factor), ejection is ignored and every endpoint is used. Istio's default 0 disables this, so with every
endpoint ejected :meth:`~OutlierDetector.healthy` returns an empty list: the caller answers 503 with response
flag ``UH`` (no healthy upstream).

``outlierDetectionHttpErrorCodes``, when set, decides which statuses are errors: a listed status counts as a
5xx (and as a gateway error when it is 502, 503 or 504), any other status as a success. Envoy's local-origin
split (``splitExternalLocalOriginErrors``) and success-rate detection are not implemented (Istio disables
success-rate ejection).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..discovery.endpoint import Endpoint
from ..routing.policy import OutlierSettings
from .outcome import Outcome

__all__ = ["DEFAULT_MAX_EJECTION_TIME", "EjectionInfo", "OutlierDetector"]

DEFAULT_MAX_EJECTION_TIME = 300.0
"""Envoy's ``max_ejection_time`` default in seconds (Istio does not set it); the base time when larger."""
_EPS = 1e-9  # float slack when comparing clock readings with tick times
_OVERPROVISIONING = 140  # Envoy's default overprovisioning factor, in percent


class _Host:
    """What the detector knows about one endpoint."""

    __slots__ = (
        "backoff",
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected_at",
        "ejections",
        "returned_at",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.backoff = 0  # Envoy's ejectTimeBackoff: the multiplier of the base ejection time
        self.ejections = 0  # ejections over the host's lifetime (for status pages)
        self.ejected_at: float | None = None
        self.returned_at: float | None = None


@dataclass(frozen=True, slots=True)
class EjectionInfo:
    """One ejected endpoint for a status page: since when, until when, and its ejection multiplier."""

    since: float
    until: float
    multiplier: int


class OutlierDetector:
    """Tracks consecutive errors per endpoint and ejects outliers; see the module documentation.

    ``clock`` returns monotonic seconds. Thread-safe: every method takes the detector's lock::

        det = OutlierDetector(OutlierSettings(consecutive_5xx=3), clock, endpoints)
        det.record(ep.key, Outcome(status=503))
        usable = det.healthy(endpoints)   # [] -> 503 UH
    """

    def __init__(
        self,
        settings: OutlierSettings,
        clock: Callable[[], float] = time.monotonic,
        endpoints: Sequence[Endpoint] = (),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._interval = max(settings.interval, 0.001)
        self._base = max(settings.base_ejection_time, 0.0)
        self._max_time = max(DEFAULT_MAX_EJECTION_TIME, self._base)
        self._start = clock()
        self._next_tick = 1  # index of the next interval tick (tick k falls at start + k * interval)
        self._next_at = self._start + self._interval  # when it falls
        self._hosts: dict[str, _Host] = {}
        self._host_src: Sequence[Endpoint] | None = None
        self._ejected_count = 0
        self._version = 0  # bumped whenever the ejected set changes
        self._cache_src: Sequence[Endpoint] | None = None
        self._cache_version = -1
        self._cache_out: Sequence[Endpoint] = ()
        self.panic = False
        """Whether the last :meth:`healthy` call ignored ejections (``minHealthPercent`` reached)."""
        if endpoints:
            self._sync(endpoints)

    # --- public API ---------------------------------------------------------------------------------------

    def record(self, key: str, outcome: Outcome) -> bool:
        """Count the result of one request to endpoint ``key``; True when it ejected the endpoint.

        Keys outside the current endpoint set are ignored (Envoy drops results for removed hosts)."""
        is_5xx, is_gateway = self._classify(outcome)
        if not is_5xx:
            # The common case: a success only matters when it ends a run of errors. Reading the counters
            # without the lock is safe: a racing error is counted under the lock either way.
            seen = self._hosts.get(key)
            if seen is None or (not seen.consecutive_5xx and not seen.consecutive_gateway):
                return False
        with self._lock:
            now = self._clock()
            if now + _EPS >= self._next_at:
                self._advance(now)
            host = self._hosts.get(key)
            if host is None or host.ejected_at is not None:
                return False
            s = self.settings
            if not is_5xx:
                host.consecutive_5xx = host.consecutive_gateway = 0
                return False
            if is_gateway:
                host.consecutive_gateway += 1
            else:
                host.consecutive_gateway = 0
            host.consecutive_5xx += 1
            # Envoy checks the gateway detector first; each detector resets its own counter when it fires,
            # whether or not the ejection is allowed.
            if s.consecutive_gateway_errors > 0 and host.consecutive_gateway >= s.consecutive_gateway_errors:
                host.consecutive_gateway = 0
                if self._eject(host, now):
                    return True
            if s.consecutive_5xx > 0 and host.consecutive_5xx >= s.consecutive_5xx:
                host.consecutive_5xx = 0
                return self._eject(host, now)
            return False

    def healthy(self, endpoints: Sequence[Endpoint]) -> Sequence[Endpoint]:
        """The endpoints to balance over: those not ejected, or all of them in panic mode.

        ``endpoints`` is the cluster's whole endpoint set (it also becomes the detector's host set). An empty
        result with a non-empty ``endpoints`` means every endpoint is ejected and ``minHealthPercent`` is 0:
        answer 503 ``UH``. Without ejections the very same sequence is returned, and filtered lists are
        cached until the ejected set changes, so this is cheap on every pick."""
        with self._lock:
            if endpoints is not self._host_src:
                self._sync(endpoints)
            now = self._clock()
            if now + _EPS >= self._next_at:
                self._advance(now)
            if self._ejected_count == 0:
                self.panic = False
                return endpoints
            if self._cache_src is endpoints and self._cache_version == self._version:
                return self._cache_out
            hosts = self._hosts
            usable = [e for e in endpoints if hosts[e.key].ejected_at is None]
            self.panic = self._in_panic(len(usable), len(endpoints))
            out: Sequence[Endpoint] = endpoints if self.panic else usable
            self._cache_src, self._cache_version, self._cache_out = endpoints, self._version, out
            return out

    def ejected(self) -> dict[str, float]:
        """Ejected endpoint keys and the monotonic time each returns (the tick that brings it back)."""
        with self._lock:
            self._advance(self._clock())
            return {k: self._return_time(h) for k, h in self._hosts.items() if h.ejected_at is not None}

    def ejections(self) -> dict[str, EjectionInfo]:
        """Ejected endpoints with the time they were ejected, will return, and their multiplier."""
        with self._lock:
            self._advance(self._clock())
            out: dict[str, EjectionInfo] = {}
            for k, h in self._hosts.items():
                if h.ejected_at is not None:
                    out[k] = EjectionInfo(h.ejected_at, self._return_time(h), h.backoff)
            return out

    def is_ejected(self, key: str) -> bool:
        """Whether endpoint ``key`` is ejected right now."""
        with self._lock:
            self._advance(self._clock())
            host = self._hosts.get(key)
            return host is not None and host.ejected_at is not None

    def multiplier(self, key: str) -> int:
        """The current ejection-time multiplier of ``key`` (0 for a host never ejected or fully decayed)."""
        with self._lock:
            self._advance(self._clock())
            host = self._hosts.get(key)
            return host.backoff if host is not None else 0

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the host set: new endpoints start clean, removed ones are forgotten."""
        with self._lock:
            self._sync(endpoints)

    # --- internals ----------------------------------------------------------------------------------------

    def _classify(self, outcome: Outcome) -> tuple[bool, bool]:
        codes = self.settings.error_codes
        if codes and outcome.failure is None:
            # A gRPC status is judged by the HTTP status it maps to, as without the list.
            status = outcome.http_equivalent
            if status is not None:
                if status not in codes:
                    return False, False
                return True, status in (502, 503, 504)
        return outcome.is_5xx, outcome.is_gateway_error

    def _sync(self, endpoints: Sequence[Endpoint]) -> None:
        self._host_src = endpoints
        old = self._hosts
        keys = {e.key for e in endpoints}
        if keys == old.keys():
            return
        self._hosts = {k: old.get(k) or _Host() for k in keys}
        self._ejected_count = sum(1 for h in self._hosts.values() if h.ejected_at is not None)
        self._version += 1

    def _eject(self, host: _Host, now: float) -> bool:
        n = len(self._hosts)
        if n == 0 or 100.0 * (self._ejected_count + 1) / n > min(self.settings.max_ejection_percent, 100):
            return False
        host.ejected_at = now
        host.ejections += 1
        if host.backoff * self._base < self._max_time + self._base:
            host.backoff += 1
        self._ejected_count += 1
        self._version += 1
        return True

    def _duration(self, host: _Host) -> float:
        return min(self._base * host.backoff, self._max_time)

    def _tick_time(self, k: int) -> float:
        return self._start + k * self._interval

    def _first_tick_at_or_after(self, t: float) -> int:
        return max(math.ceil((t - self._start) / self._interval - _EPS), 0)

    def _return_time(self, host: _Host) -> float:
        assert host.ejected_at is not None
        due = host.ejected_at + self._duration(host)
        return self._tick_time(max(self._first_tick_at_or_after(due), self._next_tick))

    def _advance(self, now: float) -> None:
        """Replay the interval ticks that fell due up to ``now``, jumping over those that change nothing."""
        while self._tick_time(self._next_tick) <= now + _EPS:
            k = self._next_tick
            self._tick(self._tick_time(k))
            following = self._next_event_tick(k)
            if following is None or self._tick_time(following) > now + _EPS:
                # Nothing changes on the ticks up to ``now``: land on the first tick after it.
                self._next_tick = max(k + 1, math.floor((now - self._start) / self._interval + _EPS) + 1)
                break
            self._next_tick = following
        self._next_at = self._tick_time(self._next_tick)

    def _tick(self, t: float) -> None:
        changed = False
        for host in self._hosts.values():
            if host.ejected_at is not None and t - host.ejected_at >= self._duration(host) - _EPS:
                host.ejected_at = None
                host.returned_at = t
                host.consecutive_5xx = host.consecutive_gateway = 0
                self._ejected_count -= 1
                changed = True
        for host in self._hosts.values():
            if (
                host.ejected_at is None
                and host.backoff > 0
                and host.returned_at is not None
                and t - host.returned_at >= self._interval - _EPS
            ):
                host.backoff -= 1
        if changed:
            self._version += 1

    def _next_event_tick(self, after: int) -> int | None:
        """The first tick after ``after`` at which some host returns or its multiplier decays."""
        best: int | None = None
        for host in self._hosts.values():
            if host.ejected_at is not None:
                k = self._first_tick_at_or_after(host.ejected_at + self._duration(host))
            elif host.backoff > 0 and host.returned_at is not None:
                k = self._first_tick_at_or_after(host.returned_at + self._interval)
            else:
                continue
            k = max(k, after + 1)
            if best is None or k < best:
                best = k
        return best

    def _in_panic(self, healthy: int, total: int) -> bool:
        threshold = min(self.settings.min_health_percent, 100)
        if total == 0 or threshold <= 0:
            return False
        # Envoy never panics while the healthy hosts, scaled by the overprovisioning factor, cover the load.
        if min(100, _OVERPROVISIONING * healthy // total) >= 100:
            return False
        return 100.0 * healthy / total < threshold
