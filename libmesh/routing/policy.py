"""A DestinationRule traffic policy with Istio's defaults filled in: what the data plane enforces.

``effective_policy(None)`` is what a host without any DestinationRule gets::

    >>> p = effective_policy(None)
    >>> p.load_balancer, p.outlier is None
    ('LEAST_REQUEST', True)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.model.destination_rule import ConsistentHashLB, SimpleLB, TrafficPolicy

__all__ = [
    "ConcurrentRetryBudget",
    "EffectivePolicy",
    "OutlierSettings",
    "PoolSettings",
    "WarmupSettings",
    "effective_policy",
]


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    """Outlier detection with Istio's defaults (5 consecutive 5xx, 10 s interval, 30 s base ejection,
    10 % max ejection, 0 % min health); counts of 0 disable that detector.

    ``error_codes`` is ``outlierDetectionHttpErrorCodes``: when set, only responses with one of these
    statuses count as errors (transport failures always do)."""

    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0
    error_codes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Connection-pool limits; ``None`` means Envoy's default (effectively unlimited for libmesh)."""

    max_connections: int | None = None
    connect_timeout: float | None = None
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ConcurrentRetryBudget:
    """A DestinationRule ``retryBudget`` with Istio's defaults (Envoy's concurrency model, not MeshConfig's
    request-rate budget): concurrent retries may reach ``percent`` of the active (and pending) requests,
    never fewer than ``min_retry_concurrency``. With ``budget_interval`` above 0, the requests started during
    that many seconds are counted instead of the active ones."""

    percent: float = 20.0
    min_retry_concurrency: int = 3
    budget_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class WarmupSettings:
    """Slow start for endpoints that join: their weight ramps from ``minimum_percent`` % to full over
    ``duration`` seconds, following ``(age / duration) ** (1 / aggression)`` (Envoy's slow start)."""

    duration: float
    minimum_percent: float = 10.0
    aggression: float = 1.0


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy for one (host, subset, port): load balancer, consistent hash, pool and outlier settings,
    retry budget and warmup (the last two ``None`` when the DestinationRule leaves them out)."""

    load_balancer: str = "LEAST_REQUEST"
    consistent_hash: ConsistentHashLB | None = None
    pool: PoolSettings = PoolSettings()
    outlier: OutlierSettings | None = None
    retry_budget: ConcurrentRetryBudget | None = None
    warmup: WarmupSettings | None = None


def effective_policy(policy: TrafficPolicy | None) -> EffectivePolicy:
    """Fill in Istio's defaults: LEAST_REQUEST when no load balancer is set (``LEAST_CONN`` is its old name),
    outlier detection off unless configured, and the outlier defaults for fields left out.

    Like Istio, ``maxEjectionPercent: 0`` cannot be told from an absent value and keeps Envoy's 10 %; warmup
    is kept only for ROUND_ROBIN and LEAST_REQUEST (the balancers Istio configures slow start on)."""
    if policy is None:
        return EffectivePolicy()
    lb = "LEAST_REQUEST"
    chash: ConsistentHashLB | None = None
    warmup: WarmupSettings | None = None
    if policy.load_balancer is not None:
        lbs = policy.load_balancer
        simple = lbs.simple
        if lbs.consistent_hash is not None:
            lb, chash = "CONSISTENT_HASH", lbs.consistent_hash
        elif simple is not None and simple not in (SimpleLB.UNSPECIFIED, SimpleLB.LEAST_CONN):
            lb = str(simple)
        if lb in ("LEAST_REQUEST", "ROUND_ROBIN"):
            if lbs.warmup is not None and lbs.warmup.duration is not None:
                w = lbs.warmup
                warmup = WarmupSettings(
                    duration=w.duration.total_seconds() if w.duration is not None else 0.0,
                    minimum_percent=w.minimum_percent if w.minimum_percent is not None else 10.0,
                    aggression=w.aggression if w.aggression is not None else 1.0,
                )
            elif lbs.warmup_duration_secs is not None:
                warmup = WarmupSettings(duration=lbs.warmup_duration_secs.total_seconds())
            if warmup is not None and warmup.duration <= 0:
                warmup = None
    budget: ConcurrentRetryBudget | None = None
    rb = policy.retry_budget
    if rb is not None:
        budget = ConcurrentRetryBudget(
            percent=rb.percent if rb.percent is not None else 20.0,
            min_retry_concurrency=rb.min_retry_concurrency if rb.min_retry_concurrency else 3,
            budget_interval=rb.budget_interval.total_seconds() if rb.budget_interval else 0.0,
        )
    pool = PoolSettings()
    cp = policy.connection_pool
    if cp is not None:
        tcp, http = cp.tcp, cp.http
        # pilot builds an HTTP cluster's idle timeout from http.idleTimeout, else from tcp.idleTimeout.
        idle = http.idle_timeout if http is not None and http.idle_timeout is not None else None
        if idle is None and tcp is not None:
            idle = tcp.idle_timeout
        pool = PoolSettings(
            max_connections=tcp.max_connections if tcp is not None else None,
            connect_timeout=tcp.connect_timeout.total_seconds() if tcp and tcp.connect_timeout else None,
            http1_max_pending_requests=http.http1_max_pending_requests if http is not None else None,
            http2_max_requests=http.http2_max_requests if http is not None else None,
            max_requests_per_connection=http.max_requests_per_connection if http is not None else None,
            max_retries=http.max_retries if http is not None else None,
            idle_timeout=idle.total_seconds() if idle else None,
        )
    outlier: OutlierSettings | None = None
    od = policy.outlier_detection
    if od is not None:
        d = OutlierSettings()
        # pilot's applyOutlierDetection no longer reads the deprecated consecutiveErrors (istio#24087).
        c5xx = od.consecutive_5xx_errors
        outlier = OutlierSettings(
            consecutive_5xx=c5xx if c5xx is not None else d.consecutive_5xx,
            consecutive_gateway_errors=od.consecutive_gateway_errors or 0,
            interval=od.interval.total_seconds() if od.interval else d.interval,
            base_ejection_time=od.base_ejection_time.total_seconds()
            if od.base_ejection_time
            else d.base_ejection_time,
            max_ejection_percent=od.max_ejection_percent or d.max_ejection_percent,
            min_health_percent=od.min_health_percent
            if od.min_health_percent is not None
            else d.min_health_percent,
            error_codes=frozenset(od.outlier_detection_http_error_codes),
        )
    return EffectivePolicy(lb, chash, pool, outlier, budget, warmup)
