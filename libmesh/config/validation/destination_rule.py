"""Istio's rules for DestinationRule: host, subsets, exportTo and workloadSelector, and the traffic policy.

:func:`validate_traffic_policy` and :func:`validate_connection_pool` are public because Sidecar reuses the
connection-pool rules for its inbound listeners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..model.destination_rule import (
    ClientTLSMode,
    ClientTLSSettings,
    ConnectionPoolSettings,
    DestinationRuleSpec,
    H2UpgradePolicy,
    LoadBalancerSettings,
    LocalityLoadBalancerSetting,
    OutlierDetection,
    PortTrafficPolicy,
    RetryBudget,
    Subset,
    TrafficPolicy,
    TunnelSettings,
    ZoneAwareLoadBalancerSetting,
)
from ..resources import DestinationRule
from . import Context, Reporter, checks
from .common import (
    fqdn_error,
    ip_address_error,
    port_error,
    validate_duration,
    validate_export_to,
    validate_labels,
    validate_percent,
    validate_selector_labels,
    validate_subset_name,
    validate_wildcard_domain,
)

__all__ = ["validate_connection_pool", "validate_traffic_policy"]

# Envoy refuses larger Maglev tables; the size must also be prime for Maglev's permutation to work.
_MAGLEV_TABLE_LIMIT = 5000011
# Envoy's upper bound on a ring-hash ring (RingHashLbConfig.minimum_ring_size).
_MAX_RING_SIZE = 8_388_608
# Topology labels that locality-aware failover already orders by; failoverPriority may not repeat them.
_TOPOLOGY_LABELS = frozenset(
    {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
)
_CONFIGMAP_PREFIX = "configmap://"


@checks(DestinationRule)
def _destination_rule(dr: DestinationRule, r: Reporter, ctx: Context) -> None:
    spec: DestinationRuleSpec = dr.spec
    s = r.at("spec")
    validate_wildcard_domain(s, "host", spec.host)
    validate_traffic_policy(s, "trafficPolicy", spec.traffic_policy, ctx.namespace)
    _check_subsets(s.at("subsets"), spec.subsets, ctx.namespace)
    validate_export_to(
        s, "exportTo", ctx.namespace, spec.export_to, dr_with_selector=spec.workload_selector is not None
    )
    if spec.workload_selector is not None:
        validate_selector_labels(s, "workloadSelector.matchLabels", spec.workload_selector.match_labels)


def _check_subsets(r: Reporter, subsets: Sequence[Subset], namespace: str) -> None:
    seen: set[str] = set()
    for i, subset in enumerate(subsets):
        at = r.at(f"[{i}]")
        name = subset.name
        if name is not None:
            if name in seen:
                at.error("name", f"duplicate subset names: {name}")
            seen.add(name)
        validate_subset_name(at, "name", name)
        validate_labels(at, "labels", subset.labels)
        validate_traffic_policy(at, "trafficPolicy", subset.traffic_policy, namespace)


def validate_traffic_policy(r: Reporter, path: str, policy: TrafficPolicy | None, namespace: str) -> None:
    """Report problems in a DestinationRule ``trafficPolicy`` (top level or a subset's) at ``path``.

    ``namespace`` is the rule's namespace, which ``configmap://`` TLS credentials must live in.
    """
    if policy is None:
        return
    at = r.at(path)
    if (
        policy.outlier_detection is None
        and policy.connection_pool is None
        and policy.load_balancer is None
        and policy.tls is None
        and not policy.port_level_settings
        and policy.tunnel is None
        and policy.proxy_protocol is None
        and policy.retry_budget is None
    ):
        r.error(path, "traffic policy must have at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        r.error(path, "tunnel and proxyProtocol must not be set together")
    _check_outlier_detection(at, "outlierDetection", policy.outlier_detection)
    validate_connection_pool(at, "connectionPool", policy.connection_pool)
    _check_load_balancer(at, "loadBalancer", policy.load_balancer, policy.outlier_detection)
    _check_client_tls(at, "tls", policy.tls, namespace)
    _check_port_level_settings(at, "portLevelSettings", policy.port_level_settings, namespace)
    _check_tunnel(at, "tunnel", policy.tunnel)
    _check_retry_budget(at, "retryBudget", policy.retry_budget)


def _check_port_level_settings(
    r: Reporter, path: str, settings: Sequence[PortTrafficPolicy], namespace: str
) -> None:
    seen: set[int] = set()
    for i, pls in enumerate(settings):
        item = f"{path}[{i}]"
        at = r.at(item)
        if pls.port is None:
            r.error(item, "portTrafficPolicy must have valid port")
        elif pls.port.number is None:
            at.error("port", "port traffic policy must name a port number")
        else:
            number = pls.port.number
            if problem := port_error(number):
                at.error("port.number", problem)
            elif number in seen:
                # Istio applies the first entry for a port and silently ignores the rest.
                at.warn(
                    "port.number",
                    f"duplicate port {number} in portLevelSettings; only the first entry applies",
                )
            seen.add(number)
        if (
            pls.outlier_detection is None
            and pls.connection_pool is None
            and pls.load_balancer is None
            and pls.tls is None
        ):
            r.error(item, "port traffic policy must have at least one field")
            continue
        _check_outlier_detection(at, "outlierDetection", pls.outlier_detection)
        validate_connection_pool(at, "connectionPool", pls.connection_pool)
        _check_load_balancer(at, "loadBalancer", pls.load_balancer, pls.outlier_detection)
        _check_client_tls(at, "tls", pls.tls, namespace)


def _check_tunnel(r: Reporter, path: str, tunnel: TunnelSettings | None) -> None:
    if tunnel is None:
        return
    at = r.at(path)
    if tunnel.protocol is not None and tunnel.protocol not in ("", "CONNECT", "POST"):
        at.error("protocol", 'tunnel protocol must be "CONNECT" or "POST"')
    host = tunnel.target_host
    if host is not None:
        fqdn_problem, ip_problem = fqdn_error(host), ip_address_error(host)
        if fqdn_problem and ip_problem:
            at.error("targetHost", f"tunnel target host must be a valid FQDN or IP address: {fqdn_problem}")
    if tunnel.target_port is not None and (problem := port_error(tunnel.target_port)):
        at.error("targetPort", f"tunnel target port is invalid: {problem}")


def _check_retry_budget(r: Reporter, path: str, budget: RetryBudget | None) -> None:
    if budget is None:
        return
    at = r.at(path)
    if budget.percent is not None and not 0.0 <= budget.percent <= 100.0:
        at.error("percent", f"retry budget percent must be between 0 and 100 (got {budget.percent:g})")
    if budget.budget_interval is not None and budget.budget_interval.total_seconds() < 0:
        at.error("budgetInterval", "retry budget interval must not be negative")


# --- outlier detection -----------------------------------------------------------------------------------


def _check_outlier_detection(r: Reporter, path: str, outlier: OutlierDetection | None) -> None:
    if outlier is None:
        return
    at = r.at(path)
    validate_duration(at, "baseEjectionTime", outlier.base_ejection_time)
    validate_duration(at, "interval", outlier.interval)
    if outlier.consecutive_errors:
        at.warn(
            "consecutiveErrors",
            "outlier detection consecutiveErrors is deprecated, use consecutiveGatewayErrors or "
            "consecutive5xxErrors instead",
        )
    if (
        not outlier.split_external_local_origin_errors
        and (outlier.consecutive_local_origin_failures or 0) > 0
    ):
        at.error(
            "consecutiveLocalOriginFailures",
            "outlier detection consecutiveLocalOriginFailures is set, "
            "but splitExternalLocalOriginErrors is false",
        )
    validate_percent(at, "maxEjectionPercent", outlier.max_ejection_percent)
    validate_percent(at, "minHealthPercent", outlier.min_health_percent)
    for i, code in enumerate(outlier.outlier_detection_http_error_codes):
        if not 100 <= code <= 599:
            at.error(
                f"outlierDetectionHttpErrorCodes[{i}]", f"HTTP status code {code} must be between 100 and 599"
            )


# --- connection pool -------------------------------------------------------------------------------------


def validate_connection_pool(r: Reporter, path: str, settings: ConnectionPoolSettings | None) -> None:
    """Report problems in a ``connectionPool`` (DestinationRule, or a Sidecar's inbound pools) at ``path``:
    it must set ``tcp`` or ``http``, counts may not be negative, and durations need whole milliseconds."""
    if settings is None:
        return
    if settings.http is None and settings.tcp is None:
        r.error(path, "connection pool must have at least one field")
        return
    at = r.at(path)
    http = settings.http
    if http is not None:
        h = at.at("http")
        for field, value, what in (
            ("http1MaxPendingRequests", http.http1_max_pending_requests, "http1 max pending requests"),
            ("http2MaxRequests", http.http2_max_requests, "http2 max requests"),
            ("maxRequestsPerConnection", http.max_requests_per_connection, "max requests per connection"),
            ("maxRetries", http.max_retries, "max retries"),
            ("maxConcurrentStreams", http.max_concurrent_streams, "max concurrent streams"),
        ):
            if value is not None and value < 0:
                h.error(field, f"{what} must be non-negative")
        validate_duration(h, "idleTimeout", http.idle_timeout)
        if http.h2_upgrade_policy is H2UpgradePolicy.UPGRADE and http.use_client_protocol:
            h.error("useClientProtocol", "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
        keepalive = http.http2_keep_alive
        if keepalive is not None:
            k = h.at("http2KeepAlive")
            if keepalive.interval is None:
                k.error("interval", "http2 keepalive interval is required")
            validate_duration(k, "interval", keepalive.interval)
            if keepalive.timeout is None:
                k.error("timeout", "http2 keepalive timeout is required")
            validate_duration(k, "timeout", keepalive.timeout)
    tcp = settings.tcp
    if tcp is not None:
        t = at.at("tcp")
        if tcp.max_connections is not None and tcp.max_connections < 0:
            t.error("maxConnections", "max connections must be non-negative")
        validate_duration(t, "connectTimeout", tcp.connect_timeout)
        validate_duration(t, "maxConnectionDuration", tcp.max_connection_duration)
        # An idle timeout of 0 disables the timeout altogether, so only non-zero values are checked.
        if tcp.idle_timeout is not None and abs(tcp.idle_timeout.total_seconds()) >= 0.001:
            validate_duration(t, "idleTimeout", tcp.idle_timeout)
        if tcp.tcp_keepalive is not None:
            validate_duration(t, "tcpKeepalive.time", tcp.tcp_keepalive.time)
            validate_duration(t, "tcpKeepalive.interval", tcp.tcp_keepalive.interval)


# --- load balancer ---------------------------------------------------------------------------------------


def _is_prime(n: int) -> bool:
    # Same test as Envoy's, so both agree on the edge cases (1 counts as prime there).
    if 0 < n < 4:
        return True
    if n % 2 == 0:
        return False
    return all(n % f for f in range(3, math.isqrt(n) + 1, 2))


def _check_load_balancer(
    r: Reporter, path: str, lb: LoadBalancerSettings | None, outlier: OutlierDetection | None
) -> None:
    if lb is None:
        return
    at = r.at(path)
    ch = lb.consistent_hash
    if ch is not None:
        c = at.at("consistentHash")
        if (
            ch.http_header_name is None
            and ch.http_cookie is None
            and ch.use_source_ip is None
            and ch.http_query_parameter_name is None
        ):
            c.warn(
                "",
                "consistentHash sets no hash key (httpHeaderName, httpCookie, useSourceIp or "
                "httpQueryParameterName), so requests are not pinned to an endpoint",
            )
        cookie = ch.http_cookie
        if cookie is not None:
            if cookie.name == "":
                c.error("httpCookie.name", "name required for httpCookie")
            names: set[str] = set()
            for i, attr in enumerate(cookie.attributes):
                where = f"httpCookie.attributes[{i}].name"
                if not attr.name:
                    c.error(where, "cookie attribute name cannot be empty")
                elif attr.name in names:
                    c.error(where, f"duplicate cookie attribute name: {attr.name}")
                else:
                    names.add(attr.name)
        if ch.minimum_ring_size:
            c.warn(
                "minimumRingSize",
                "consistentHash minimumRingSize is deprecated, use ringHash.minimumRingSize instead",
            )
            if ch.ring_hash is not None or ch.maglev is not None:
                c.error("minimumRingSize", "only one of minimumRingSize or maglev/ringHash can be specified")
        for where, size in (
            ("minimumRingSize", ch.minimum_ring_size),
            ("ringHash.minimumRingSize", ch.ring_hash.minimum_ring_size if ch.ring_hash else None),
        ):
            if size is not None and size > _MAX_RING_SIZE:
                c.error(where, f"minimumRingSize must be at most {_MAX_RING_SIZE} (got {size})")
        if ch.maglev is not None:
            size = ch.maglev.table_size or 0
            if size == 0:
                c.error("maglev.tableSize", "tableSize must be set for maglev")
            elif size >= _MAGLEV_TABLE_LIMIT:
                c.error("maglev.tableSize", f"tableSize must be less than {_MAGLEV_TABLE_LIMIT} for maglev")
            elif not _is_prime(size):
                c.error("maglev.tableSize", f"tableSize must be a prime number for maglev (got {size})")
    if lb.locality_lb_setting is not None and lb.zone_aware_lb_setting is not None:
        at.error("zoneAwareLbSetting", "only one of localityLbSetting and zoneAwareLbSetting can be set")
    _check_locality_lb(at, "localityLbSetting", lb.locality_lb_setting, outlier)
    _check_zone_aware_lb(at, "zoneAwareLbSetting", lb.zone_aware_lb_setting, outlier)
    if lb.warmup_duration_secs is not None and lb.warmup is not None:
        at.error("warmup", "only one of warmupDurationSecs or warmup can be set")
    validate_duration(at, "warmupDurationSecs", lb.warmup_duration_secs)
    warmup = lb.warmup
    if warmup is not None:
        w = at.at("warmup")
        if warmup.duration is None:
            w.error("duration", "warmup duration is required")
        validate_duration(w, "duration", warmup.duration)
        if warmup.minimum_percent is not None and not 0.0 <= warmup.minimum_percent <= 100.0:
            w.error(
                "minimumPercent",
                f"invalid value {warmup.minimum_percent:g}: minimumPercent must be between 0 and 100",
            )
        if warmup.aggression is not None and warmup.aggression <= 0.0:
            w.error("aggression", f"invalid value {warmup.aggression:g}: aggression must be greater than 0")
    if lb.zone_aware_lb_setting is not None:
        size = lb.zone_aware_lb_setting.min_cluster_size
        if size is not None and size < 1:
            at.error("zoneAwareLbSetting.minClusterSize", "minClusterSize must be at least 1")


def _failover_needs_outlier(r: Reporter, path: str, outlier: OutlierDetection | None) -> None:
    # Without outlier detection no endpoint is ever marked unhealthy, so failover never happens.
    if outlier is None:
        r.warn(path, "outlier detection policy must be provided for failover")


def _check_locality_lb(
    r: Reporter, path: str, lb: LocalityLoadBalancerSetting | None, outlier: OutlierDetection | None
) -> None:
    if lb is None:
        return
    at = r.at(path)
    if lb.distribute and lb.failover:
        r.error(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover:
        for i, label in enumerate(lb.failover_priority):
            if label in _TOPOLOGY_LABELS:
                at.error(
                    f"failoverPriority[{i}]",
                    f"can not simultaneously set 'failover' and topology label '{label}' "
                    "in 'failoverPriority'",
                )
                return
    for i, dist in enumerate(lb.distribute):
        d = at.at(f"distribute[{i}]")
        total = 0
        for weight in dist.to.values():
            if not 1 <= weight <= 100:
                d.error("to", "locality weight must be in range [1, 100]")
                return
            total += weight
        if total != 100:
            d.error("to", f"total locality weight {total} != 100")
            return
        if problem := _localities_error(list(dist.to)):
            d.error("to", problem)
    if problem := _localities_error([d.from_ or "" for d in lb.distribute]):
        at.error("distribute", problem)
    if lb.failover or lb.failover_priority:
        _failover_needs_outlier(r, path, outlier)
    for i, fo in enumerate(lb.failover):
        src, dst = fo.from_ or "", fo.to or ""
        where = f"failover[{i}]"
        if src == dst:
            at.error(where, "locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            at.error(where, "locality lb failover only specify region")
        if "*" in src or "*" in dst:
            at.error(where, "locality lb failover region should not contain '*' wildcard")


def _check_zone_aware_lb(
    r: Reporter, path: str, lb: ZoneAwareLoadBalancerSetting | None, outlier: OutlierDetection | None
) -> None:
    if lb is None:
        return
    at = r.at(path)
    for i, label in enumerate(lb.failover_priority):
        if label in _TOPOLOGY_LABELS:
            at.error(
                f"failoverPriority[{i}]",
                f"failoverPriority for zone aware lb must not use topology label '{label}'; region- and "
                "zone-level routing are handled automatically",
            )
    if lb.failover or lb.failover_priority:
        _failover_needs_outlier(r, path, outlier)
    for i, fo in enumerate(lb.failover):
        src, dst = fo.from_ or "", fo.to or ""
        where = f"failover[{i}]"
        if src == dst:
            at.error(where, "zone aware lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            at.error(
                where,
                "zone aware lb failover only specifies region; "
                "zone and subzone failover are handled automatically",
            )
        if "*" in src or "*" in dst:
            at.error(where, "zone aware lb failover region should not contain '*' wildcard")


def _localities_error(localities: list[str]) -> str | None:
    """Why a list of ``region[/zone[/subzone]]`` localities (``*`` allowed last) is malformed or overlaps."""
    # region -> zone -> set of subzones; "*" at a level means "all of it is already taken".
    taken: dict[str, dict[str, set[str]]] = {}
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
        if "*" in taken:
            return f"locality {locality} overlap with previous specified ones"
        items = locality.split("/", 2)
        if any(item == "" for item in items):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        overlap = f"locality {locality} overlap with previous specified ones"
        region = items[0]
        if len(items) == 1:
            if region in taken:
                return overlap
            taken[region] = {"*": {"*"}}
            continue
        zone = items[1]
        zones = taken.get(region)
        if len(items) == 2:
            if zones is None:
                taken[region] = {zone: {"*"}}
            elif "*" in zones or zone in zones:
                return overlap
            else:
                zones[zone] = {"*"}
            continue
        subzone = items[2]
        if zones is None:
            taken[region] = {zone: {subzone}}
        elif "*" in zones:
            return overlap
        elif zone in zones:
            if "*" in zones[zone] or subzone in zones[zone]:
                return overlap
            zones[zone].add(subzone)
        else:
            zones[zone] = {subzone}
    return None


# --- client TLS ------------------------------------------------------------------------------------------


def _check_client_tls(r: Reporter, path: str, tls: ClientTLSSettings | None, namespace: str) -> None:
    if tls is None:
        return
    at = r.at(path)
    credential = tls.credential_name or ""
    if credential.startswith(_CONFIGMAP_PREFIX):
        ns, slash, name = credential[len(_CONFIGMAP_PREFIX) :].partition("/")
        if not slash or not ns or not name.split("/")[0]:
            at.error(
                "credentialName",
                f'invalid configmap:// credentialName "{credential}": expected namespace/name',
            )
        elif ns != namespace:
            at.error(
                "credentialName",
                "invalid configmap:// credentialName: "
                f'namespace must match the configuration namespace "{namespace}"',
            )
    mode = tls.mode or ClientTLSMode.DISABLE
    if tls.insecure_skip_verify:
        if mode is ClientTLSMode.SIMPLE and (
            tls.ca_certificates or tls.credential_name or tls.subject_alt_names
        ):
            at.error(
                "insecureSkipVerify",
                "cannot specify caCertificates, credentialName or subjectAltNames "
                "when insecureSkipVerify is true",
            )
        if mode is ClientTLSMode.MUTUAL and (tls.ca_certificates or tls.subject_alt_names):
            at.error(
                "insecureSkipVerify",
                "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is true",
            )
    if mode is ClientTLSMode.ISTIO_MUTUAL:
        # Istio supplies the workload certificates itself; these fields are documented to stay empty.
        for field, value in (
            ("clientCertificate", tls.client_certificate),
            ("privateKey", tls.private_key),
            ("caCertificates", tls.ca_certificates),
            ("credentialName", tls.credential_name),
        ):
            if value:
                at.warn(field, f"{field} is ignored when mode is ISTIO_MUTUAL")
    if mode in (ClientTLSMode.SIMPLE, ClientTLSMode.MUTUAL) and tls.credential_name:
        # With a credentialName the certificates are fetched from the secret, so file paths make no sense.
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            at.error(
                "credentialName",
                "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
            )
        return
    if mode is ClientTLSMode.MUTUAL:
        if not tls.client_certificate:
            at.error("clientCertificate", "client certificate required for mutual tls")
        if not tls.private_key:
            at.error("privateKey", "private key required for mutual tls")
