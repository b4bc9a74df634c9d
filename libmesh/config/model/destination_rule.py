"""Istio ``networking.istio.io`` DestinationRule messages: subsets and traffic policies."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message
from .selector import PolicyWorkloadSelector
from .virtual_service import PortSelector

__all__ = [
    "BackendUtilization",
    "ClientTLSMode",
    "ClientTLSSettings",
    "ConnectionKeepalive",
    "ConnectionPoolSettings",
    "ConsistentHashLB",
    "DestinationRuleSpec",
    "H2UpgradePolicy",
    "HTTPCookie",
    "HTTPCookieAttribute",
    "HTTPSettings",
    "LoadBalancerSettings",
    "LocalityDistribute",
    "LocalityFailover",
    "LocalityLoadBalancerSetting",
    "MagLev",
    "OutlierDetection",
    "PortTrafficPolicy",
    "ProxyProtocol",
    "ProxyProtocolVersion",
    "RetryBudget",
    "RingHash",
    "SimpleLB",
    "Subset",
    "TCPSettings",
    "TcpKeepalive",
    "TrafficPolicy",
    "TunnelSettings",
    "WarmupConfiguration",
    "ZoneAwareFailover",
    "ZoneAwareLoadBalancerSetting",
]


class ProxyProtocolVersion(StrEnum):
    """PROXY protocol version sent upstream: V1 (text, the default) or V2 (binary).

    Istio ``networking.v1alpha3.TrafficPolicy.ProxyProtocol.VERSION``.
    """

    V1 = "V1"
    V2 = "V2"


class SimpleLB(StrEnum):
    """Load-balancing algorithms that need no tuning.

    Istio ``networking.v1alpha3.LoadBalancerSettings.SimpleLB``. UNSPECIFIED lets Istio choose; LEAST_CONN is
    a deprecated alias of LEAST_REQUEST; PASSTHROUGH skips balancing and connects to the caller's original
    destination address.
    """

    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


class H2UpgradePolicy(StrEnum):
    """Whether HTTP/1.1 connections to a destination are upgraded to HTTP/2 (DEFAULT follows the mesh).

    Istio ``networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy``.
    """

    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


class ClientTLSMode(StrEnum):
    """How a proxy secures connections to the upstream: none, TLS, mutual TLS, or Istio's own mTLS.

    Istio ``networking.v1alpha3.ClientTLSSettings.TLSmode``. ISTIO_MUTUAL uses Istio-issued certificates, so
    the certificate fields must stay empty; MUTUAL needs a client certificate and key (or
    ``credential_name``).
    """

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@message
class DestinationRuleSpec:
    """Spec of a DestinationRule: policies for traffic to ``host`` once routing has picked it.

    Istio ``networking.v1alpha3.DestinationRule``. ``traffic_policy`` covers the whole host and ``subsets``
    name versions of it by label (each may override the policy). An empty ``export_to`` exports the rule to
    every namespace; without ``workload_selector`` it applies to every client that can see it.

    Example: ``DestinationRuleSpec(host="reviews", subsets=(Subset(name="v1", labels={"version": "v1"}),))``
    """

    host: str | None = fld(required=True)
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = fld(default=())
    export_to: tuple[str, ...] = fld(default=())
    workload_selector: PolicyWorkloadSelector | None = None


@message
class TrafficPolicy:
    """Client-side policy for calls to a destination: load balancing, pools, outlier detection, TLS.

    Istio ``networking.v1alpha3.TrafficPolicy``. Parts left out keep Istio's defaults. ``port_level_settings``
    override the top-level settings for their port, and a subset's policy overrides the rule-level one.

    Example: ``TrafficPolicy(load_balancer=LoadBalancerSettings(simple=SimpleLB.LEAST_REQUEST))``
    """

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = fld(default=())
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


@message
class PortTrafficPolicy:
    """Traffic policy for one port of the destination, overriding the top-level settings there.

    Istio ``networking.v1alpha3.TrafficPolicy.PortTrafficPolicy``.
    """

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@message
class TunnelSettings:
    """Tunnel TCP/TLS traffic for the host through a proxy at ``target_host``:``target_port``.

    Istio ``networking.v1alpha3.TrafficPolicy.TunnelSettings``. ``protocol`` is CONNECT (the default) or POST;
    tunnelling applies to TCP and TLS routes, not HTTP ones.
    """

    protocol: str | None = None
    target_host: str | None = fld(required=True)
    target_port: int | None = fld(proto="uint32", required=True)


@message
class ProxyProtocol:
    """Send a PROXY protocol header on connections to the upstream.

    Istio ``networking.v1alpha3.TrafficPolicy.ProxyProtocol``.
    """

    version: ProxyProtocolVersion | None = None


@message
class RetryBudget:
    """Limit on concurrent retries relative to the number of active requests.

    Istio ``networking.v1alpha3.TrafficPolicy.RetryBudget``. Defaults: ``percent`` 20,
    ``min_retry_concurrency`` 3, ``budget_interval`` 0 (count only requests that are active right now).
    """

    percent: float | None = None
    min_retry_concurrency: int | None = fld(proto="uint32")
    budget_interval: Duration | None = None


@message
class Subset:
    """A named version of a service: the endpoints carrying ``labels``, with an optional own policy.

    Istio ``networking.v1alpha3.Subset``. Routes select it through ``Destination.subset``. Its
    ``traffic_policy`` overrides the matching parts of the rule-level policy; the rest is inherited.

    Example: ``Subset(name="v2", labels={"version": "v2"})``
    """

    name: str | None = fld(required=True)
    labels: dict[str, str] = fld(factory=dict)
    traffic_policy: TrafficPolicy | None = None


@message
class LoadBalancerSettings:
    """How requests and connections are spread over a destination's endpoints.

    Istio ``networking.v1alpha3.LoadBalancerSettings``. Set either ``simple`` or ``consistent_hash``; with
    neither, Istio picks its default (least request). At most one of ``locality_lb_setting`` and
    ``zone_aware_lb_setting``; ``warmup`` supersedes ``warmup_duration_secs``.

    Example: ``LoadBalancerSettings(simple=SimpleLB.ROUND_ROBIN)``
    """

    simple: SimpleLB | None = fld(oneof="lb_policy")
    consistent_hash: ConsistentHashLB | None = fld(oneof="lb_policy")
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None
    backend_utilization: BackendUtilization | None = None


@message
class BackendUtilization:
    """Weight endpoints by the load they report themselves (ORCA utilization metrics).

    Istio ``networking.v1alpha3.LoadBalancerSettings.BackendUtilization``. Only in istio/istio's CRD schema;
    istio/api does not define it yet.
    """

    error_utilization_penalty_percent: int | None = fld(proto="uint32")
    metric_names_for_computing_utilization: tuple[str, ...] = fld(default=())
    weight_expiration_period: Duration | None = None
    weight_stabilization_period: Duration | None = None
    weight_update_period: Duration | None = None


@message
class ConsistentHashLB:
    """Consistent-hash load balancing, for soft session affinity.

    Istio ``networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB``. Choose one hash key (header, cookie,
    source IP or query parameter) and optionally one algorithm (``ring_hash``, the default, or ``maglev``).
    Affinity is lost for some keys whenever endpoints come or go.

    Example: ``ConsistentHashLB(http_header_name="x-user-id")``
    """

    http_header_name: str | None = fld(oneof="hash_key")
    http_cookie: HTTPCookie | None = fld(oneof="hash_key")
    use_source_ip: bool | None = fld(oneof="hash_key")
    http_query_parameter_name: str | None = fld(oneof="hash_key")
    ring_hash: RingHash | None = fld(oneof="hash_algorithm")
    maglev: MagLev | None = fld(oneof="hash_algorithm")
    minimum_ring_size: int | None = fld(proto="uint64", deprecated=True)


@message
class RingHash:
    """Ring-hash settings; ``minimum_ring_size`` absent means 1024 virtual nodes.

    Istio ``networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.RingHash``.
    """

    minimum_ring_size: int | None = fld(proto="uint64")


@message
class MagLev:
    """Maglev settings; ``table_size`` must be a prime below 5000011 and defaults to 65537.

    Istio ``networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.MagLev``.
    """

    table_size: int | None = fld(proto="uint64")


@message
class HTTPCookie:
    """The cookie used as consistent-hash key.

    Istio ``networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie``. With ``ttl`` set, the
    proxy creates the cookie when the request lacks it (a zero ``ttl`` makes it a session cookie).
    """

    name: str | None = fld(required=True)
    path: str | None = None
    ttl: Duration | None = None
    attributes: tuple[HTTPCookieAttribute, ...] = fld(default=())


@message
class HTTPCookieAttribute:
    """An extra attribute (name, optional value) put on a generated hash cookie.

    Istio ``networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie.Attribute``.
    """

    name: str | None = fld(required=True)
    value: str | None = None


@message
class WarmupConfiguration:
    """Slow start for new endpoints: their share of traffic ramps up over ``duration``.

    Istio ``networking.v1alpha3.WarmupConfiguration``. ``minimum_percent`` defaults to 10 and ``aggression``
    to 1.0 (a linear ramp). Only ROUND_ROBIN and LEAST_REQUEST support it.
    """

    duration: Duration | None = fld(required=True)
    minimum_percent: float | None = None
    aggression: float | None = None


@message
class ConnectionPoolSettings:
    """Connection and request limits a client proxy applies towards a destination (circuit breaking).

    Istio ``networking.v1alpha3.ConnectionPoolSettings``. ``tcp`` holds the settings shared by TCP and HTTP,
    ``http`` the HTTP-only ones. Limits that are absent are practically unlimited.

    Example::

        ConnectionPoolSettings(tcp=TCPSettings(max_connections=100), http=HTTPSettings(max_retries=3))
    """

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@message
class TCPSettings:
    """Connection-level limits and timeouts for a destination, for both TCP and HTTP traffic.

    Istio ``networking.v1alpha3.ConnectionPoolSettings.TCPSettings``. When absent: ``max_connections`` is
    2^32-1, ``connect_timeout`` 10s, ``idle_timeout`` 1h (0s turns it off) and connections have no maximum
    duration.

    Example: ``TCPSettings(max_connections=100, connect_timeout=timedelta(milliseconds=500))``
    """

    max_connections: int | None = fld(proto="int32")
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


@message
class TcpKeepalive:
    """TCP keepalive on upstream sockets; unset values fall back to the operating system's settings.

    Istio ``networking.v1alpha3.ConnectionPoolSettings.TCPSettings.TcpKeepalive``.
    """

    probes: int | None = fld(proto="uint32")
    time: Duration | None = None
    interval: Duration | None = None


@message
class HTTPSettings:
    """HTTP-level pool limits for a destination (HTTP/1.1, HTTP/2 and gRPC).

    Istio ``networking.v1alpha3.ConnectionPoolSettings.HTTPSettings``. When absent: pending requests, active
    requests and outstanding retries are capped at 2^32-1, ``max_requests_per_connection`` is 0 (unlimited; 1
    disables keep-alive) and ``idle_timeout`` is 1h.

    Example: ``HTTPSettings(http1_max_pending_requests=10, max_requests_per_connection=1)``
    """

    http1_max_pending_requests: int | None = fld(proto="int32")
    http2_max_requests: int | None = fld(proto="int32")
    max_requests_per_connection: int | None = fld(proto="int32")
    max_retries: int | None = fld(proto="int32")
    idle_timeout: Duration | None = None
    h2_upgrade_policy: H2UpgradePolicy | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: int | None = fld(proto="int32")
    http2_keep_alive: ConnectionKeepalive | None = None


@message
class ConnectionKeepalive:
    """HTTP/2 PING keepalive to the upstream: ping every ``interval``, give up after ``timeout``.

    Istio ``networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.ConnectionKeepalive``.
    """

    interval: Duration | None = None
    timeout: Duration | None = None


@message
class OutlierDetection:
    """Passive health checking: endpoints that keep failing are ejected from the pool for a while.

    Istio ``networking.v1alpha3.OutlierDetection``. When absent: eject after 5 consecutive 5xx errors (0
    disables that), gateway-error counting is off, scans run every 10s, ejection lasts 30s times the number of
    ejections, at most 10% of hosts are ejected and ``min_health_percent`` is 0.

    Example: ``OutlierDetection(consecutive_5xx_errors=3, interval=timedelta(seconds=5))``
    """

    consecutive_errors: int | None = fld(proto="int32", deprecated=True)
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: int | None = fld(proto="uint32")
    consecutive_gateway_errors: int | None = fld(proto="uint32")
    consecutive_5xx_errors: int | None = fld(proto="uint32")
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = fld(proto="int32")
    min_health_percent: int | None = fld(proto="int32")
    outlier_detection_http_error_codes: tuple[int, ...] = fld(proto="uint32", default=())


@message
class ClientTLSSettings:
    """TLS a proxy uses on connections to the upstream (TLS origination or mutual TLS).

    Istio ``networking.v1alpha3.ClientTLSSettings``.
    """

    mode: ClientTLSMode | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: tuple[str, ...] = fld(default=())
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None


@message
class LocalityLoadBalancerSetting:
    """Locality-aware load balancing: weighted spread or failover across regions and zones.

    Istio ``networking.v1alpha3.LocalityLoadBalancerSetting``. Set at most one of ``distribute``, ``failover``
    and ``failover_priority``; failover only acts when outlier detection is configured.
    """

    distribute: tuple[LocalityDistribute, ...] = fld(default=())
    failover: tuple[LocalityFailover, ...] = fld(default=())
    failover_priority: tuple[str, ...] = fld(default=())
    enabled: bool | None = None


@message
class LocalityDistribute:
    """Share of traffic from one origin locality sent to each target locality (weights add up to 100).

    Istio ``networking.v1alpha3.LocalityLoadBalancerSetting.Distribute``.
    """

    from_: str | None = fld(json="from")
    to: dict[str, int] = fld(proto="uint32", factory=dict)


@message
class LocalityFailover:
    """The region that takes over when endpoints in the ``from_`` region are unhealthy.

    Istio ``networking.v1alpha3.LocalityLoadBalancerSetting.Failover``.
    """

    from_: str | None = fld(json="from")
    to: str | None = None


@message
class ZoneAwareLoadBalancerSetting:
    """Zone-aware load balancing, the alternative to ``LocalityLoadBalancerSetting``.

    Istio ``networking.v1alpha3.ZoneAwareLoadBalancerSetting``.
    """

    enabled: bool | None = None
    failover: tuple[ZoneAwareFailover, ...] = fld(default=())
    failover_priority: tuple[str, ...] = fld(default=())
    min_cluster_size: int | None = fld(proto="uint64")


@message
class ZoneAwareFailover:
    """The region that takes over from ``from_`` in zone-aware load balancing.

    Istio ``networking.v1alpha3.ZoneAwareLoadBalancerSetting.Failover``.
    """

    from_: str | None = fld(json="from")
    to: str | None = None
