"""Gateway and Sidecar validation: cases ported from Istio's validation test tables."""

from __future__ import annotations

import textwrap

import pytest

from libmesh.config import parse_yaml
from libmesh.errors import ConfigIssue


def _issues(kind: str, spec: str, name: str = "foo", annotations: str = "{}") -> list[ConfigIssue]:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    text = (
        f"apiVersion: networking.istio.io/v1\nkind: {kind}\n"
        f"metadata: {{name: {name}, annotations: {annotations}}}\nspec:\n{body}\n"
    )
    # The namespace of Istio's test tables; "./x" in a Sidecar means this one.
    return list(parse_yaml(text, namespace="bar").issues)


def _errors(kind: str, spec: str, **kw: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _issues(kind, spec, **kw) if i.is_error]


def _warnings(kind: str, spec: str) -> list[tuple[str, str]]:
    return [
        (i.path, i.message)
        for i in _issues(kind, spec)
        if not i.is_error and "not yet enforced" not in i.message
    ]


def _server(hosts: str, port: str, extra: str = "") -> str:
    return f"servers:\n- hosts: {hosts}\n  port: {port}\n" + textwrap.indent(extra, "  ")


HTTP7 = "{name: http, number: 7, protocol: http}"

# --- Gateway -------------------------------------------------------------------------------------------

GATEWAY_VALID = {
    "domain": _server("[foo.bar.com]", HTTP7),
    "ip host": _server("[1.1.1.1]", HTTP7),
    "ns/name": _server("[ns1/foo.bar.com]", HTTP7),
    "*/name": _server("['*/foo.bar.com']", HTTP7),
    "./name": _server("[./foo.bar.com]", HTTP7),
    "wildcard": _server("['*']", HTTP7),
    "httpsRedirect on http": _server(
        "[bar.com]", "{name: http, number: 80, protocol: http}", "tls: {httpsRedirect: true}"
    ),
    "bind ip": _server("[foo.bar.com]", HTTP7, "bind: 127.0.0.1"),
    "bind unix path": _server(
        "[foo.bar.com]", "{name: http, number: 0, protocol: http}", "bind: unix://@foobar"
    ),
    "https simple with files": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: SIMPLE, serverCertificate: cert, privateKey: key}",
    ),
    "https simple with credential": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: SIMPLE, credentialName: sds}",
    ),
    "mutual with files": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: MUTUAL, serverCertificate: c, privateKey: k, caCertificates: ca}",
    ),
    "mutual with credential and CA": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: MUTUAL, credentialName: sds, caCertificates: ca}",
    ),
    "mutual with tls certificates": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: MUTUAL, caCertificates: ca, tlsCertificates: [{serverCertificate: c, privateKey: k}]}",
    ),
    "istio mutual": _server(
        "[foo.bar.com]", "{name: tls, number: 443, protocol: TLS}", "tls: {mode: ISTIO_MUTUAL}"
    ),
    "passthrough": _server(
        "['*.bar.com']", "{name: tls, number: 443, protocol: TLS}", "tls: {mode: PASSTHROUGH}"
    ),
    "valid cipher suites": _server(
        "[foo.bar.com]",
        "{name: https, number: 443, protocol: HTTPS}",
        "tls: {mode: SIMPLE, credentialName: sds, cipherSuites: [ECDHE-ECDSA-AES128-SHA, -AES256-SHA]}",
    ),
    "two servers": _server("[foo.bar.com]", HTTP7)
    + "- hosts: [scooby.doo.com]\n  port: {name: http2, number: 8080, protocol: http}\n",
}


@pytest.mark.parametrize("spec", GATEWAY_VALID.values(), ids=list(GATEWAY_VALID))
def test_gateway_valid(spec: str) -> None:
    assert _errors("Gateway", spec) == []


