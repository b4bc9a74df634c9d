"""The static registry: ServiceEntry and WorkloadEntry YAML in, Istio's services and endpoints out."""

from __future__ import annotations

import textwrap

import pytest

from libmesh.config import load_yaml, parse_yaml
from libmesh.config.model.service_entry import ServiceEntryResolution
from libmesh.discovery import Endpoint, Registry
from libmesh.discovery.static import ServiceInfo, StaticRegistry

REVIEWS = "reviews.default.svc.cluster.local"


def registry(yaml_text: str, **kw: str) -> StaticRegistry:
    return StaticRegistry.from_config(load_yaml(textwrap.dedent(yaml_text)), **kw)


def se(spec: str, name: str = "se", ns: str = "default", meta: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}{meta}}}
spec:
{textwrap.indent(textwrap.dedent(spec).strip(), "  ")}
---
"""


def we(name: str, spec: str, ns: str = "default", meta: str = "", status: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}, namespace: {ns}{meta}}}
spec: {spec}
{status}
---
"""


def addresses(eps: object) -> list[tuple[str, int]]:
    assert eps is not None
    return [(e.address, e.port) for e in eps]  # type: ignore[attr-defined]


# --- STATIC endpoints ----------------------------------------------------------------------------------


def test_static_endpoints_carry_labels_weight_and_identity() -> None:
    reg = registry(
        se("""
        hosts: [api.internal.example]
        ports: [{number: 80, name: http, protocol: HTTP}]
        resolution: STATIC
        endpoints:
        - {address: 10.0.0.1, labels: {version: v1}, weight: 3, serviceAccount: api, locality: us-east1/a,
           network: net1}
        - {address: 10.0.0.2, labels: {version: v2}}
        """)
    )
    eps = reg.endpoints("api.internal.example", 80)
    assert eps == (
        Endpoint(
            "10.0.0.1",
            80,
            labels={"version": "v1"},
            weight=3,
            service_account="api",
            locality="us-east1/a",
            network="net1",
        ),
        Endpoint("10.0.0.2", 80, labels={"version": "v2"}),
    )
    assert eps[1].weight == 1  # Istio's default weight
    assert [e.address for e in eps if e.matches({"version": "v2"})] == ["10.0.0.2"]


