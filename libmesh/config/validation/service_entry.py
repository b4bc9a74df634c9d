"""Istio's rules for ServiceEntry, WorkloadEntry and WorkloadGroup.

The three kinds share the endpoint rules: a ServiceEntry's ``endpoints`` are WorkloadEntry specs, and a
WorkloadGroup's ``template`` is one too (without an address, which is filled in when a workload registers).
Both the webhook checks of ``istiod`` and the CEL rules of Istio's CRDs are applied, so that a config is
rejected here whenever either would reject it.

:func:`parse_protocol` and the protocol families are public because Gateway and Sidecar ports use them too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set

from ..model.service_entry import ServiceEntryLocation, ServiceEntryResolution, ServiceEntrySpec, ServicePort
from ..model.workload_entry import WorkloadEntrySpec
from ..model.workload_group import ReadinessProbe, WorkloadGroupSpec
from ..resources import ServiceEntry, WorkloadEntry, WorkloadGroup
from . import Context, Reporter, checks
from .common import (
    fqdn_error,
    is_dns1123_label,
    is_ip_address,
    key_path,
    validate_export_to,
    validate_ip_subnet,
    validate_labels,
    validate_port,
    validate_selector_labels,
    validate_wildcard_domain,
)

__all__ = ["HTTP_PROTOCOLS", "TCP_PROTOCOLS", "TLS_PROTOCOLS", "parse_protocol"]

_PROTOCOLS = {
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "grpc-web": "GRPC-Web",
    "http": "HTTP",
    "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2",
    "https": "HTTPS",
    "tls": "TLS",
    "mongo": "Mongo",
    "redis": "Redis",
    "mysql": "MySQL",
}

#: Protocols Istio serves as HTTP (routing by VirtualService ``http`` rules).
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"})
#: Protocols that carry TLS that the proxy can route by SNI.
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
#: Protocols proxied as opaque TCP.
TCP_PROTOCOLS = frozenset({"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"})

_UNIX_PREFIX = "unix://"
# The CRD's rule for the names in a WorkloadEntry's ``ports`` map (a DNS label shorter than 63 characters).
_PORT_NAME_RE = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_PROBE_HEADER_RE = re.compile(r"[-A-Za-z0-9]+")
_USE_WAYPOINT_LABEL = "istio.io/use-waypoint"


def parse_protocol(name: str | None) -> str | None:
    """Istio's canonical name of port protocol ``name`` (case-insensitive), or ``None`` when Istio does not
    know it (an empty protocol is unknown too: Istio then sniffs the protocol).

    >>> parse_protocol("grpc"), parse_protocol("Http2"), parse_protocol("kafka")
    ('GRPC', 'HTTP2', None)
    """
    return _PROTOCOLS.get((name or "").lower())


def _protocol_error(name: str | None) -> str | None:
    if name and parse_protocol(name) is None:
        return f"unsupported protocol: {name}"
    return None


# --- WorkloadEntry and endpoints -------------------------------------------------------------------------


def _check_endpoint_basics(r: Reporter, we: WorkloadEntrySpec, *, address_required: bool = True) -> None:
    """The rules every WorkloadEntry spec obeys wherever it appears: an address (unless the workload is
    reached through a network gateway), well-formed Unix socket addresses, port names and numbers, labels."""
    address = we.address or ""
    if not address and address_required:
        if not we.network:
            r.error("address", "Address is required (it may be left out only when network is set)")
        else:
            r.warn("address", f'address is unset with network "{we.network}"')
    if address.startswith(_UNIX_PREFIX):
        path = address[len(_UNIX_PREFIX) :]
        if not path.startswith(("/", "@")):
            r.error("address", f'UDS must be an absolute path or abstract socket, got "{address}"')
        elif path.endswith("/"):
            r.error("address", f'UDS may not be a dir: "{address}"')
        if we.ports:
            r.error("ports", f'UDS may not include ports: unix endpoint "{address}" must not set ports')
    ports = r.at("ports")
    for name, number in we.ports.items():
        if len(name) >= 63 or not _PORT_NAME_RE.fullmatch(name):
            ports.error(key_path(name), f'invalid value "{name}": port name must be valid (a DNS-1123 label)')
        validate_port(ports, key_path(name), number)
    validate_labels(r, "labels", we.labels)


def _check_endpoint_ports_declared(r: Reporter, we: WorkloadEntrySpec, service_ports: Set[str]) -> None:
    ports = r.at("ports")
    for name in we.ports:
        if name not in service_ports:
            ports.error(key_path(name), f'endpoint port "{name}" is not defined by the service entry')


@checks(WorkloadEntry)
def _workload_entry(we: WorkloadEntry, r: Reporter, ctx: Context) -> None:
    s = r.at("spec")
    spec: WorkloadEntrySpec = we.spec
    _check_endpoint_basics(s, spec)
    address = spec.address or ""
    # A WorkloadEntry may back STATIC or DNS service entries, so both IPs and host names are fine.
    if (
        address
        and not address.startswith(_UNIX_PREFIX)
        and not is_ip_address(address)
        and fqdn_error(address)
    ):
        s.error("address", f'endpoint address "{address}" is not a valid FQDN or an IP address')


# --- ServiceEntry ----------------------------------------------------------------------------------------


@checks(ServiceEntry)
def _service_entry(se: ServiceEntry, r: Reporter, ctx: Context) -> None:
    spec: ServiceEntrySpec = se.spec
    s = r.at("spec")
    resolution = spec.resolution or ServiceEntryResolution.NONE
    if spec.workload_selector is not None:
        validate_selector_labels(s, "workloadSelector.labels", spec.workload_selector.labels)
        if spec.endpoints:
            s.error("workloadSelector", "only one of WorkloadSelector or Endpoints can be set")
    _check_hosts(s, spec, resolution)
    _check_addresses(s, spec, resolution)
    service_ports = _check_ports(s.at("ports"), spec.ports)
    for i, endpoint in enumerate(spec.endpoints):
        _check_endpoint_basics(s.at(f"endpoints[{i}]"), endpoint)
    if resolution is ServiceEntryResolution.NONE:
        if spec.endpoints:
            s.error(
                "endpoints", "NONE mode cannot set endpoints: no endpoints may be given for resolution NONE"
            )
        if spec.workload_selector is not None:
            s.warn("workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
    elif resolution is ServiceEntryResolution.STATIC:
        _check_static_endpoints(s, spec.endpoints, service_ports)
    elif resolution in (ServiceEntryResolution.DNS, ServiceEntryResolution.DNS_ROUND_ROBIN):
        _check_dns(s, spec, resolution, service_ports)
    elif resolution is ServiceEntryResolution.DYNAMIC_DNS:
        _check_dynamic_dns(s, se, spec)
    # With plain TCP nothing tells the hosts apart (no Host header, no SNI), unless resolution is NONE and
    # the hosts are ignored.
    if resolution is not ServiceEntryResolution.NONE and len(spec.hosts) > 1:
        for i, port in enumerate(spec.ports):
            protocol = parse_protocol(port.protocol)
            if protocol not in HTTP_PROTOCOLS and protocol not in TLS_PROTOCOLS:
                s.error(f"ports[{i}].protocol", "multiple hosts provided with non-HTTP, non-TLS ports")
                break
    validate_export_to(s, "exportTo", ctx.namespace, spec.export_to, service_entry=True)


def _check_hosts(r: Reporter, spec: ServiceEntrySpec, resolution: ServiceEntryResolution) -> None:
    if not spec.hosts:
        r.error("hosts", "service entry must have at least one host")
    for i, host in enumerate(spec.hosts):
        where = f"hosts[{i}]"
        if host == "*":
            r.error(where, 'hostname cannot be wildcard: "*" is not allowed in a service entry')
            continue
        validate_wildcard_domain(r, where, host)
        if resolution is not ServiceEntryResolution.DYNAMIC_DNS and "*" in host and not host.startswith("*."):
            # Istio only warns here, for compatibility with service entries written before the rule existed.
            r.warn(where, f'partial wildcard "{host}" not allowed')


def _check_addresses(r: Reporter, spec: ServiceEntrySpec, resolution: ServiceEntryResolution) -> None:
    cidr_at: str | None = None
    for i, address in enumerate(spec.addresses):
        validate_ip_subnet(r, f"addresses[{i}]", address)
        if "/" in address and cidr_at is None:
            cidr_at = f"addresses[{i}]"
    if cidr_at is not None and resolution not in (ServiceEntryResolution.NONE, ServiceEntryResolution.STATIC):
        r.error(cidr_at, "CIDR addresses are allowed only for NONE/STATIC resolution types")


def _check_ports(r: Reporter, ports: Sequence[ServicePort]) -> set[str]:
    """Check the service ports; returns their names (which endpoint ``ports`` maps must use)."""
    names: dict[str, int] = {}
    numbers: dict[int, int] = {}
    for i, port in enumerate(ports):
        at = r.at(f"[{i}]")
        if port.name is not None:
            if port.name in names:
                at.error(
                    "name",
                    f'Duplicate value: port name "{port.name}" is already used by ports[{names[port.name]}]',
                )
            else:
                names[port.name] = i
            if not is_dns1123_label(port.name):
                at.error("name", f"invalid port name: {port.name}")
        if port.number is not None:
            if port.number in numbers:
                at.error(
                    "number",
                    f"port number cannot be duplicated: {port.number} is already used by "
                    f"ports[{numbers[port.number]}]",
                )
            else:
                numbers[port.number] = i
            validate_port(at, "number", port.number)
        validate_port(at, "targetPort", port.target_port)
        if problem := _protocol_error(port.protocol):
            at.error("protocol", problem)
    return set(names)


def _check_static_endpoints(
    r: Reporter, endpoints: Sequence[WorkloadEntrySpec], service_ports: Set[str]
) -> None:
    for i, endpoint in enumerate(endpoints):
        at = r.at(f"endpoints[{i}]")
        address = endpoint.address or ""
        if address.startswith(_UNIX_PREFIX):
            # A socket has no port of its own, so the entry can only describe one service port.
            if len(service_ports) != 1:
                at.error("address", "exactly 1 service port required for unix endpoints")
        elif address and not is_ip_address(address):
            at.error(
                "address", f'endpoint address "{address}" is not a valid IP address (resolution is STATIC)'
            )
        _check_endpoint_ports_declared(at, endpoint, service_ports)


def _check_dns(
    r: Reporter, spec: ServiceEntrySpec, resolution: ServiceEntryResolution, service_ports: Set[str]
) -> None:
    mode = resolution.value
    if not spec.endpoints:
        # Without endpoints the hosts themselves are resolved, so they must be resolvable names.
        for i, host in enumerate(spec.hosts):
            if host != "*" and (problem := fqdn_error(host)):
                r.error(
                    f"hosts[{i}]",
                    f"hosts must be FQDN if no endpoints are provided for resolution mode {mode}: {problem}",
                )
                break
    if resolution is ServiceEntryResolution.DNS_ROUND_ROBIN and len(spec.endpoints) > 1:
        r.error("endpoints", "DNS_ROUND_ROBIN mode cannot have multiple endpoints: there must be 0 or 1")
    for i, endpoint in enumerate(spec.endpoints):
        at = r.at(f"endpoints[{i}]")
        address = endpoint.address or ""
        if not is_ip_address(address) and fqdn_error(address):
            at.error("address", f'endpoint address "{address}" is not a valid FQDN or an IP address')
        _check_endpoint_ports_declared(at, endpoint, service_ports)
    if spec.addresses and len(spec.hosts) > 1:
        for i, port in enumerate(spec.ports):
            if parse_protocol(port.protocol) in TCP_PROTOCOLS:
                r.warn(
                    f"ports[{i}]",
                    "service entry can not have more than one host specified simultaneously with address "
                    "and tcp port",
                )
                break


def _check_dynamic_dns(r: Reporter, se: ServiceEntry, spec: ServiceEntrySpec) -> None:
    mode = ServiceEntryResolution.DYNAMIC_DNS.value
    for i, host in enumerate(spec.hosts):
        if not host.startswith("*"):
            r.error(f"hosts[{i}]", f"host must be wildcarded for resolution mode {mode}")
    if spec.addresses:
        r.error(
            "addresses",
            f"addresses cannot be set for resolution type {mode}: "
            "HTTP route domains are generated from hosts only",
        )
    if spec.endpoints:
        r.error(
            "endpoints",
            f"endpoints cannot be set for resolution type {mode}: "
            "the destination address comes from the hosts",
        )
    for i, port in enumerate(spec.ports):
        if parse_protocol(port.protocol) not in ("HTTP", "TLS", "GRPC", "HTTP2"):
            r.error(
                f"ports[{i}].protocol",
                f"only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {mode}",
            )
    waypoint = se.metadata.labels.get(_USE_WAYPOINT_LABEL, "")
    if spec.location is ServiceEntryLocation.MESH_INTERNAL and waypoint and waypoint.lower() != "none":
        r.error(
            "location",
            f"location MESH_INTERNAL with resolution type {mode} is not supported when using waypoints",
        )


# --- WorkloadGroup ---------------------------------------------------------------------------------------


@checks(WorkloadGroup)
def _workload_group(wg: WorkloadGroup, r: Reporter, ctx: Context) -> None:
    spec: WorkloadGroupSpec = wg.spec
    s = r.at("spec")
    if spec.template is not None:
        # The address is filled in when a workload registers, so the template may leave it out.
        _check_endpoint_basics(s.at("template"), spec.template, address_required=False)
    if spec.metadata is not None:
        validate_labels(s, "metadata.labels", spec.metadata.labels)
    _check_probe(s, "probe", spec.probe)


def _check_probe(r: Reporter, path: str, probe: ReadinessProbe | None) -> None:
    if probe is None:
        return
    at = r.at(path)
    for field, value in (
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ):
        if value is not None and value < 0:
            at.error(field, f"{field} must be non-negative")
    if probe.http_get is not None:
        http = probe.http_get
        validate_port(at, "httpGet.port", http.port)
        if http.scheme not in (None, "", "HTTP", "HTTPS"):
            at.error("httpGet.scheme", f'scheme must be one of [HTTP, HTTPS], got "{http.scheme}"')
        for i, header in enumerate(http.http_headers):
            where = f"httpGet.httpHeaders[{i}].name"
            name = header.name or ""
            if not name:
                at.error(where, "header name cannot be empty")
            elif not _PROBE_HEADER_RE.fullmatch(name):
                at.error(
                    where, f'header name "{name}" should match [-A-Za-z0-9]+ (letters, digits and dashes)'
                )
    elif probe.tcp_socket is not None:
        validate_port(at, "tcpSocket.port", probe.tcp_socket.port)
    elif probe.exec is not None:
        if not probe.exec.command:
            at.error("exec.command", "exec.command is required")
        for i, arg in enumerate(probe.exec.command):
            if not arg:
                at.error(f"exec.command[{i}]", "exec.command entries must not be empty")
    elif probe.grpc is not None:
        validate_port(at, "grpc.port", probe.grpc.port)
    else:
        r.error(path, "probe must set one health check method: httpGet, tcpSocket, exec or grpc")