HTTPS = "{name: https, number: 443, protocol: HTTPS}"
GATEWAY_INVALID = [
    ("no servers", "servers: []", "spec.servers", "at least one server"),
    ("no hosts", _server("[]", HTTP7), "spec.servers[0].hosts", "at least one host"),
    (
        "port out of range",
        _server("[foo.bar.com]", "{name: h, number: 66000, protocol: http}"),
        "spec.servers[0].port.number",
        "1-65535",
    ),
    (
        "port zero",
        _server("[foo.bar.com]", "{name: h, number: 0, protocol: http}"),
        "spec.servers[0].port.number",
        "1-65535",
    ),
    (
        "unknown protocol",
        _server("[foo.bar.com]", "{name: h, number: 1, protocol: kafka}"),
        "spec.servers[0].port.protocol",
        'invalid protocol "kafka"',
    ),
    (
        "empty port name",
        _server("[foo.bar.com]", "{name: '', number: 1, protocol: http}"),
        "spec.servers[0].port.name",
        "port name must be set",
    ),
    (
        "target port",
        _server("[foo.bar.com]", "{name: h, number: 1, protocol: http, targetPort: 8080}"),
        "spec.servers[0].port.targetPort",
        "no impact on Gateways",
    ),
    ("bad domain", _server("[foo.*.bar.com]", HTTP7), "spec.servers[0].hosts[0]", 'label "*" invalid'),
    (
        "bad domain after namespace",
        _server("[ns1/foo.*.bar.com]", HTTP7),
        "spec.servers[0].hosts[0]",
        "invalid",
    ),
    (
        "short name",
        _server("[foo]", HTTP7),
        "spec.servers[0].hosts[0]",
        "short names (non FQDN) are not allowed",
    ),
    (
        "partial wildcard",
        _server("['*bar.com']", "{name: tls, number: 443, protocol: tls}", "tls: {mode: ISTIO_MUTUAL}"),
        "spec.servers[0].hosts[0]",
        'partial wildcard "*bar.com" not allowed',
    ),
    ("~ namespace", _server("[~/foo.bar.com]", HTTP7), "spec.servers[0].hosts[0]", "invalid namespace value"),
    (
        "bad namespace",
        _server("[Bad_NS/foo.bar.com]", HTTP7),
        "spec.servers[0].hosts[0]",
        "invalid namespace value",
    ),
    (
        "duplicate port names",
        _server("[foo.bar.com]", "{name: foo, number: 80, protocol: http}")
        + "- hosts: [scooby.doo.com]\n  port: {name: foo, number: 8080, protocol: http}\n",
        "spec.servers[1].port.name",
        "port names in servers must be unique",
    ),
    (
        "unix bind with a port",
        _server("[foo.bar.com]", HTTP7, "bind: unix://@foobar"),
        "spec.servers[0].port.number",
        "must be 0 for unix domain socket",
    ),
    (
        "relative unix bind",
        _server("[foo.bar.com]", "{name: h, number: 0, protocol: http}", "bind: unix://foo"),
        "spec.servers[0].bind",
        "not an absolute path",
    ),
    (
        "bind not an IP",
        _server("[foo.bar.com]", HTTP7, "bind: foo.bar"),
        "spec.servers[0].bind",
        "foo.bar is not a valid IP",
    ),
    ("https without tls", _server("[foo.bar.com]", HTTPS), "spec.servers[0].tls", "must have TLS settings"),
    (
        "tls on http",
        _server("[foo.bar.com]", HTTP7, "tls: {mode: SIMPLE, credentialName: x}"),
        "spec.servers[0].tls",
        "cannot have TLS settings for plain text HTTP ports",
    ),
    (
        "tls on tcp",
        _server(
            "[foo.bar.com]", "{name: t, number: 7, protocol: TCP}", "tls: {mode: SIMPLE, credentialName: x}"
        ),
        "spec.servers[0].tls",
        "non HTTPS/TLS ports",
    ),
    (
        "simple without certificate",
        _server("[a.b]", HTTPS, "tls: {mode: SIMPLE, privateKey: k}"),
        "spec.servers[0].tls.serverCertificate",
        "SIMPLE TLS requires a server certificate",
    ),
    (
        "simple without key",
        _server("[a.b]", HTTPS, "tls: {mode: SIMPLE, serverCertificate: c}"),
        "spec.servers[0].tls.privateKey",
        "SIMPLE TLS requires a private key",
    ),
    (
        "credential and files",
        _server(
            "[a.b]", HTTPS, "tls: {mode: SIMPLE, serverCertificate: c, privateKey: k, credentialName: sds}"
        ),
        "spec.servers[0].tls",
        "only one of credentialName",
    ),
    (
        "files and tls certificates",
        _server(
            "[a.b]",
            HTTPS,
            "tls: {mode: SIMPLE, serverCertificate: c, privateKey: k, tlsCertificates: [{serverCertificate: c}]}",
        ),
        "spec.servers[0].tls",
        "only one of credentialName",
    ),
    (
        "credential names and files",
        _server(
            "[a.b]", HTTPS, "tls: {mode: MUTUAL, serverCertificate: c, privateKey: k, credentialNames: [x]}"
        ),
        "spec.servers[0].tls",
        "only one of credentialName",
    ),
    (
        "tls certificate without certificate",
        _server(
            "[a.b]",
            HTTPS,
            "tls: {mode: SIMPLE, tlsCertificates: [{privateKey: k}, {serverCertificate: c, privateKey: k}]}",
        ),
        "spec.servers[0].tls.tlsCertificates[0].serverCertificate",
        "requires a server certificate",
    ),
    (
        "mutual without CA",
        _server("[a.b]", HTTPS, "tls: {mode: MUTUAL, serverCertificate: c, privateKey: k}"),
        "spec.servers[0].tls.caCertificates",
        "MUTUAL TLS requires a client CA bundle",
    ),
    (
        "optional mutual without CA",
        _server("[a.b]", HTTPS, "tls: {mode: OPTIONAL_MUTUAL, serverCertificate: c, privateKey: k}"),
        "spec.servers[0].tls.caCertificates",
        "client CA bundle",
    ),
    (
        "istio mutual with certificate",
        _server("[a.b]", HTTPS, "tls: {mode: ISTIO_MUTUAL, serverCertificate: c}"),
        "spec.servers[0].tls.serverCertificate",
        "ISTIO_MUTUAL TLS cannot have associated server certificate",
    ),
    (
        "istio mutual with key",
        _server("[a.b]", HTTPS, "tls: {mode: ISTIO_MUTUAL, privateKey: k}"),
        "spec.servers[0].tls.privateKey",
        "cannot have associated private key",
    ),
    (
        "istio mutual with credential",
        _server("[a.b]", HTTPS, "tls: {mode: ISTIO_MUTUAL, credentialName: x}"),
        "spec.servers[0].tls.credentialName",
        "cannot have associated credentialName",
    ),
    (
        "crl with simple",
        _server("[a.b]", HTTPS, "tls: {mode: SIMPLE, serverCertificate: c, privateKey: k, caCrl: crl}"),
        "spec.servers[0].tls.caCrl",
        "not supported with SIMPLE TLS",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in GATEWAY_INVALID], ids=[c[0] for c in GATEWAY_INVALID]
)
def test_gateway_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors("Gateway", spec)
    assert any(p == path and fragment in m for p, m in errors), errors