@pytest.mark.parametrize(
    ("port", "endpoint", "expected"),
    [
        ("{number: 80, name: http}", "{address: 10.0.0.1}", 80),
        ("{number: 80, name: http, targetPort: 8080}", "{address: 10.0.0.1}", 8080),
        ("{number: 80, name: http}", "{address: 10.0.0.1, ports: {http: 9090}}", 9090),
        # the endpoint's own port wins over the service's targetPort
        ("{number: 80, name: http, targetPort: 8080}", "{address: 10.0.0.1, ports: {http: 9090}}", 9090),
    ],
)
def test_endpoint_port_precedence(port: str, endpoint: str, expected: int) -> None:
    reg = registry(
        se(f"hosts: [a.example.com]\nports: [{port}]\nresolution: STATIC\nendpoints: [{endpoint}]")
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", expected)]


def test_endpoint_ports_map_by_service_port_name() -> None:
    reg = registry(
        se("""
        hosts: [a.example.com]
        ports:
        - {number: 80, name: http}
        - {number: 9090, name: grpc, targetPort: 9091}
        resolution: STATIC
        endpoints: [{address: 10.0.0.1, ports: {http: 8080}}]
        """)
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", 8080)]
    assert addresses(reg.endpoints("a.example.com", 9090)) == [("10.0.0.1", 9091)]


def test_unix_socket_endpoint_has_no_port() -> None:
    reg = registry(
        se("""
        hosts: [local.example]
        ports: [{number: 80, name: http, targetPort: 8080}]
        resolution: STATIC
        endpoints: [{address: "unix:///var/run/app.sock"}]
        """)
    )
    assert addresses(reg.endpoints("local.example", 80)) == [("unix:///var/run/app.sock", 0)]


def test_static_without_endpoints_is_known_but_empty() -> None:
    reg = registry(se("hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC"))
    assert reg.endpoints("a.example.com", 80) == ()
    info = reg.service("a.example.com", 80)
    assert info is not None and not info.passthrough


# --- workloadSelector and WorkloadEntries -----------------------------------------------------------------


BOOKINFO = (
    se(
        """
        hosts: [reviews.default.svc.cluster.local]
        location: MESH_INTERNAL
        ports: [{number: 9080, name: http, protocol: HTTP}]
        resolution: STATIC
        workloadSelector: {labels: {app: reviews}}
        """,
        name="reviews",
    )
    + we("reviews-v1", "{address: 127.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 9081}}")
    + we("reviews-v2", "{address: 127.0.0.1, labels: {app: reviews, version: v2}, ports: {http: 9082}}")
    + we("reviews-v3", "{address: 127.0.0.1, labels: {app: reviews, version: v3}, ports: {http: 9083}}")
    + we("ratings-v1", "{address: 127.0.0.1, labels: {app: ratings, version: v1}, ports: {http: 9091}}")
)


def test_bookinfo_reviews_three_versions_on_loopback() -> None:
    reg = registry(BOOKINFO)
    eps = reg.endpoints(REVIEWS, 9080)
    assert addresses(eps) == [("127.0.0.1", 9081), ("127.0.0.1", 9082), ("127.0.0.1", 9083)]
    assert eps is not None
    by_version = {e.labels["version"]: e.port for e in eps}
    assert by_version == {"v1": 9081, "v2": 9082, "v3": 9083}
    assert [e.port for e in eps if e.matches({"version": "v2"})] == [9082]
    assert len({e.key for e in eps}) == 3
    info = reg.service(REVIEWS, 9080)
    assert info == ServiceInfo(
        host=REVIEWS,
        port=9080,
        namespace="default",
        service_entry="default/reviews",
        resolution=ServiceEntryResolution.STATIC,
        port_name="http",
        protocol="HTTP",
        mesh_external=False,
    )
    assert reg.known_hosts() == frozenset({REVIEWS})


def test_selector_takes_workloads_of_the_entry_namespace_only() -> None:
    reg = registry(
        se(
            "hosts: [db.example]\nports: [{number: 5432, name: tcp}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: db}}",
            ns="data",
            meta=", labels: {}",
        )
        + we("db-1", "{address: 10.0.0.1, labels: {app: db}}", ns="data")
        + we("db-2", "{address: 10.0.0.2, labels: {app: db}}", ns="other")
        + we("web", "{address: 10.0.0.3, labels: {app: web}}", ns="data"),
    )
    assert addresses(reg.endpoints("db.example", 5432)) == [("10.0.0.1", 5432)]


def test_workload_labels_merge_metadata_over_spec() -> None:
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: a, version: v2}}"
        )
        + we(
            "a-1",
            "{address: 10.0.0.1, labels: {app: a, version: v1}}",
            meta=", labels: {version: v2, team: x}",
        )
    )
    eps = reg.endpoints("a.example.com", 80)
    assert eps is not None and len(eps) == 1
    assert dict(eps[0].labels) == {"app": "a", "version": "v2", "team": "x"}


def test_selected_workloads_sorted_by_name_with_their_own_attributes() -> None:
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http, targetPort: 8080}]\n"
            "resolution: STATIC\nworkloadSelector: {labels: {app: a}}"
        )
        + we("b", "{address: 10.0.0.2, labels: {app: a}, weight: 5, serviceAccount: sa-b, network: n2}")
        + we("a", "{address: 10.0.0.1, labels: {app: a, istio-locality: us-east1.zone-a}}")
    )
    eps = reg.endpoints("a.example.com", 80)
    assert eps is not None
    assert addresses(eps) == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    assert eps[0].locality == "us-east1/zone-a"  # the label's "." separators read as "/"
    assert (eps[1].weight, eps[1].service_account, eps[1].network) == (5, "sa-b", "n2")


