"""Istio's rules for Gateway (servers, ports, hosts, bind addresses, server TLS) and Sidecar (ingress and
egress listeners, ``namespace/host`` imports, outbound traffic policy).

Both kinds describe listeners with :class:`ServerTLSSettings`, so the server-TLS rules are shared here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..model.gateway import GatewaySpec, Port, Server, ServerTLSMode, ServerTLSSettings, TLSProtocol
from ..model.sidecar import (
    CaptureMode,
    IstioEgressListener,
    IstioIngressListener,
    OutboundTrafficPolicy,
    OutboundTrafficPolicyMode,
    SidecarPort,
    SidecarSpec,
)
from ..resources import Gateway, Sidecar
from . import Context, Reporter, checks
from .common import (
    is_dns1123_label,
    validate_fqdn,
    validate_ip_address,
    validate_namespace_slash_hostname,
    validate_port,
    validate_selector_labels,
    validate_subset_name,
    validate_unix_address,
)
from .destination_rule import validate_connection_pool
from .service_entry import HTTP_PROTOCOLS, TLS_PROTOCOLS, parse_protocol

_UNIX_PREFIX = "unix://"
# Set on Gateways converted from the Kubernetes Gateway API, whose names and hosts follow looser rules.
_GATEWAY_SEMANTICS_ANNOTATION = "internal.istio.io/gateway-semantics"
# The cipher suites Envoy (BoringSSL) accepts by name in ``cipherSuites``.
_CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)
_LOOPBACK_OR_ANY = frozenset({"", "127.0.0.1", "0.0.0.0", "::1", "::"})
_INTEGER = re.compile(r"[+-]?[0-9]+")


# --- server TLS (Gateway servers and Sidecar ingress listeners) ------------------------------------------


def _is_valid_cipher_suite(suite: str) -> bool:
    # Entries starting with an operator ("-", "+", "!", "[") are cipher-list expressions Envoy parses itself.
    return suite in ("", "ALL") or not suite[0].isalnum() or suite in _CIPHER_SUITES


def _check_server_tls(r: Reporter, path: str, tls: ServerTLSSettings | None) -> None:
    if tls is None:
        return
    at = r.at(path)
    mode = tls.mode or ServerTLSMode.PASSTHROUGH  # PASSTHROUGH is the proto's zero value
    if tls.min_protocol_version in (TLSProtocol.TLSV1_0, TLSProtocol.TLSV1_1) and not tls.cipher_suites:
        at.warn(
            "minProtocolVersion",
            "TLS versions below TLSV1_2 require setting compatible cipherSuites, as the defaults no longer "
            "include any",
        )
    invalid: list[str] = []
    seen: set[str] = set()
    duplicate: list[str] = []
    for suite in tls.cipher_suites:
        if not _is_valid_cipher_suite(suite):
            invalid.append(suite)
        elif suite in seen:
            duplicate.append(suite)
        seen.add(suite)
    if invalid:
        at.warn("cipherSuites", f"ignoring invalid cipher suites: {sorted(set(invalid))}")
    if duplicate:
        at.warn("cipherSuites", f"ignoring duplicate cipher suites: {sorted(set(duplicate))}")

    if mode is ServerTLSMode.ISTIO_MUTUAL:
        # The workload's own Istio certificate is used; naming other certificates is a mistake.
        for field, value, what in (
            ("serverCertificate", tls.server_certificate, "server certificate"),
            ("privateKey", tls.private_key, "private key"),
            ("caCertificates", tls.ca_certificates, "CA bundle"),
            ("tlsCertificates", tls.tls_certificates, "tlsCertificates"),
            ("credentialName", tls.credential_name, "credentialName"),
            ("credentialNames", tls.credential_names, "credentialNames"),
        ):
            if value:
                at.error(field, f"ISTIO_MUTUAL TLS cannot have associated {what}")
        return

    if mode in (ServerTLSMode.PASSTHROUGH, ServerTLSMode.AUTO_PASSTHROUGH) and (
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or tls.tls_certificates
        or tls.credential_name
        or tls.credential_names
    ):
        r.warn(path, f"{mode.value} mode does not use certificates, they will be ignored")

    sources = [
        bool(tls.server_certificate and tls.private_key),
        bool(tls.credential_name),
        bool(tls.credential_names),
        bool(tls.tls_certificates),
    ]
    if sum(sources) > 1:
        r.error(
            path,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates "
            "should be specified",
        )
    terminating = mode in (ServerTLSMode.SIMPLE, ServerTLSMode.MUTUAL, ServerTLSMode.OPTIONAL_MUTUAL)
    if terminating and (tls.credential_name or tls.credential_names):
        # The certificates, CA and CRL all come from the secret; Istio accepts (and ignores) a caCrl file here.
        if tls.ca_crl:
            at.warn(
                "caCrl", "caCrl is ignored when credentialName is set; the CRL has to be in the credential"
            )
        return
    if terminating:
        label = "SIMPLE TLS" if mode is ServerTLSMode.SIMPLE else "MUTUAL TLS"
        if mode is not ServerTLSMode.SIMPLE and not tls.ca_certificates:
            at.error("caCertificates", f"{label} requires a client CA bundle")
        if len(tls.tls_certificates) > 2:
            at.warn("tlsCertificates", f"{label} can support up to 2 server certificates")
        if tls.tls_certificates:
            for i, cert in enumerate(tls.tls_certificates):
                if not cert.server_certificate:
                    at.error(
                        f"tlsCertificates[{i}].serverCertificate", f"{label} requires a server certificate"
                    )
                if not cert.private_key:
                    at.error(f"tlsCertificates[{i}].privateKey", f"{label} requires a private key")
        else:
            if not tls.server_certificate:
                at.error("serverCertificate", f"{label} requires a server certificate")
            if not tls.private_key:
                at.error("privateKey", f"{label} requires a private key")
    if tls.ca_crl:
        if tls.credential_name:
            at.error("caCrl", "CRL is not supported with credentialName; the CRL has to be in the credential")
        if mode is ServerTLSMode.SIMPLE:
            at.error("caCrl", "CRL is not supported with SIMPLE TLS")


# --- Gateway ---------------------------------------------------------------------------------------------


@checks(Gateway)
def _gateway(gw: Gateway, r: Reporter, ctx: Context) -> None:
    spec: GatewaySpec = gw.spec
    gateway_semantics = gw.metadata.annotations.get(_GATEWAY_SEMANTICS_ANNOTATION) == "gateway"
    if gw.metadata.name and not gateway_semantics and not is_dns1123_label(gw.metadata.name):
        r.error(
            "metadata.name", f'invalid gateway name: "{gw.metadata.name}" (it must be a DNS label, no dots)'
        )
    s = r.at("spec")
    if not spec.servers:
        s.error("servers", "gateway must have at least one server")
    port_names: dict[str, int] = {}
    for i, server in enumerate(spec.servers):
        at = s.at(f"servers[{i}]")
        _check_server(at, server, gateway_semantics)
        port = server.port
        if port is None:
            continue
        name = port.name or ""
        if name in port_names:
            at.error(
                "port.name",
                f"port names in servers must be unique: duplicate name {name} (also used by "
                f"servers[{port_names[name]}])",
            )
        else:
            port_names[name] = i
        if (
            server.tls is not None
            and server.tls.https_redirect
            and parse_protocol(port.protocol) not in HTTP_PROTOCOLS
        ):
            at.warn("tls.httpsRedirect", "tls.httpsRedirect should only be used with http servers")


def _check_server(r: Reporter, server: Server, gateway_semantics: bool) -> None:
    if not server.hosts:
        r.error("hosts", "server config must contain at least one host")
    for i, host in enumerate(server.hosts):
        validate_namespace_slash_hostname(
            r, f"hosts[{i}]", host, is_gateway=True, gateway_semantics=gateway_semantics
        )
    bind = server.bind or ""
    port_ok = _check_server_port(r, server.port, bind)
    if bind.startswith(_UNIX_PREFIX):
        validate_unix_address(r, "bind", bind[len(_UNIX_PREFIX) :])
        if server.port is not None and server.port.number:
            r.error("port.number", "port number must be 0 for unix domain socket")
    elif bind:
        validate_ip_address(r, "bind", bind)
    _check_server_tls(r, "tls", server.tls)
    if not port_ok or server.port is None:
        return
    protocol = parse_protocol(server.port.protocol)
    tls = server.tls
    if protocol in TLS_PROTOCOLS and tls is None:
        r.error("tls", "server must have TLS settings for HTTPS/TLS protocols")
    elif protocol not in TLS_PROTOCOLS and tls is not None:
        if protocol in HTTP_PROTOCOLS:
            # A plain HTTP server may only carry the httpsRedirect flag (with no certificates).
            passthrough = (tls.mode or ServerTLSMode.PASSTHROUGH) in (
                ServerTLSMode.PASSTHROUGH,
                ServerTLSMode.AUTO_PASSTHROUGH,
            )
            if not passthrough or tls.ca_certificates or tls.private_key or tls.server_certificate:
                r.error("tls", "server cannot have TLS settings for plain text HTTP ports")
        else:
            r.error("tls", "server cannot have TLS settings for non HTTPS/TLS ports")


def _check_server_port(r: Reporter, port: Port | None, bind: str) -> bool:
    """Check a server's port; True when it has no errors (the TLS-versus-protocol rules need a sound port)."""
    if port is None:
        r.error("port", "port is required")
        return False
    at = r.at("port")
    ok = True
    if parse_protocol(port.protocol) is None:
        at.error(
            "protocol",
            f'invalid protocol "{port.protocol}", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, '
            "MONGO, REDIS, MYSQL, TCP (and HTTPS, TLS with tls settings)",
        )
        ok = False
    number = port.number or 0
    if (number > 0 or not bind.startswith(_UNIX_PREFIX)) and not 1 <= number <= 65535:
        validate_port(at, "number", number)
        ok = False
    if port.target_port:
        at.error("targetPort", "targetPort has no impact on Gateways")
        ok = False
    if not port.name:
        at.error("name", "port name must be set")
        ok = False
    return ok