def test_gateway_name_must_be_a_dns_label() -> None:
    spec = _server("[foo.bar.com]", HTTP7)
    assert _errors("Gateway", spec, name="my.gateway") == [
        ("metadata.name", 'invalid gateway name: "my.gateway" (it must be a DNS label, no dots)')
    ]


def test_gateway_api_semantics_relax_names_and_hosts() -> None:
    spec = _server("[~/foo.bar.com]", HTTP7)
    annotations = "{internal.istio.io/gateway-semantics: gateway}"
    assert _errors("Gateway", spec, name="gw.example", annotations=annotations) == []


GATEWAY_WARNINGS = [
    (
        "httpsRedirect on https",
        _server("[bar.com]", HTTPS, "tls: {httpsRedirect: true, mode: SIMPLE, credentialName: x}"),
        "spec.servers[0].tls.httpsRedirect",
        "only be used with http servers",
    ),
    (
        "passthrough with certificates",
        _server("[a.b]", HTTPS, "tls: {mode: PASSTHROUGH, credentialName: x}"),
        "spec.servers[0].tls",
        "PASSTHROUGH mode does not use certificates",
    ),
    (
        "passthrough with crl",
        _server("[a.b]", HTTPS, "tls: {mode: PASSTHROUGH, caCrl: crl}"),
        "spec.servers[0].tls",
        "PASSTHROUGH mode does not use certificates",
    ),
    (
        "more than two certificates",
        _server(
            "[a.b]",
            HTTPS,
            "tls: {mode: SIMPLE, tlsCertificates: ["
            + ", ".join(["{serverCertificate: c, privateKey: k}"] * 3)
            + "]}",
        ),
        "spec.servers[0].tls.tlsCertificates",
        "up to 2 server certificates",
    ),
    (
        "invalid cipher suite",
        _server("[a.b]", HTTPS, "tls: {mode: SIMPLE, credentialName: x, cipherSuites: [not-a-cipher-suite]}"),
        "spec.servers[0].tls.cipherSuites",
        "not-a-cipher-suite",
    ),
    (
        "duplicate cipher suite",
        _server(
            "[a.b]", HTTPS, "tls: {mode: SIMPLE, credentialName: x, cipherSuites: [AES128-SHA, AES128-SHA]}"
        ),
        "spec.servers[0].tls.cipherSuites",
        "ignoring duplicate cipher suites",
    ),
    (
        "crl with credential",
        _server("[a.b]", HTTPS, "tls: {mode: MUTUAL, credentialName: x, caCrl: crl}"),
        "spec.servers[0].tls.caCrl",
        "the CRL has to be in the credential",
    ),
    (
        "old TLS without ciphers",
        _server("[a.b]", HTTPS, "tls: {mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_1}"),
        "spec.servers[0].tls.minProtocolVersion",
        "compatible cipherSuites",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in GATEWAY_WARNINGS], ids=[c[0] for c in GATEWAY_WARNINGS]
)
def test_gateway_warnings(spec: str, path: str, fragment: str) -> None:
    assert _errors("Gateway", spec) == []
    warnings = _warnings("Gateway", spec)
    assert any(p == path and fragment in m for p, m in warnings), warnings