def test_workload_with_host_name_address_is_selected_by_dns_entries_only() -> None:
    workloads = we("vm-dns", "{address: vm1.corp.example, labels: {app: vm}}") + we(
        "vm-ip", "{address: 10.0.0.9, labels: {app: vm}}"
    )
    static = registry(
        se(
            "hosts: [vm.example]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: vm}}"
        )
        + workloads
    )
    dns = registry(
        se(
            "hosts: [vm.example]\nports: [{number: 80, name: http}]\nresolution: DNS\n"
            "workloadSelector: {labels: {app: vm}}"
        )
        + workloads
    )
    assert addresses(static.endpoints("vm.example", 80)) == [("10.0.0.9", 80)]
    assert addresses(dns.endpoints("vm.example", 80)) == [("vm1.corp.example", 80), ("10.0.0.9", 80)]


@pytest.mark.parametrize(
    ("annotation", "status", "served"),
    [
        ("", "", True),
        ('"true"', "", False),
        ('"true"', "status: {conditions: [{type: Healthy, status: 'False'}]}", False),
        ('"true"', "status: {conditions: [{type: Healthy, status: 'True'}]}", True),
        ('"false"', "", True),
    ],
)
def test_workload_entry_health(annotation: str, status: str, served: bool) -> None:
    meta = f", annotations: {{proxy.istio.io/health-checks-enabled: {annotation}}}" if annotation else ""
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: a}}"
        )
        + we("a", "{address: 10.0.0.1, labels: {app: a}}", meta=meta, status=status)
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == ([("10.0.0.1", 80)] if served else [])


def test_workload_without_address_is_left_out() -> None:
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: a}}"
        )
        + we("far", "{network: remote, labels: {app: a}}")
        + we("near", "{address: 10.0.0.1, labels: {app: a}}")
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", 80)]


# --- DNS -----------------------------------------------------------------------------------------------


def test_dns_endpoints_keep_host_names() -> None:
    reg = registry(
        se("""
        hosts: [api.example.com]
        ports: [{number: 443, name: https, protocol: TLS}]
        resolution: DNS
        endpoints:
        - {address: eu.api.example.com, labels: {region: eu}}
        - {address: us.api.example.com, ports: {https: 8443}}
        """)
    )
    assert addresses(reg.endpoints("api.example.com", 443)) == [
        ("eu.api.example.com", 443),
        ("us.api.example.com", 8443),
    ]


def test_dns_without_endpoints_resolves_the_host_itself() -> None:
    reg = registry(
        se("""
        hosts: [api.example.com, www.example.com]
        ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS, targetPort: 8443}]
        resolution: DNS
        """)
    )
    assert reg.endpoints("api.example.com", 80) == (Endpoint("api.example.com", 80),)
    assert reg.endpoints("api.example.com", 443) == (Endpoint("api.example.com", 8443),)
    assert reg.endpoints("www.example.com", 80) == (Endpoint("www.example.com", 80),)


def test_dns_short_host_expands_for_lookup_but_resolves_as_written() -> None:
    reg = registry(se("hosts: [legacy]\nports: [{number: 80, name: http}]\nresolution: DNS", ns="prod"))
    assert reg.known_hosts() == frozenset({"legacy.prod.svc.cluster.local"})
    assert reg.endpoints("legacy.prod.svc.cluster.local", 80) == (Endpoint("legacy", 80),)


def test_dns_with_selector_and_no_match_has_no_endpoints() -> None:
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: DNS\n"
            "workloadSelector: {labels: {app: nothing}}"
        )
    )
    assert reg.endpoints("a.example.com", 80) == ()