# --- Sidecar ---------------------------------------------------------------------------------------------


@checks(Sidecar)
def _sidecar(sc: Sidecar, r: Reporter, ctx: Context) -> None:
    spec: SidecarSpec = sc.spec
    s = r.at("spec")
    if spec.workload_selector is not None:
        validate_selector_labels(s, "workloadSelector.labels", spec.workload_selector.labels)
    if (
        not spec.egress
        and not spec.ingress
        and spec.outbound_traffic_policy is None
        and spec.inbound_connection_pool is None
    ):
        r.error("spec", "sidecar: empty configuration provided")
        return
    _check_ingress(s, spec.ingress)
    validate_connection_pool(s, "inboundConnectionPool", spec.inbound_connection_pool)
    _check_egress(s, spec.egress, ctx.namespace)
    _check_outbound_traffic_policy(s, "outboundTrafficPolicy", spec.outbound_traffic_policy)


def _check_sidecar_port(r: Reporter, port: SidecarPort) -> None:
    if port.name and not is_dns1123_label(port.name):
        r.error("name", f"invalid port name: {port.name}")
    if port.protocol and parse_protocol(port.protocol) is None:
        r.error("protocol", f"unsupported protocol: {port.protocol}")
    if port.target_port:
        r.error("targetPort", "targetPort has no impact on Sidecars")