# --- Sidecar -------------------------------------------------------------------------------------------

INGRESS_90 = "ingress:\n- port: {protocol: http, number: 90, name: foo}\n"
HTTPS_INGRESS = "ingress:\n- port: {protocol: https, number: 90, name: foo}\n"
TCP_INGRESS = "ingress:\n- port: {protocol: tcp, number: 90, name: foo}\n"
#: An ALLOW_ANY outbound policy; cases append the egressProxy as YAML flow and close both braces.
ALLOW_ANY = "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: "
ALL_HOSTS = "egress:\n- hosts: ['*/*']\n"

SIDECAR_VALID = {
    "default": ALL_HOSTS,
    "local namespace wildcard": "egress: [{hosts: ['./*']}]",
    "local namespace fqdn": "egress: [{hosts: [./foo.com]}]",
    "import nothing": "egress: [{hosts: ['~/*']}]",
    "all except a namespace": "egress: [{hosts: ['*/*', '~ns1/*']}]",
    "all except a host": "egress: [{hosts: ['*/*', '~/foo.com']}]",
    "wildcard catch-all last": "egress:\n- {port: {number: 8080, protocol: http, name: h}, hosts: [ns/b.com]}\n"
    "- {hosts: ['*/*']}",
    "UDS bind in outbound": "egress:\n- port: {number: 0, protocol: http, name: uds}\n  hosts: [ns1/b.com]\n"
    "  bind: unix:///@foo/bar/com",
    "ingress with IPv4 default endpoint": INGRESS_90 + "  defaultEndpoint: 127.0.0.1:9999\n" + ALL_HOSTS,
    "ingress with IPv6 default endpoint": INGRESS_90 + "  defaultEndpoint: '[::1]:9999'\n" + ALL_HOSTS,
    "ingress with unix default endpoint": INGRESS_90 + "  defaultEndpoint: unix:///var/run/app.sock\n",
    "ingress without default endpoint": INGRESS_90 + ALL_HOSTS,
    "ingress with empty protocol": "ingress:\n- port: {number: 90, name: foo}\n  defaultEndpoint: ':9999'\n",
    "outbound traffic policy only": "outboundTrafficPolicy: {mode: ALLOW_ANY}",
    "egress proxy with ALLOW_ANY": "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"
    "  egressProxy: {host: foo.bar, subset: shiny, port: {number: 5000}}\n" + ALL_HOSTS,
    "ingress tls simple": "ingress:\n- port: {protocol: https, number: 90, name: foo}\n"
    "  tls: {mode: SIMPLE, serverCertificate: c, privateKey: k}\n",
    "inbound connection pool": "inboundConnectionPool: {http: {http1MaxPendingRequests: 1024, maxRetries: 9}}",
    "ingress connection pool": INGRESS_90 + "  connectionPool: {http: {http2MaxRequests: 1024}}\n",
    "wildcard namespace with other namespace": "egress: [{hosts: ['*/b.com', test/a.com]}]",
}