def test_dns_round_robin_keeps_one_endpoint_per_port_across_entries() -> None:
    reg = registry(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: one.example.com}]",
            name="first",
            meta=", creationTimestamp: '2024-01-01T00:00:00Z'",
        )
        + se(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: two.example.com}]",
            name="second",
            meta=", creationTimestamp: '2024-02-01T00:00:00Z'",
        )
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == [("one.example.com", 80)]


# --- NONE (passthrough) ------------------------------------------------------------------------------


def test_none_resolution_is_known_with_no_endpoints() -> None:
    reg = registry(
        se("""
        hosts: [api.example.com]
        ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS, targetPort: 8443}]
        """)
    )
    assert reg.endpoints("api.example.com", 80) == ()
    info = reg.service("api.example.com", 80)
    assert info is not None and info.passthrough and info.destination_port == 80
    assert info.resolution is ServiceEntryResolution.NONE and info.mesh_external
    tls = reg.service("api.example.com", 443)
    assert tls is not None and tls.destination_port == 8443  # Istio's passthrough target port


# --- unknown hosts and ports ---------------------------------------------------------------------------


def test_unknown_host_and_undeclared_port_are_none() -> None:
    reg = registry(BOOKINFO)
    assert reg.endpoints("ratings.default.svc.cluster.local", 9080) is None
    assert reg.endpoints(REVIEWS, 8080) is None  # not a port of the service: outbound policy applies
    assert reg.service(REVIEWS, 8080) is None
    assert reg.endpoints("reviews", 9080) is None  # the registry takes resolved FQDNs


def test_lookups_are_precomputed() -> None:
    reg = registry(BOOKINFO)
    assert reg.endpoints(REVIEWS, 9080) is reg.endpoints(REVIEWS, 9080)


def test_empty_config_knows_nothing() -> None:
    reg = StaticRegistry.from_config(load_yaml(""))
    assert reg.known_hosts() == frozenset()
    assert reg.services() == ()
    assert reg.endpoints("a.example.com", 80) is None


# --- wildcards ---------------------------------------------------------------------------------------


def test_wildcard_none_covers_concrete_hosts() -> None:
    reg = registry(se("hosts: ['*.example.com']\nports: [{number: 443, name: tls, protocol: TLS}]"))
    assert reg.endpoints("api.example.com", 443) == ()
    info = reg.service("a.b.example.com", 443)
    assert info is not None and info.host == "*.example.com" and info.passthrough
    assert reg.endpoints("example.com", 443) is None  # the apex is not under the wildcard
    assert reg.endpoints("api.example.com", 80) is None
    assert reg.known_hosts() == frozenset({"*.example.com"})


def test_wildcard_dns_with_endpoints_uses_them() -> None:
    reg = registry(
        se(
            "hosts: ['*.example.com']\nports: [{number: 80, name: http}]\nresolution: DNS\n"
            "endpoints: [{address: egress.example.net}]"
        )
    )
    assert addresses(reg.endpoints("api.example.com", 80)) == [("egress.example.net", 80)]


def test_wildcard_dynamic_dns_connects_to_the_concrete_host() -> None:
    reg = registry(
        se(
            "hosts: ['*.example.com']\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]\n"
            "resolution: DYNAMIC_DNS"
        )
    )
    assert reg.endpoints("api.example.com", 80) == (Endpoint("api.example.com", 8080),)
    assert reg.endpoints("www.example.com", 80) == (Endpoint("www.example.com", 8080),)


def test_wildcard_dns_without_endpoints_connects_to_the_concrete_host() -> None:
    # Validation rejects this entry (hosts must be FQDNs); an unvalidated config still routes sensibly.
    config = parse_yaml(se("hosts: ['*.example.com']\nports: [{number: 80, name: http}]\nresolution: DNS"))
    assert config.errors
    reg = StaticRegistry.from_config(config)
    assert reg.endpoints("api.example.com", 80) == (Endpoint("api.example.com", 80),)


