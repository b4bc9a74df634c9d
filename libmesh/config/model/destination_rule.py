from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyWorkloadSelector
from .virtual_service import PortSelector

__all__ = ["BackendUtilization", "ClientTLSMode", "ClientTLSSettings", "ConnectionKeepalive", "ConnectionPoolSettings", "ConsistentHashLB", "DestinationRuleSpec", "H2UpgradePolicy", "HTTPCookie", "HTTPCookieAttribute", "HTTPSettings", "LoadBalancerSettings", "LocalityDistribute", "LocalityFailover", "LocalityLoadBalancerSetting", "MagLev", "OutlierDetection", "PortTrafficPolicy", "ProxyProtocol", "ProxyProtocolVersion", "RetryBudget", "RingHash", "SimpleLB", "Subset", "TCPSettings", "TcpKeepalive", "TrafficPolicy", "TunnelSettings", "WarmupConfiguration", "ZoneAwareFailover", "ZoneAwareLoadBalancerSetting"]


class ProxyProtocolVersion(StrEnum):
    """TODO_DOC networking.v1alpha3.TrafficPolicy.ProxyProtocol.VERSION"""

    V1 = "V1"
    V2 = "V2"


class SimpleLB(StrEnum):
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.SimpleLB"""

    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


class H2UpgradePolicy(StrEnum):
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy"""

    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


class ClientTLSMode(StrEnum):
    """TODO_DOC networking.v1alpha3.ClientTLSSettings.TLSmode"""

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@message
class DestinationRuleSpec:
    """TODO_DOC networking.v1alpha3.DestinationRule"""

    host: str | None = fld(required=True)
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = fld(default=())
    export_to: tuple[str, ...] = fld(default=())
    workload_selector: PolicyWorkloadSelector | None = None


@message
class TrafficPolicy:
    """TODO_DOC networking.v1alpha3.TrafficPolicy"""

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
    """TODO_DOC networking.v1alpha3.TrafficPolicy.PortTrafficPolicy"""

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@message
class TunnelSettings:
    """TODO_DOC networking.v1alpha3.TrafficPolicy.TunnelSettings"""

    protocol: str | None = None
    target_host: str | None = fld(required=True)
    target_port: int | None = fld(proto="uint32", required=True)


@message
class ProxyProtocol:
    """TODO_DOC networking.v1alpha3.TrafficPolicy.ProxyProtocol"""

    version: ProxyProtocolVersion | None = None


@message
class RetryBudget:
    """TODO_DOC networking.v1alpha3.TrafficPolicy.RetryBudget"""

    percent: float | None = None
    min_retry_concurrency: int | None = fld(proto="uint32")
    budget_interval: Duration | None = None


@message
class Subset:
    """TODO_DOC networking.v1alpha3.Subset"""

    name: str | None = fld(required=True)
    labels: dict[str, str] = fld(factory=dict)
    traffic_policy: TrafficPolicy | None = None


@message
class LoadBalancerSettings:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings"""

    simple: SimpleLB | None = fld(oneof="lb_policy")
    consistent_hash: ConsistentHashLB | None = fld(oneof="lb_policy")
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None
    backend_utilization: BackendUtilization | None = None


@message
class BackendUtilization:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.BackendUtilization (istio/istio CRD, newer than istio/api)"""

    error_utilization_penalty_percent: int | None = fld(proto="uint32")
    metric_names_for_computing_utilization: tuple[str, ...] = fld(default=())
    weight_expiration_period: Duration | None = None
    weight_stabilization_period: Duration | None = None
    weight_update_period: Duration | None = None


@message
class ConsistentHashLB:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB"""

    http_header_name: str | None = fld(oneof="hash_key")
    http_cookie: HTTPCookie | None = fld(oneof="hash_key")
    use_source_ip: bool | None = fld(oneof="hash_key")
    http_query_parameter_name: str | None = fld(oneof="hash_key")
    ring_hash: RingHash | None = fld(oneof="hash_algorithm")
    maglev: MagLev | None = fld(oneof="hash_algorithm")
    minimum_ring_size: int | None = fld(proto="uint64", deprecated=True)


@message
class RingHash:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.RingHash"""

    minimum_ring_size: int | None = fld(proto="uint64")


@message
class MagLev:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.MagLev"""

    table_size: int | None = fld(proto="uint64")


@message
class HTTPCookie:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie"""

    name: str | None = fld(required=True)
    path: str | None = None
    ttl: Duration | None = None
    attributes: tuple[HTTPCookieAttribute, ...] = fld(default=())


@message
class HTTPCookieAttribute:
    """TODO_DOC networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie.Attribute"""

    name: str | None = fld(required=True)
    value: str | None = None


@message
class WarmupConfiguration:
    """TODO_DOC networking.v1alpha3.WarmupConfiguration"""

    duration: Duration | None = fld(required=True)
    minimum_percent: float | None = None
    aggression: float | None = None


@message
class ConnectionPoolSettings:
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings"""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@message
class TCPSettings:
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings.TCPSettings"""

    max_connections: int | None = fld(proto="int32")
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


@message
class TcpKeepalive:
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings.TCPSettings.TcpKeepalive"""

    probes: int | None = fld(proto="uint32")
    time: Duration | None = None
    interval: Duration | None = None


@message
class HTTPSettings:
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings.HTTPSettings"""

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
    """TODO_DOC networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.ConnectionKeepalive"""

    interval: Duration | None = None
    timeout: Duration | None = None


@message
class OutlierDetection:
    """TODO_DOC networking.v1alpha3.OutlierDetection"""

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
    """TODO_DOC networking.v1alpha3.ClientTLSSettings"""

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
    """TODO_DOC networking.v1alpha3.LocalityLoadBalancerSetting"""

    distribute: tuple[LocalityDistribute, ...] = fld(default=())
    failover: tuple[LocalityFailover, ...] = fld(default=())
    failover_priority: tuple[str, ...] = fld(default=())
    enabled: bool | None = None


@message
class LocalityDistribute:
    """TODO_DOC networking.v1alpha3.LocalityLoadBalancerSetting.Distribute"""

    from_: str | None = fld(json="from")
    to: dict[str, int] = fld(proto="uint32", factory=dict)


@message
class LocalityFailover:
    """TODO_DOC networking.v1alpha3.LocalityLoadBalancerSetting.Failover"""

    from_: str | None = fld(json="from")
    to: str | None = None


@message
class ZoneAwareLoadBalancerSetting:
    """TODO_DOC networking.v1alpha3.ZoneAwareLoadBalancerSetting"""

    enabled: bool | None = None
    failover: tuple[ZoneAwareFailover, ...] = fld(default=())
    failover_priority: tuple[str, ...] = fld(default=())
    min_cluster_size: int | None = fld(proto="uint64")


@message
class ZoneAwareFailover:
    """TODO_DOC networking.v1alpha3.ZoneAwareLoadBalancerSetting.Failover"""

    from_: str | None = fld(json="from")
    to: str | None = None