@pytest.mark.parametrize("spec", SIDECAR_VALID.values(), ids=list(SIDECAR_VALID))
def test_sidecar_valid(spec: str) -> None:
    assert _errors("Sidecar", spec) == []


EGRESS_PORT = "{number: 8080, protocol: http, name: h}"
SIDECAR_INVALID = [
    ("empty", "{}", "spec", "empty configuration provided"),
    ("only a selector", "workloadSelector: {labels: {app: a}}", "spec", "empty configuration provided"),
    (
        "exclude invalid namespace",
        "egress: [{hosts: ['*/*', '~Invalid_NS/*']}]",
        "spec.egress[0].hosts[1]",
        "invalid namespace value",
    ),
    ("bare wildcard host", "egress: [{hosts: ['*']}]", "spec.egress[0].hosts[0]", "namespace/dnsName"),
    ("slash only", "egress: [{hosts: [/]}]", "spec.egress[0].hosts[0]", "cannot be empty"),
    ("no hosts", "egress: [{hosts: []}]", "spec.egress[0].hosts", "at least one host"),
    ("partial wildcard", "egress: [{hosts: ['test/*a.com']}]", "spec.egress[0].hosts[0]", "partial wildcard"),
    (
        "two catch-all listeners",
        "egress: [{hosts: ['*/*']}, {hosts: ['*/*']}]",
        "spec.egress[0].port",
        "should be the last listener",
    ),
    (
        "catch-all not last",
        f"egress: [{{hosts: ['*/*']}}, {{port: {EGRESS_PORT}, hosts: ['*/*']}}]",
        "spec.egress[0].port",
        "should be the last listener",
    ),
    (
        "bad port",
        "egress: [{port: {number: 65536, protocol: http, name: h}, hosts: ['*/*']}]",
        "spec.egress[0].port.number",
        "1-65535",
    ),
    (
        "bad port name",
        "egress: [{port: {number: 80, protocol: http, name: a_b}, hosts: ['*/*']}]",
        "spec.egress[0].port.name",
        "invalid port name",
    ),
    (
        "bad protocol",
        "egress: [{port: {number: 80, protocol: kafka, name: k}, hosts: ['*/*']}]",
        "spec.egress[0].port.protocol",
        "unsupported protocol: kafka",
    ),
    (
        "target port",
        "egress: [{port: {number: 80, protocol: http, name: h, targetPort: 81}, hosts: ['*/*']}]",
        "spec.egress[0].port.targetPort",
        "no impact on Sidecars",
    ),
    (
        "UDS bind on a numbered port",
        "egress: [{port: {number: 80, protocol: http, name: h}, hosts: ['*/*'], bind: 'unix:///@foo/bar'}]",
        "spec.egress[0].bind",
        "is not a valid IP",
    ),
    (
        "port 0 needs a UDS bind",
        "egress: [{port: {number: 0, protocol: http, name: h}, hosts: ['*/*'], bind: 1.2.3.4}]",
        "spec.egress[0].bind",
        "must have a unix domain socket bind address",
    ),
    (
        "invalid bind",
        "egress: [{port: {number: 0, protocol: http, name: h}, hosts: ['*/*'], bind: 'foobar:///@foo'}]",
        "spec.egress[0].bind",
        "unix domain socket",
    ),
    (
        "capture mode with UDS",
        "egress: [{port: {number: 0, protocol: http, name: h}, hosts: ['*/*'], bind: 'unix:///@f', captureMode: IPTABLES}]",
        "spec.egress[0].captureMode",
        "DEFAULT/NONE",
    ),
    (
        "duplicate UDS bind",
        "egress:\n- {port: {number: 0, protocol: http, name: a}, hosts: [ns/a.com], bind: 'unix:///@f'}\n"
        "- {port: {number: 0, protocol: http, name: b}, hosts: [ns/b.com], bind: 'unix:///@f'}",
        "spec.egress[1].bind",
        "must be unique",
    ),
    (
        "duplicate egress ports",
        f"egress: [{{port: {EGRESS_PORT}, hosts: [ns/a.com]}}, {{port: {EGRESS_PORT}, hosts: [ns/b.com]}}]",
        "spec.egress[1].port.number",
        "ports on IP bound listeners must be unique",
    ),
    (
        "duplicate ingress ports",
        INGRESS_90 + "- port: {protocol: http, number: 90, name: bar}\n",
        "spec.ingress[1].port.number",
        "must be unique",
    ),
    (
        "UDS bind in inbound",
        INGRESS_90 + "  bind: unix:///@foo/bar/com\n",
        "spec.ingress[0].bind",
        "is not a valid IP",
    ),
    (
        "ingress port zero",
        "ingress: [{port: {number: 0, protocol: http, name: h}}]",
        "spec.ingress[0].port.number",
        "1-65535",
    ),
    (
        "default endpoint IPv4 not local",
        INGRESS_90 + "  defaultEndpoint: 1.1.1.1:90\n",
        "spec.ingress[0].defaultEndpoint",
        "must be of form 127.0.0.1:<port>",
    ),
    (
        "default endpoint IPv6 not local",
        INGRESS_90 + "  defaultEndpoint: '[1:1:1:1:1:1:1:1]:90'\n",
        "spec.ingress[0].defaultEndpoint",
        "must be of form",
    ),
    (
        "default endpoint unix dir",
        INGRESS_90 + "  defaultEndpoint: unix:///\n",
        "spec.ingress[0].defaultEndpoint",
        "not an absolute path",
    ),
    (
        "default endpoint port not a number",
        INGRESS_90 + "  defaultEndpoint: 127.0.0.1:hi\n",
        "spec.ingress[0].defaultEndpoint",
        "is not a number",
    ),
    (
        "default endpoint IPv6 port not a number",
        INGRESS_90 + "  defaultEndpoint: '[::1]:hi'\n",
        "spec.ingress[0].defaultEndpoint",
        "is not a number",
    ),
    (
        "default endpoint without port",
        INGRESS_90 + "  defaultEndpoint: 127.0.0.1\n",
        "spec.ingress[0].defaultEndpoint",
        "host:port",
    ),
    (
        "ingress tls ISTIO_MUTUAL",
        HTTPS_INGRESS + "  tls: {mode: ISTIO_MUTUAL}\n",
        "spec.ingress[0].tls.mode",
        "cannot set mode to ISTIO_MUTUAL",
    ),
    (
        "ingress tls AUTO_PASSTHROUGH",
        "ingress:\n- port: {protocol: tls, number: 90, name: foo}\n  tls: {mode: AUTO_PASSTHROUGH}\n",
        "spec.ingress[0].tls.mode",
        "cannot set mode to AUTO_PASSTHROUGH",
    ),
    (
        "ingress tls on http",
        INGRESS_90 + "  tls: {mode: SIMPLE, serverCertificate: c, privateKey: k}\n",
        "spec.ingress[0].tls",
        "non HTTPS/TLS ports",
    ),
    (
        "ingress tls httpsRedirect",
        HTTPS_INGRESS + "  tls: {mode: SIMPLE, serverCertificate: c, privateKey: k, httpsRedirect: true}\n",
        "spec.ingress[0].tls.httpsRedirect",
        "not supported",
    ),
    (
        "ingress tls SAN",
        HTTPS_INGRESS
        + "  tls: {mode: SIMPLE, serverCertificate: c, privateKey: k, subjectAltNames: [a.com]}\n",
        "spec.ingress[0].tls.subjectAltNames",
        "not supported",
    ),
    (
        "ingress tls credentialName",
        HTTPS_INGRESS + "  tls: {mode: SIMPLE, credentialName: secret}\n",
        "spec.ingress[0].tls.credentialName",
        "not supported",
    ),
    (
        "ingress tls credentialNames",
        HTTPS_INGRESS + "  tls: {mode: SIMPLE, credentialNames: [secret]}\n",
        "spec.ingress[0].tls.credentialNames",
        "not supported",
    ),
    (
        "ingress tls certificates",
        HTTPS_INGRESS + "  tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: c, privateKey: k}]}\n",
        "spec.ingress[0].tls.tlsCertificates",
        "not supported",
    ),
    (
        "ingress tls without key",
        HTTPS_INGRESS + "  tls: {mode: SIMPLE, serverCertificate: c}\n",
        "spec.ingress[0].tls.privateKey",
        "requires a private key",
    ),
    (
        "ingress connection pool empty",
        INGRESS_90 + "  connectionPool: {}\n",
        "spec.ingress[0].connectionPool",
        "at least one field",
    ),
    (
        "inbound connection pool negative",
        "inboundConnectionPool: {tcp: {maxConnections: -1}}",
        "spec.inboundConnectionPool.tcp.maxConnections",
        "non-negative",
    ),
    (
        "egress proxy with REGISTRY_ONLY",
        "outboundTrafficPolicy: {egressProxy: {host: foo.bar, port: {number: 5000}}}",
        "spec.outboundTrafficPolicy.egressProxy",
        "only with ALLOW_ANY",
    ),
    (
        "egress proxy bad host",
        ALLOW_ANY + "{host: 'foo.*', port: {number: 5000}}}",
        "spec.outboundTrafficPolicy.egressProxy.host",
        "invalid",
    ),
    (
        "egress proxy wildcard host",
        ALLOW_ANY + "{host: '*', port: {number: 5000}}}",
        "spec.outboundTrafficPolicy.egressProxy.host",
        "invalid destination host *",
    ),
    (
        "egress proxy without port",
        ALLOW_ANY + "{host: foo.bar}}",
        "spec.outboundTrafficPolicy.egressProxy.port",
        "port must be set",
    ),
    (
        "egress proxy bad subset",
        ALLOW_ANY + "{host: foo.bar, subset: a.b, port: {number: 1}}}",
        "spec.outboundTrafficPolicy.egressProxy.subset",
        "subset name is invalid",
    ),
    (
        "egress proxy port out of range",
        ALLOW_ANY + "{host: foo.bar, port: {number: 70000}}}",
        "spec.outboundTrafficPolicy.egressProxy.port.number",
        "1-65535",
    ),
    (
        "selector wildcard",
        "workloadSelector: {labels: {app: 'a*'}}\n" + ALL_HOSTS,
        "spec.workloadSelector.labels.app",
        "wildcard is not supported",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in SIDECAR_INVALID], ids=[c[0] for c in SIDECAR_INVALID]
)
def test_sidecar_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors("Sidecar", spec)
    assert any(p == path and fragment in m for p, m in errors), errors