def test_exact_host_beats_wildcard_and_longer_wildcard_beats_shorter() -> None:
    reg = registry(
        se(
            "hosts: ['*.example.com']\nports: [{number: 80, name: http}]\nresolution: DNS\n"
            "endpoints: [{address: wide.example.net}]",
            name="wide",
        )
        + se(
            "hosts: ['*.api.example.com']\nports: [{number: 80, name: http}]\nresolution: DNS\n"
            "endpoints: [{address: narrow.example.net}]",
            name="narrow",
        )
        + se(
            "hosts: [v1.api.example.com]\nports: [{number: 80, name: http}, {number: 443, name: https}]\n"
            "resolution: STATIC\nendpoints: [{address: 10.0.0.1}]",
            name="exact",
        )
    )
    assert addresses(reg.endpoints("v1.api.example.com", 80)) == [("10.0.0.1", 80)]
    assert addresses(reg.endpoints("v2.api.example.com", 80)) == [("narrow.example.net", 80)]
    assert addresses(reg.endpoints("www.example.com", 80)) == [("wide.example.net", 80)]


def test_wildcard_covers_a_port_the_exact_host_does_not_declare() -> None:
    reg = registry(
        se("hosts: ['*.example.com']\nports: [{number: 8080, name: http}]", name="wild")
        + se(
            "hosts: [api.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1}]",
            name="exact",
        )
    )
    assert addresses(reg.endpoints("api.example.com", 80)) == [("10.0.0.1", 80)]
    info = reg.service("api.example.com", 8080)
    assert info is not None and info.host == "*.example.com"


# --- exportTo ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export_to", "client", "visible"),
    [
        ("[]", "other", True),
        ("['*']", "other", True),
        ("['.']", "infra", True),
        ("['.']", "other", False),
        ("['infra']", "other", False),
        ("['other']", "other", True),
        ("['other', 'team']", "team", True),
        ("['~']", "infra", False),
    ],
)
def test_export_to_visibility(export_to: str, client: str, visible: bool) -> None:
    text = se(
        f"hosts: [api.example.com]\nports: [{{number: 80, name: http}}]\nexportTo: {export_to}", ns="infra"
    )
    reg = registry(text, client_namespace=client)
    assert (reg.endpoints("api.example.com", 80) is not None) is visible
    assert ("api.example.com" in reg.known_hosts()) is visible


def test_client_namespace_defaults_to_the_config_namespace() -> None:
    text = se("hosts: [api.example.com]\nports: [{number: 80, name: http}]\nexportTo: ['.']", ns="infra")
    assert registry(text).endpoints("api.example.com", 80) is None
    assert registry(text, namespace="infra").endpoints("api.example.com", 80) == ()


# --- several entries for one host --------------------------------------------------------------------


def _two(first: str, second: str, ns1: str = "default", ns2: str = "default") -> str:
    return se(first, name="a-first", ns=ns1, meta=", creationTimestamp: '2024-01-01T00:00:00Z'") + se(
        second, name="b-second", ns=ns2, meta=", creationTimestamp: '2024-02-01T00:00:00Z'"
    )


def test_entries_in_one_namespace_merge_ports_and_endpoints() -> None:
    reg = registry(
        _two(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1}]",
            "hosts: [a.example.com]\nports: [{number: 80, name: http}, {number: 443, name: https}]\n"
            "resolution: STATIC\nendpoints: [{address: 10.0.0.2}]",
        )
    )
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert addresses(reg.endpoints("a.example.com", 443)) == [("10.0.0.2", 443)]
    info80, info443 = reg.service("a.example.com", 80), reg.service("a.example.com", 443)
    assert info80 is not None and info80.service_entry == "default/a-first"
    assert info443 is not None and info443.service_entry == "default/b-second"