def _check_ingress(r: Reporter, listeners: Sequence[IstioIngressListener]) -> None:
    numbers: set[int] = set()
    for i, listener in enumerate(listeners):
        at = r.at(f"ingress[{i}]")
        port = listener.port
        if port is None:
            at.error("port", "sidecar: port is required for ingress listeners")
            continue
        p = at.at("port")
        _check_sidecar_port(p, port)
        validate_port(p, "number", port.number or 0)
        if listener.bind:
            validate_ip_address(at, "bind", listener.bind)
        number = port.number or 0
        if number in numbers:
            p.error("number", "sidecar: ports on IP bound listeners must be unique")
        numbers.add(number)
        if listener.default_endpoint:
            _check_default_endpoint(at, "defaultEndpoint", listener.default_endpoint)
        tls = listener.tls
        if tls is not None:
            t = at.at("tls")
            for field, value in (
                ("subjectAltNames", tls.subject_alt_names),
                ("httpsRedirect", tls.https_redirect),
                ("credentialName", tls.credential_name),
                ("credentialNames", tls.credential_names),
                ("tlsCertificates", tls.tls_certificates),
            ):
                if value:
                    t.error(field, f"sidecar: {field} is not supported in ingress tls")
            if tls.mode in (ServerTLSMode.ISTIO_MUTUAL, ServerTLSMode.AUTO_PASSTHROUGH):
                t.error("mode", f"cannot set mode to {tls.mode.value} in sidecar ingress tls")
            if parse_protocol(port.protocol) not in TLS_PROTOCOLS:
                at.error("tls", "server cannot have TLS settings for non HTTPS/TLS ports")
            _check_server_tls(at, "tls", tls)
        validate_connection_pool(at, "connectionPool", listener.connection_pool)
        pool = listener.connection_pool
        if pool is not None and pool.http is not None and parse_protocol(port.protocol) not in HTTP_PROTOCOLS:
            at.warn(
                "connectionPool.http",
                f"sidecar: HTTP connection pool settings are configured for port {number} "
                f'("{port.name or ""}") but its protocol is not HTTP ({port.protocol or "unset"}); '
                "only TCP settings will apply",
            )