SIDECAR_WARNINGS = [
    (
        "selector without labels",
        "workloadSelector: {}\n" + ALL_HOSTS,
        "spec.workloadSelector.labels",
        "without labels",
    ),
    (
        "*/* with another host",
        "egress: [{hosts: ['*/*', test/a.com]}]",
        "spec.egress[0].hosts",
        "`*/*` host selects all",
    ),
    (
        "host under a namespace wildcard",
        "egress: [{hosts: ['test/*', test/a.com]}]",
        "spec.egress[0].hosts[1]",
        "duplicated egress host: test/a.com",
    ),
    (
        "namespace wildcard after a host",
        "egress: [{hosts: [test/a.com, 'test/*']}]",
        "spec.egress[0].hosts[1]",
        "duplicated egress host",
    ),
    (
        "dot means the own namespace",
        "egress: [{hosts: ['./*', bar/a.com]}]",
        "spec.egress[0].hosts[1]",
        "duplicated egress host: bar/a.com",
    ),
    (
        "http pool on a tcp port",
        TCP_INGRESS + "  connectionPool: {http: {maxRetries: 3}}\n",
        "spec.ingress[0].connectionPool.http",
        "only TCP settings will apply",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in SIDECAR_WARNINGS], ids=[c[0] for c in SIDECAR_WARNINGS]
)
def test_sidecar_warnings(spec: str, path: str, fragment: str) -> None:
    assert _errors("Sidecar", spec) == []
    warnings = _warnings("Sidecar", spec)
    assert any(p == path and fragment in m for p, m in warnings), warnings


def test_sidecar_other_namespace_is_not_a_duplicate() -> None:
    assert _warnings("Sidecar", "egress: [{hosts: ['./*', other/a.com]}]") == []
