"""ServiceEntry, WorkloadEntry and WorkloadGroup validation: Istio's test tables and the CRD corpus."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from libmesh.config import parse_yaml
from libmesh.config.validation.service_entry import parse_protocol
from libmesh.errors import ConfigIssue


def _issues(kind: str, spec: str, labels: str = "{}") -> list[ConfigIssue]:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    text = (
        f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: x, labels: {labels}}}\n"
        f"spec:\n{body}\n"
    )
    return list(parse_yaml(text, namespace="ns5").issues)


def _errors(kind: str, spec: str, labels: str = "{}") -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _issues(kind, spec, labels) if i.is_error]


def _warnings(kind: str, spec: str) -> list[tuple[str, str]]:
    return [
        (i.path, i.message)
        for i in _issues(kind, spec)
        if not i.is_error and "not yet enforced" not in i.message
    ]


PORT_1 = "{number: 80, protocol: http, name: http-valid1}"
PORT_2 = "{number: 8080, protocol: http, name: http-valid2}"
HTTP_PORTS = f"ports: [{PORT_1}, {PORT_2}]"

SE_VALID = {
    "DNS with endpoints": f"""
        hosts: ['*.google.com']
        {HTTP_PORTS}
        endpoints:
        - {{address: lon.google.com, ports: {{http-valid1: 8080}}}}
        - address: in.google.com
          ports: {{http-valid2: 9080}}
          labels: {{security.istio.io/tlsMode: istio}}
        resolution: DNS
    """,
    "DNS round robin, one endpoint": f"""
        hosts: ['*.istio.io']
        {HTTP_PORTS}
        endpoints: [{{address: api-v1.istio.io, ports: {{http-valid1: 8080}}}}]
        resolution: DNS_ROUND_ROBIN
    """,
    "DNS round robin, no endpoint": f"hosts: [google.com]\n{HTTP_PORTS}\nresolution: DNS_ROUND_ROBIN",
    "DNS, IP in endpoints": f"""
        hosts: ['*.google.com']
        {HTTP_PORTS}
        endpoints: [{{address: 1.1.1.1, ports: {{http-valid1: 8080}}}}, {{address: in.google.com}}]
        resolution: DNS
    """,
    "DNS, no endpoints": f"hosts: [google.com]\n{HTTP_PORTS}\nresolution: DNS",
    "DNS, short names": """
        hosts: [foo, bar.com]
        ports: [{number: 80, protocol: http, name: http-valid1}]
        endpoints: [{address: in.google.com, ports: {http-valid1: 9080}}]
        resolution: DNS
    """,
    "DNS, address and https port": """
        hosts: [httpbin.org]
        addresses: [10.10.10.10]
        ports: [{number: 443, protocol: https, name: https}]
        resolution: DNS
    """,
    "DYNAMIC_DNS": f"hosts: ['*.google.com']\n{HTTP_PORTS}\nresolution: DYNAMIC_DNS",
    "DYNAMIC_DNS, GRPC": """
        hosts: ['*.svc.cluster.local']
        ports: [{number: 9090, protocol: GRPC, name: grpc}]
        resolution: DYNAMIC_DNS
    """,
    "DYNAMIC_DNS, several wildcard hosts, mesh internal": """
        hosts: ['*.google.com', '*.amazon.com']
        ports: [{number: 80, protocol: http, name: http}]
        resolution: DYNAMIC_DNS
        location: MESH_INTERNAL
    """,
    "NONE": f"hosts: [google.com]\n{HTTP_PORTS}\nresolution: NONE",
    "NONE with CIDR": f"hosts: [google.com]\naddresses: [172.1.2.16/16]\n{HTTP_PORTS}\nresolution: NONE",
    "STATIC with CIDR": f"""
        hosts: [google.com]
        addresses: [172.1.2.16/16]
        {HTTP_PORTS}
        endpoints: [{{address: 1.1.1.1, ports: {{http-valid1: 8080}}}}, {{address: 2.2.2.2}}]
        resolution: STATIC
    """,
    "STATIC without endpoints": f"hosts: [a.com]\naddresses: [172.1.2.16]\n{HTTP_PORTS}\nresolution: STATIC",
    "STATIC unix socket": """
        hosts: [uds.cluster.local]
        ports: [{number: 6553, protocol: grpc, name: grpc-service1}]
        endpoints: [{address: unix:///path/to/socket}]
        resolution: STATIC
    """,
    "STATIC endpoint behind a network gateway": """
        hosts: [www.example.com]
        ports: [{number: 443, protocol: HTTPS, name: https-example}]
        endpoints: [{network: cluster-1}]
        resolution: STATIC
    """,
    "empty protocol": "hosts: [google.com]\nports: [{number: 8080, name: http-valid2}]",
    "repeated target port": """
        hosts: [google.com]
        ports:
        - {number: 80, protocol: http, name: a, targetPort: 80}
        - {number: 81, protocol: http, name: b, targetPort: 80}
        resolution: DNS
    """,
    "selector": "hosts: [google.com]\nworkloadSelector: {labels: {foo: bar}}\nresolution: DNS",
    "exportTo none alone": "hosts: [google.com]\nexportTo: ['~']",
    "multiple hosts with HTTP and TLS ports": """
        hosts: [a.com, b.com]
        ports: [{number: 80, protocol: HTTP, name: http}, {number: 443, protocol: TLS, name: tls}]
        resolution: DNS
    """,
}


@pytest.mark.parametrize("spec", SE_VALID.values(), ids=list(SE_VALID))
def test_service_entry_valid(spec: str) -> None:
    assert _errors("ServiceEntry", spec) == []


SE_INVALID = [
    ("empty hosts", "hosts: []", "spec.hosts", "at least one host"),
    ("bad host", "hosts: ['-']", "spec.hosts[0]", 'label "-" invalid'),
    ("full wildcard host", "hosts: [foo.com, '*']", "spec.hosts[1]", "hostname cannot be wildcard"),
    ("bad address", "hosts: [a.com]\naddresses: [1.2.3.4/99]", "spec.addresses[0]", "not a valid CIDR block"),
    ("address not IP", "hosts: [a.com]\naddresses: [example.com]", "spec.addresses[0]", "not a valid IP"),
    (
        "CIDR with DNS",
        "hosts: [a.com]\naddresses: [1.2.3.4/16]\nresolution: DNS",
        "spec.addresses[0]",
        "CIDR addresses are allowed only for NONE/STATIC resolution types",
    ),
    (
        "duplicate port names",
        "hosts: [a.com]\nports: [{name: a, number: 1}, {name: a, number: 12}]",
        "spec.ports[1].name",
        "Duplicate value",
    ),
    (
        "duplicate port numbers",
        "hosts: [a.com]\nports: [{name: a, number: 1}, {name: b, number: 1}]",
        "spec.ports[1].number",
        "port number cannot be duplicated",
    ),
    (
        "port out of range",
        "hosts: [a.com]\nports: [{name: a, number: 99999}]",
        "spec.ports[0].number",
        "port must be between 1-65535",
    ),
    (
        "target port out of range",
        "hosts: [a.com]\nports: [{name: a, number: 1, targetPort: 65536}]",
        "spec.ports[0].targetPort",
        "port must be between 1-65535",
    ),
    (
        "bad port name",
        "hosts: [a.com]\nports: [{name: a_b, number: 1}]",
        "spec.ports[0].name",
        "invalid port name",
    ),
    (
        "unknown protocol",
        "hosts: [a.com]\nports: [{name: a, number: 1, protocol: kafka}]",
        "spec.ports[0].protocol",
        "unsupported protocol: kafka",
    ),
    (
        "selector wildcard value",
        "hosts: [example.com]\nworkloadSelector: {labels: {val: '*'}}",
        "spec.workloadSelector.labels.val",
        "wildcard is not supported in selector",
    ),
    (
        "selector empty key",
        "hosts: [example.com]\nworkloadSelector: {labels: {'': bar}}",
        "spec.workloadSelector.labels[]",
        "empty key is not supported in selector",
    ),
    (
        "selector and endpoints",
        "hosts: [example.com]\nworkloadSelector: {}\nendpoints: [{address: 1.2.3.4}]",
        "spec.workloadSelector",
        "only one of WorkloadSelector or Endpoints can be set",
    ),
    (
        "NONE with endpoints",
        "hosts: [example.com]\nendpoints: [{address: 1.2.3.4}]\nresolution: NONE",
        "spec.endpoints",
        "NONE mode cannot set endpoints",
    ),
    (
        "resolution unset counts as NONE",
        "hosts: [example.com]\nendpoints: [{address: 1.2.3.4}]",
        "spec.endpoints",
        "NONE mode cannot set endpoints",
    ),
    (
        "DNS round robin with two endpoints",
        "hosts: [example.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: sub1.example.com}, "
        "{address: sub2.example.com}]",
        "spec.endpoints",
        "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
    ),
    (
        "DNS wildcard host without endpoints",
        f"hosts: ['*.google.com']\n{HTTP_PORTS}\nresolution: DNS",
        "spec.hosts[0]",
        "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
    ),
    (
        "DNS wildcard endpoint",
        "hosts: ['*.google.com']\nendpoints: [{address: '*.lon.google.com'}]\nresolution: DNS",
        "spec.endpoints[0].address",
        "not a valid FQDN or an IP address",
    ),
    (
        "DNS unix endpoint",
        "hosts: ['*.google.com']\nendpoints: [{address: 'unix:///lon/google/com'}]\nresolution: DNS",
        "spec.endpoints[0].address",
        "not a valid FQDN or an IP address",
    ),
    (
        "DNS undeclared endpoint port",
        f"hosts: [google.com]\n{HTTP_PORTS}\nresolution: DNS\n"
        "endpoints: [{address: in.google.com, ports: {http-dne: 90}}]",
        "spec.endpoints[0].ports.http-dne",
        "not defined by the service entry",
    ),
    (
        "STATIC host name endpoint",
        f"hosts: [google.com]\n{HTTP_PORTS}\nendpoints: [{{address: google.com}}]\nresolution: STATIC",
        "spec.endpoints[0].address",
        "not a valid IP address",
    ),
    (
        "STATIC undeclared endpoint port",
        f"hosts: [google.com]\n{HTTP_PORTS}\nendpoints: [{{address: 2.2.2.2, ports: {{http-dne: 9080}}}}]\n"
        "resolution: STATIC",
        "spec.endpoints[0].ports.http-dne",
        "not defined by the service entry",
    ),
    (
        "STATIC endpoint port out of range",
        "hosts: [google.com]\nports: [{number: 80, name: http-valid1}]\n"
        "endpoints: [{address: 1.1.1.1, ports: {http-valid1: 65536}}]\nresolution: STATIC",
        "spec.endpoints[0].ports.http-valid1",
        "port must be between 1-65535",
    ),
    (
        "STATIC relative unix socket",
        "hosts: [uds.cluster.local]\nports: [{number: 6553, protocol: grpc, name: g}]\n"
        "endpoints: [{address: 'unix://./relative/path.sock'}]\nresolution: STATIC",
        "spec.endpoints[0].address",
        "UDS must be an absolute path or abstract socket",
    ),
    (
        "STATIC unix socket with ports",
        "hosts: [uds.cluster.local]\nports: [{number: 6553, protocol: grpc, name: g}]\n"
        "endpoints: [{address: 'unix:///path/to/socket', ports: {g: 6553}}]\nresolution: STATIC",
        "spec.endpoints[0].ports",
        "UDS may not include ports",
    ),
    (
        "STATIC unix socket with two service ports",
        "hosts: [uds.cluster.local]\nports: [{number: 6553, protocol: grpc, name: g}, {number: 8, name: h}]\n"
        "endpoints: [{address: 'unix:///path/to/socket'}]\nresolution: STATIC",
        "spec.endpoints[0].address",
        "exactly 1 service port required for unix endpoints",
    ),
    (
        "STATIC endpoint without address",
        "hosts: [a.com]\nendpoints: [{labels: {a: b}}]\nresolution: STATIC",
        "spec.endpoints[0].address",
        "Address is required",
    ),
    (
        "DYNAMIC_DNS TCP port",
        "hosts: ['*.google.com']\nports: [{number: 81, protocol: TCP, name: tcp}]\nresolution: DYNAMIC_DNS",
        "spec.ports[0].protocol",
        "only HTTP, TLS, GRPC, and HTTP2 protocols",
    ),
    (
        "DYNAMIC_DNS exact host",
        "hosts: [google.com]\nresolution: DYNAMIC_DNS",
        "spec.hosts[0]",
        "host must be wildcarded",
    ),
    (
        "DYNAMIC_DNS with endpoints",
        "hosts: ['*.google.com']\nendpoints: [{address: in.google.com}]\nresolution: DYNAMIC_DNS",
        "spec.endpoints",
        "endpoints cannot be set",
    ),
    (
        "DYNAMIC_DNS with addresses",
        "hosts: ['*.google.com']\naddresses: [10.10.10.10]\nresolution: DYNAMIC_DNS",
        "spec.addresses",
        "addresses cannot be set",
    ),
    (
        "multiple hosts with a TCP port",
        "hosts: [a.com, b.com]\nresolution: DNS\n"
        "ports: [{number: 80, protocol: HTTP, name: h}, {number: 81, protocol: TCP, name: t}]",
        "spec.ports[1].protocol",
        "multiple hosts provided with non-HTTP, non-TLS ports",
    ),
    (
        "exportTo none and a namespace",
        "hosts: [a.com]\nexportTo: ['~', ns1]",
        "spec.exportTo",
        "to no one (~)",
    ),
    (
        "exportTo duplicate none",
        "hosts: [a.com]\nexportTo: ['~', '~']",
        "spec.exportTo[1]",
        "duplicate entries",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in SE_INVALID], ids=[c[0] for c in SE_INVALID]
)
def test_service_entry_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors("ServiceEntry", spec)
    assert any(p == path and fragment in m for p, m in errors), errors


def test_dynamic_dns_mesh_internal_with_waypoint() -> None:
    spec = (
        "hosts: ['*.google.com']\nports: [{number: 80, protocol: http, name: h}]\nresolution: DYNAMIC_DNS\n"
    )
    spec += "location: MESH_INTERNAL"
    assert _errors("ServiceEntry", spec) == []
    assert _errors("ServiceEntry", spec, labels="{istio.io/use-waypoint: none}") == []
    errors = _errors("ServiceEntry", spec, labels="{istio.io/use-waypoint: my-waypoint}")
    assert errors == [
        (
            "spec.location",
            "location MESH_INTERNAL with resolution type DYNAMIC_DNS is not supported when using waypoints",
        )
    ]


SE_WARNINGS = [
    (
        "partial wildcard host",
        "hosts: ['*.nytimes.com', '*washingtonpost.com']",
        "spec.hosts[1]",
        "partial wildcard",
    ),
    (
        "selector with NONE",
        "hosts: [a.com]\nworkloadSelector: {labels: {a: b}}",
        "spec.workloadSelector",
        "NONE",
    ),
    (
        "selector without labels",
        "hosts: [a.com]\nworkloadSelector: {}",
        "spec.workloadSelector.labels",
        "without labels",
    ),
    (
        "endpoint with network only",
        "hosts: [a.com]\nendpoints: [{network: cluster-1}]\nresolution: STATIC",
        "spec.endpoints[0].address",
        'address is unset with network "cluster-1"',
    ),
    (
        "several hosts with an address and a TCP port",
        "hosts: [httpbin.org, wikipedia.org]\naddresses: [10.10.10.10]\n"
        "ports: [{number: 443, protocol: https, name: https}]\nresolution: DNS",
        "spec.ports[0]",
        "more than one host",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in SE_WARNINGS], ids=[c[0] for c in SE_WARNINGS]
)
def test_service_entry_warnings(spec: str, path: str, fragment: str) -> None:
    assert _errors("ServiceEntry", spec) == []
    warnings = _warnings("ServiceEntry", spec)
    assert any(p == path and fragment in m for p, m in warnings), warnings


# --- WorkloadEntry -------------------------------------------------------------------------------------

WE_VALID = {
    "IP": "address: 1.2.3.4",
    "IPv6": "address: '2001:db8::1'",
    "network without address": "network: network-2",
    "unix socket": "address: unix:///lon/google/com",
    "abstract unix socket": "address: unix://@foo",
    "FQDN with ports": "address: validdns.com\nports: {'7777': 7777}",
    "IP with ports and labels": "address: 172.16.1.1\nports: {http: 80}\nlabels: {app.kubernetes.io/name: x}",
}


@pytest.mark.parametrize("spec", WE_VALID.values(), ids=list(WE_VALID))
def test_workload_entry_valid(spec: str) -> None:
    assert _errors("WorkloadEntry", spec) == []


WE_INVALID = [
    ("missing address", "{}", "spec.address", "Address is required"),
    ("unix dir", "address: unix:///dir/", "spec.address", "UDS may not be a dir"),
    ("relative unix path", "address: unix://relative", "spec.address", "UDS must be an absolute path"),
    ("unix with ports", "address: unix://@foo\nports: {http: 80}", "spec.ports", "UDS may not include ports"),
    (
        "port too high",
        "address: 1.1.1.1\nports: {http: 99999}",
        "spec.ports.http",
        "port must be between 1-65535",
    ),
    ("port zero", "address: 1.1.1.1\nports: {http: 0}", "spec.ports.http", "port must be between 1-65535"),
    ("bad port name", "address: 1.1.1.1\nports: {'@': 80}", "spec.ports[@]", "invalid value"),
    (
        "address with port",
        "address: 'invaliddns.com:9443'",
        "spec.address",
        "not a valid FQDN or an IP address",
    ),
    ("bad label", "address: 1.1.1.1\nlabels: {'a b': c}", "spec.labels[a b]", "invalid label key"),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in WE_INVALID], ids=[c[0] for c in WE_INVALID]
)
def test_workload_entry_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors("WorkloadEntry", spec)
    assert any(p == path and fragment in m for p, m in errors), errors


def test_workload_entry_network_only_warns() -> None:
    assert _warnings("WorkloadEntry", "network: network-2") == [
        ("spec.address", 'address is unset with network "network-2"')
    ]


# --- WorkloadGroup -------------------------------------------------------------------------------------

WG_VALID = {
    "empty template": "template: {}",
    "template with labels and ports": "template: {serviceAccount: sa, labels: {app: a}, ports: {http: 80}}",
    "http probe": "template: {}\nprobe: {httpGet: {port: 5, scheme: HTTPS, httpHeaders: [{name: X-Ok}]}}",
    "tcp probe": "template: {}\nprobe: {tcpSocket: {port: 5}, periodSeconds: 10, timeoutSeconds: 1}",
    "exec probe": "template: {}\nprobe: {exec: {command: [foo, bar]}}",
    "grpc probe": "template: {}\nprobe: {grpc: {port: 9090, service: health}}",
}


@pytest.mark.parametrize("spec", WG_VALID.values(), ids=list(WG_VALID))
def test_workload_group_valid(spec: str) -> None:
    assert _errors("WorkloadGroup", spec) == []


WG_INVALID = [
    (
        "bad metadata labels",
        "template: {}\nmetadata: {labels: {'.': '~'}}",
        "spec.metadata.labels[.]",
        "invalid label",
    ),
    (
        "probe without method",
        "template: {}\nprobe: {periodSeconds: 5}",
        "spec.probe",
        "one health check method",
    ),
    ("http probe port 0", "template: {}\nprobe: {httpGet: {port: 0}}", "spec.probe.httpGet.port", "1-65535"),
    (
        "tcp probe port",
        "template: {}\nprobe: {tcpSocket: {port: 65536}}",
        "spec.probe.tcpSocket.port",
        "1-65535",
    ),
    ("grpc probe port", "template: {}\nprobe: {grpc: {port: 70000}}", "spec.probe.grpc.port", "1-65535"),
    (
        "exec without command",
        "template: {}\nprobe: {exec: {command: []}}",
        "spec.probe.exec.command",
        "required",
    ),
    (
        "exec empty argument",
        "template: {}\nprobe: {exec: {command: [ls, '']}}",
        "spec.probe.exec.command[1]",
        "must not be empty",
    ),
    (
        "bad probe header",
        "template: {}\nprobe: {httpGet: {port: 80, httpHeaders: [{name: '**'}]}}",
        "spec.probe.httpGet.httpHeaders[0].name",
        "should match",
    ),
    (
        "empty probe header",
        "template: {}\nprobe: {httpGet: {port: 80, httpHeaders: [{name: ''}]}}",
        "spec.probe.httpGet.httpHeaders[0].name",
        "header name cannot be empty",
    ),
    (
        "bad scheme",
        "template: {}\nprobe: {httpGet: {port: 80, scheme: ftp}}",
        "spec.probe.httpGet.scheme",
        "scheme must be one of [HTTP, HTTPS]",
    ),
    (
        "negative period",
        "template: {}\nprobe: {periodSeconds: -1, tcpSocket: {port: 80}}",
        "spec.probe.periodSeconds",
        "non-negative",
    ),
    (
        "template unix dir",
        "template: {address: 'unix:///d/'}",
        "spec.template.address",
        "UDS may not be a dir",
    ),
    ("template bad port", "template: {ports: {http: 0}}", "spec.template.ports.http", "1-65535"),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in WG_INVALID], ids=[c[0] for c in WG_INVALID]
)
def test_workload_group_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors("WorkloadGroup", spec)
    assert any(p == path and fragment in m for p, m in errors), errors


def test_parse_protocol() -> None:
    assert [parse_protocol(p) for p in ("TCP", "grpc-web", "Mongo", "", None, "hbone")] == [
        "TCP",
        "GRPC-Web",
        "Mongo",
        None,
        None,
        None,
    ]


# --- the CRD corpus ------------------------------------------------------------------------------------

KINDS = ["serviceentry", "workloadentry", "workloadgroup"]


@pytest.mark.parametrize("repo", ["istio-istio", "istio-api"])
@pytest.mark.parametrize("kind", KINDS)
def test_corpus_invalid_documents_are_rejected(corpus: Path, repo: str, kind: str) -> None:
    path = corpus / "validation-crd-testdata" / repo / f"{kind}-invalid.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        expected = str(doc.pop("_err"))
        errors = parse_yaml(yaml.safe_dump(doc)).errors
        # Kubernetes words it "FIELD: Phrase" or "FIELD in body phrase"; some texts name no field.
        field, phrase = "", expected
        if expected.startswith("spec"):
            field, _, phrase = expected.replace(" in body ", ": ").partition(": ")
        assert any(phrase.lower() in e.message.lower() and e.path.startswith(field) for e in errors), (
            expected,
            errors,
        )


@pytest.mark.parametrize("repo", ["istio-istio", "istio-api"])
@pytest.mark.parametrize("kind", KINDS)
def test_corpus_valid_file_loads(corpus: Path, repo: str, kind: str) -> None:
    path = corpus / "validation-crd-testdata" / repo / f"{kind}-valid.yaml"
    assert parse_yaml(path.read_text(), file=str(path)).errors == ()
