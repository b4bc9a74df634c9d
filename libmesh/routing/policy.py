"""A DestinationRule traffic policy with Istio's defaults filled in: what the data plane enforces.

``effective_policy(None)`` is what a host without any DestinationRule gets::

    >>> p = effective_policy(None)
    >>> p.load_balancer, p.outlier is None
    ('LEAST_REQUEST', True)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.model.destination_rule import ConsistentHashLB, SimpleLB, TrafficPolicy

__all__ = ["EffectivePolicy", "OutlierSettings", "PoolSettings", "effective_policy"]


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    """Outlier detection with Istio's defaults (5 consecutive 5xx, 10 s interval, 30 s base ejection,
    10 % max ejection, 0 % min health); counts of 0 disable that detector."""

    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0


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
class EffectivePolicy:
    """The policy for one (host, subset, port): load balancer, consistent hash, pool and outlier settings."""

    load_balancer: str = "LEAST_REQUEST"
    consistent_hash: ConsistentHashLB | None = None
    pool: PoolSettings = PoolSettings()
    outlier: OutlierSettings | None = None


def effective_policy(policy: TrafficPolicy | None) -> EffectivePolicy:
    """Fill in Istio's defaults: LEAST_REQUEST when no load balancer is set (``LEAST_CONN`` is its old name),
    outlier detection off unless configured, and the outlier defaults for fields left out."""
    if policy is None:
        return EffectivePolicy()
    lb = "LEAST_REQUEST"
    chash: ConsistentHashLB | None = None
    if policy.load_balancer is not None:
        simple = policy.load_balancer.simple
        if policy.load_balancer.consistent_hash is not None:
            lb, chash = "CONSISTENT_HASH", policy.load_balancer.consistent_hash
        elif simple is not None and simple not in (SimpleLB.UNSPECIFIED, SimpleLB.LEAST_CONN):
            lb = str(simple)
    pool = PoolSettings()
    cp = policy.connection_pool
    if cp is not None:
        tcp, http = cp.tcp, cp.http
        pool = PoolSettings(
            max_connections=tcp.max_connections if tcp is not None else None,
            connect_timeout=tcp.connect_timeout.total_seconds() if tcp and tcp.connect_timeout else None,
            http1_max_pending_requests=http.http1_max_pending_requests if http is not None else None,
            http2_max_requests=http.http2_max_requests if http is not None else None,
            max_requests_per_connection=http.max_requests_per_connection if http is not None else None,
            max_retries=http.max_retries if http is not None else None,
            idle_timeout=http.idle_timeout.total_seconds() if http and http.idle_timeout else None,
        )
    outlier: OutlierSettings | None = None
    od = policy.outlier_detection
    if od is not None:
        d = OutlierSettings()
        c5xx = od.consecutive_5xx_errors if od.consecutive_5xx_errors is not None else od.consecutive_errors
        outlier = OutlierSettings(
            consecutive_5xx=c5xx if c5xx is not None else d.consecutive_5xx,
            consecutive_gateway_errors=od.consecutive_gateway_errors or 0,
            interval=od.interval.total_seconds() if od.interval else d.interval,
            base_ejection_time=od.base_ejection_time.total_seconds()
            if od.base_ejection_time
            else d.base_ejection_time,
            max_ejection_percent=od.max_ejection_percent
            if od.max_ejection_percent is not None
            else d.max_ejection_percent,
            min_health_percent=od.min_health_percent
            if od.min_health_percent is not None
            else d.min_health_percent,
        )
    return EffectivePolicy(lb, chash, pool, outlier)