def _split_host_port(address: str) -> tuple[str, str] | None:
    """``host:port`` or ``[v6]:port`` split as Go's ``net.SplitHostPort`` does; ``None`` when malformed."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            return None
        return address[1:end], address[end + 2 :]
    host, colon, port = address.rpartition(":")
    if not colon or ":" in host or "[" in host or "]" in host:
        return None
    return host, port


def _check_default_endpoint(r: Reporter, path: str, endpoint: str) -> None:
    if endpoint.startswith(_UNIX_PREFIX):
        validate_unix_address(r, path, endpoint[len(_UNIX_PREFIX) :])
        return
    parts = _split_host_port(endpoint)
    if parts is None:
        r.error(path, f'sidecar: defaultEndpoint "{endpoint}" must be of the form host:port')
        return
    host, port = parts
    if host not in _LOOPBACK_OR_ANY:
        r.error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, "
            "[::]:<port>, unix://filepath or unset",
        )
    if not _INTEGER.fullmatch(port):
        r.error(path, f"sidecar: defaultEndpoint port ({port}) is not a number")
    else:
        validate_port(r, path, int(port))


def _check_egress(r: Reporter, listeners: Sequence[IstioEgressListener], namespace: str) -> None:
    numbers: set[int] = set()
    sockets: set[str] = set()
    catch_all_seen = False
    for i, listener in enumerate(listeners):
        at = r.at(f"egress[{i}]")
        port = listener.port
        if port is None:
            # The listener without a port catches everything else, so it must come last and be alone.
            if catch_all_seen:
                at.error("port", "sidecar: egress can have only one listener with empty port")
                continue
            if i == len(listeners) - 1:
                catch_all_seen = True
            else:
                at.error(
                    "port",
                    "sidecar: the egress listener with empty port should be the last listener in the list",
                )
        else:
            _check_egress_port(at, listener, port)
            bind = listener.bind or ""
            if not port.number:
                if bind in sockets:
                    at.error("bind", "sidecar: unix domain socket values for listeners must be unique")
                sockets.add(bind)
            else:
                if port.number in numbers:
                    at.error("port.number", "sidecar: ports on IP bound listeners must be unique")
                numbers.add(port.number)
        _check_egress_hosts(at, listener.hosts, namespace)


def _check_egress_port(r: Reporter, listener: IstioEgressListener, port: SidecarPort) -> None:
    p = r.at("port")
    _check_sidecar_port(p, port)
    bind = listener.bind or ""
    if not port.number:
        # Port 0 means the listener is a Unix domain socket named by bind.
        if not bind.startswith(_UNIX_PREFIX):
            r.error("bind", "sidecar: ports with 0 value must have a unix domain socket bind address")
        else:
            validate_unix_address(r, "bind", bind[len(_UNIX_PREFIX) :])
        if listener.capture_mode not in (None, CaptureMode.DEFAULT, CaptureMode.NONE):
            r.error(
                "captureMode", "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners"
            )
    else:
        validate_port(p, "number", port.number)
        if bind:
            validate_ip_address(r, "bind", bind)


def _check_egress_hosts(r: Reporter, hosts: Sequence[str], namespace: str) -> None:
    if not hosts:
        r.error("hosts", "sidecar: egress listener must contain at least one host")
        return
    imported: dict[str, set[str]] = {}
    for i, host in enumerate(hosts):
        where = f"hosts[{i}]"
        ns, slash, name = host.partition("/")
        if slash and not ns.startswith("~"):
            ns = namespace if ns == "." else ns
            names = imported.setdefault(ns, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                r.warn(where, f"duplicated egress host: {host}")
            names.add(name)
        validate_namespace_slash_hostname(r, where, host, is_gateway=False)
    if "*" in imported.get("*", set()) and len(imported) != 1:
        r.warn("hosts", "`*/*` host selects all resources, no other hosts can be added")


def _check_outbound_traffic_policy(r: Reporter, path: str, policy: OutboundTrafficPolicy | None) -> None:
    if policy is None or policy.egress_proxy is None:
        return
    at = r.at(path)
    if policy.mode is not OutboundTrafficPolicyMode.ALLOW_ANY:
        at.error(
            "egressProxy", "sidecar: egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode"
        )
        return
    proxy = at.at("egressProxy")
    dest = policy.egress_proxy
    if dest.host == "*":
        proxy.error("host", "invalid destination host *")
    else:
        validate_fqdn(proxy, "host", dest.host)
    if dest.port is None:
        proxy.error("port", "sidecar: egressProxy port must be set")
    else:
        validate_port(proxy, "port.number", dest.port.number or 0)
    if dest.subset:
        validate_subset_name(proxy, "subset", dest.subset)