def test_entries_that_cannot_merge_keep_the_oldest_ports() -> None:
    reg = registry(
        _two(
            "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1}]",
            "hosts: [a.example.com]\nports: [{number: 80, name: http}, {number: 443, name: https}]\n"
            "resolution: DNS\nendpoints: [{address: b.example.net}]",
        )
    )
    assert reg.endpoints("a.example.com", 443) is None  # a different resolution: ports are not merged
    # endpoints of one namespace and host are pooled whatever entry declares them
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", 80), ("b.example.net", 80)]
    info = reg.service("a.example.com", 80)
    assert info is not None and info.resolution is ServiceEntryResolution.STATIC


def test_oldest_entry_wins_regardless_of_load_order() -> None:
    text = se(
        "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: DNS",
        name="young",
        meta=", creationTimestamp: '2024-05-01T00:00:00Z'",
    ) + se(
        "hosts: [a.example.com]\nports: [{number: 80, name: http, targetPort: 8080}]\nresolution: DNS",
        name="old",
        meta=", creationTimestamp: '2023-05-01T00:00:00Z'",
    )
    info = registry(text).service("a.example.com", 80)
    assert info is not None and info.service_entry == "default/old" and info.destination_port == 8080


def test_client_namespace_entry_wins_over_other_namespaces() -> None:
    text = _two(
        "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
        "endpoints: [{address: 10.0.0.1}]",
        "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
        "endpoints: [{address: 10.0.0.2}]",
        ns1="infra",
        ns2="team",
    )
    assert addresses(registry(text, client_namespace="team").endpoints("a.example.com", 80)) == [
        ("10.0.0.2", 80)
    ]
    # neither namespace is the client's: the oldest entry's namespace, and only its endpoints
    assert addresses(registry(text, client_namespace="web").endpoints("a.example.com", 80)) == [
        ("10.0.0.1", 80)
    ]


def test_hidden_entry_lends_endpoints_but_not_its_definition() -> None:
    text = _two(
        "hosts: [a.example.com]\nports: [{number: 80, name: http, targetPort: 8080}]\nresolution: STATIC\n"
        "endpoints: [{address: 10.0.0.1}]\nexportTo: ['.']",
        "hosts: [a.example.com]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
        "endpoints: [{address: 10.0.0.2}]",
        ns1="infra",
        ns2="infra",
    )
    reg = registry(text, client_namespace="web")
    info = reg.service("a.example.com", 80)
    assert info is not None and info.service_entry == "infra/b-second"
    assert addresses(reg.endpoints("a.example.com", 80)) == [("10.0.0.1", 8080), ("10.0.0.2", 80)]


# --- settings and protocol -------------------------------------------------------------------------


def test_short_host_expands_in_the_entry_namespace_and_mesh_domain() -> None:
    text = """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {clusterDomainSuffix: corp.local}
---
""" + se(
        "hosts: [billing]\nports: [{number: 80, name: http}]\nresolution: STATIC\n"
        "endpoints: [{address: 10.0.0.1}]",
        ns="payments",
    )
    reg = registry(text)
    assert reg.domain == "corp.local"
    assert reg.known_hosts() == frozenset({"billing.payments.svc.corp.local"})
    assert addresses(reg.endpoints("billing.payments.svc.corp.local", 80)) == [("10.0.0.1", 80)]


def test_services_lists_every_visible_port() -> None:
    reg = registry(
        se(
            "hosts: [b.example.com, a.example.com]\nports: [{number: 443, name: https}, {number: 80, name: http}]"
        )
        + se("hosts: ['*.example.org']\nports: [{number: 80, name: http}]", name="wild")
    )
    assert [(s.host, s.port) for s in reg.services()] == [
        ("a.example.com", 80),
        ("a.example.com", 443),
        ("b.example.com", 80),
        ("b.example.com", 443),
        ("*.example.org", 80),
    ]


def test_subscribe_never_fires_and_unsubscribes_quietly() -> None:
    reg = registry(BOOKINFO)
    calls: list[int] = []
    unsubscribe = reg.subscribe(lambda: calls.append(1))
    unsubscribe()
    unsubscribe()
    assert calls == []
    as_protocol: Registry = reg
    assert as_protocol.endpoints(REVIEWS, 9080)
