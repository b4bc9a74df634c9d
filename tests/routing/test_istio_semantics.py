"""Routing answers checked against what pilot generates and Envoy does for a sidecar-proxied client.

Each test names the pilot function (istio/istio) or Envoy behaviour it encodes, so a failure points at the
rule rather than at libmesh's implementation.
"""

from __future__ import annotations

import textwrap

import pytest

from libmesh import Mesh
from libmesh.config import load_yaml
from libmesh.policy.engine import Deliver, Reply, Send
from libmesh.policy.outcome import Outcome
from libmesh.routing.call import Call
from libmesh.routing.decision import DEFAULT_RETRY_ON, Action, HeaderOps, Redirect
from libmesh.routing.policy import effective_policy
from libmesh.routing.snapshot import Snapshot
from libmesh.workload import Workload

REVIEWS = "reviews.default.svc.cluster.local"


def snap(yaml_text: str, workload: Workload | None = None) -> Snapshot:
    return Snapshot.compile(load_yaml(textwrap.dedent(yaml_text)), workload=workload)


def meta(name: str, ns: str, created: str | None = None) -> str:
    ts = f", creationTimestamp: '{created}'" if created else ""
    return f"{{name: {name}, namespace: {ns}{ts}}}"


def vs(
    hosts: str,
    http: str,
    ns: str = "default",
    name: str = "r",
    extra: str = "",
    created: str | None = None,
) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {meta(name, ns, created)}
spec:
  hosts: {hosts}
{extra}  http:
{textwrap.indent(textwrap.dedent(http).strip(), "  ")}
"""


def delegate_vs(http: str, ns: str, name: str, extra: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {meta(name, ns)}
spec:
{extra}  http:
{textwrap.indent(textwrap.dedent(http).strip(), "  ")}
"""


def dr(host: str, body: str, name: str = "d", ns: str = "default", created: str | None = None) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {meta(name, ns, created)}
spec:
  host: {host}
{textwrap.indent(textwrap.dedent(body).strip(), "  ")}
"""


def se(hosts: str, ns: str = "default", name: str = "ext", extra: str = "", resolution: str = "DNS") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {meta(name, ns)}
spec:
  hosts: {hosts}
  location: MESH_EXTERNAL
  resolution: {resolution}
  ports: [{{number: 80, name: http, protocol: HTTP}}]
{extra}"""


def route_to(subset: str, host: str = "reviews") -> str:
    return f"route: [{{destination: {{host: {host}, subset: {subset}}}}}]"


def lb_of(s: Snapshot, host: str, subset: str | None = None, port: int | None = None) -> str:
    return effective_policy(s.traffic_policy(host, subset, port)).load_balancer


def call(authority: str = "reviews", path: str = "/", **kw: object) -> Call:
    return Call(authority=authority, path=path, **kw)  # type: ignore[arg-type]


# --- redirects: Envoy's Http::Utility::newUri after pilot's ApplyRedirect --------------------------------


def redirect_of(http: str, path: str = "/") -> Redirect:
    d = snap(vs("[reviews]", http)).route(call(path=path))
    assert d.action is Action.REDIRECT and d.redirect is not None, d
    return d.redirect


@pytest.mark.parametrize(
    ("redirect", "req", "location"),
    [
        # path_redirect keeps the request's query string unless it carries its own (Envoy newUri).
        ("{uri: /new}", ("http", "reviews", 9080, "/old?q=1"), "http://reviews:9080/new?q=1"),
        ("{uri: '/new?a=b'}", ("http", "reviews", 80, "/old?q=1"), "http://reviews/new?a=b"),
        ("{uri: /new}", ("http", "reviews", 80, "/old"), "http://reviews/new"),
        # A new authority replaces the whole Host header; no port unless one is configured.
        ("{authority: other.com}", ("http", "reviews", 9080, "/x?y=1"), "http://other.com/x?y=1"),
        ("{authority: other.com, port: 8080}", ("http", "reviews", 9080, "/x"), "http://other.com:8080/x"),
        # Scheme change: Envoy drops the request's port only when it is the old scheme's default.
        ("{scheme: https}", ("http", "reviews", 9080, "/x"), "https://reviews:9080/x"),
        ("{scheme: https}", ("http", "reviews", 80, "/x"), "https://reviews/x"),
        # A configured port replaces the request's port; pilot drops 80 (http) and 443 (https), after which
        # Envoy keeps the Host header as the client sent it.
        ("{port: 8080}", ("http", "reviews", 9080, "/x"), "http://reviews:8080/x"),
        ("{port: 80}", ("http", "reviews", 9080, "/x"), "http://reviews:9080/x"),
        ("{port: 443}", ("http", "reviews", 80, "/x"), "http://reviews:443/x"),
        ("{scheme: https, port: 443}", ("http", "reviews", 80, "/x"), "https://reviews/x"),
        ("{scheme: https, port: 8443}", ("http", "reviews", 9080, "/x"), "https://reviews:8443/x"),
        # FROM_REQUEST_PORT becomes the listener port (pilot's ApplyRedirect).
        ("{derivePort: FROM_REQUEST_PORT}", ("http", "reviews", 9080, "/x"), "http://reviews:9080/x"),
        ("{derivePort: FROM_REQUEST_PORT, scheme: https}", ("http", "r", 9080, "/x"), "https://r:9080/x"),
        ("{derivePort: FROM_PROTOCOL_DEFAULT, scheme: https}", ("http", "r", 80, "/x"), "https://r/x"),
    ],
)
def test_redirect_location(redirect: str, req: tuple[str, str, int, str], location: str) -> None:
    assert redirect_of(f"- redirect: {redirect}").location(*req) == location


def test_redirect_location_uses_the_host_header_as_sent() -> None:
    # processRequestHost works on the Host header: a port the client wrote stays when nothing replaces it.
    rd = redirect_of("- redirect: {uri: /new}")
    assert rd.location("http", "reviews", 80, "/old", authority="reviews:80") == "http://reviews:80/new"
    assert rd.location("http", "reviews", 9080, "/old", authority="reviews") == "http://reviews/new"


def test_redirect_prefix_rewrite_keeps_the_query() -> None:
    rd = redirect_of("- match: [{uri: {prefix: /v1/}}]\n  redirect: {prefixRewrite: /v2/}", "/v1/items")
    assert rd.location("http", "reviews", 80, "/v1/items?x=1") == "http://reviews/v2/items?x=1"


# --- query parameters: Envoy's QueryParamsMulti::parseQueryString (no decoding, first value) ----------------


@pytest.mark.parametrize(
    ("match", "path", "hit"),
    [
        ("{q: {exact: 'a%20b'}}", "/?q=a%20b", True),  # matched as sent: route matching does not decode
        ("{q: {exact: 'a b'}}", "/?q=a%20b", False),
        ("{q: {exact: 'a+b'}}", "/?q=a+b", True),  # '+' is not a space here
        ("{q: {exact: '1'}}", "/?q=1&q=2", True),  # the first value is the one matched
        ("{q: {exact: '2'}}", "/?q=1&q=2", False),
        ("{q: {exact: ''}}", "/?q", True),  # a name without '=' has the empty value
        ("{'a%20b': {exact: '1'}}", "/?a%20b=1", True),  # names are not decoded either
    ],
)
def test_query_params_are_matched_raw(match: str, path: str, hit: bool) -> None:
    s = snap(vs("[reviews]", f"- match: [{{queryParams: {match}}}]\n  {route_to('v1')}"))
    assert (s.route(call(path=path)).action is Action.ROUTE) is hit


# --- VirtualService precedence for a sidecar: SelectVirtualServices, then first vhost wins -----------------


def test_private_virtual_service_in_client_namespace_beats_older_public_one() -> None:
    # SelectVirtualServices lists the client namespace's private VirtualServices first, then those exported
    # to it by name, then public ones; BuildSidecarOutboundVirtualHosts keeps the first for a host.
    text = vs(
        f"[{REVIEWS}]", f"- {route_to('v1')}", ns="prod", name="public-old", created="2024-01-01T00:00:00Z"
    )
    text += vs(
        f"[{REVIEWS}]",
        f"- {route_to('v2')}",
        name="private-new",
        extra="  exportTo: ['.']\n",
        created="2024-06-01T00:00:00Z",
    )
    s = snap(text)
    assert s.route(call()).virtual_service == "default/private-new"


def test_virtual_service_exported_by_name_beats_public_one() -> None:
    text = vs(f"[{REVIEWS}]", f"- {route_to('v1')}", ns="a", name="public", created="2024-01-01T00:00:00Z")
    text += vs(
        f"[{REVIEWS}]",
        f"- {route_to('v2')}",
        ns="b",
        name="named",
        extra="  exportTo: [default]\n",
        created="2024-06-01T00:00:00Z",
    )
    assert snap(text).route(call()).virtual_service == "b/named"


def test_public_virtual_service_in_client_namespace_does_not_beat_an_older_public_one() -> None:
    text = vs(f"[{REVIEWS}]", f"- {route_to('v1')}", ns="prod", name="old", created="2024-01-01T00:00:00Z")
    text += vs(f"[{REVIEWS}]", f"- {route_to('v2')}", name="new", created="2024-06-01T00:00:00Z")
    assert snap(text).route(call()).virtual_service == "prod/old"


def test_virtual_service_with_no_route_for_this_workload_is_skipped() -> None:
    # BuildSidecarVirtualHostsForVirtualService drops a VirtualService whose routes are all filtered out by
    # sourceLabels; the host then gets the next VirtualService, or the service's default route.
    only_pp = vs(
        "[reviews]",
        f"- match: [{{sourceLabels: {{app: productpage}}}}]\n  {route_to('v1')}",
        name="for-productpage",
        created="2024-01-01T00:00:00Z",
    )
    other = Workload(namespace="default", labels={"app": "ratings"})
    d = snap(only_pp, other).route(call())
    assert d.action is Action.ROUTE and d.virtual_service is None
    assert d.retries is not None and d.retries.attempts == 2
    second = only_pp + vs("[reviews]", f"- {route_to('v3')}", name="fallback", created="2024-02-01T00:00:00Z")
    assert snap(second, other).route(call()).virtual_service == "default/fallback"
    pp = Workload(namespace="default", labels={"app": "productpage"})
    assert snap(second, pp).route(call()).virtual_service == "default/for-productpage"


def test_virtual_service_with_no_route_on_the_called_port_is_skipped() -> None:
    # TranslateRoute drops matches for another port; a VirtualService left without routes on a listener
    # port does not claim the service there.
    s = snap(vs("[reviews]", f"- match: [{{port: 9080}}]\n  {route_to('v1')}"))
    assert s.route(call("reviews:9080")).virtual_service == "default/r"
    d = s.route(call("reviews:8080"))
    assert d.action is Action.ROUTE and d.virtual_service is None


def test_virtual_service_for_a_host_outside_the_registry_applies_on_port_80_only() -> None:
    # BuildSidecarVirtualHostsForVirtualService: hosts that match no service get a virtual host on port 80.
    s = snap(vs("[bookinfo.example.com]", f"- {route_to('v1')}"))
    assert s.route(call("bookinfo.example.com")).virtual_service == "default/r"
    assert s.route(call("bookinfo.example.com:8080")).virtual_service is None
    with_se = snap(vs("[bookinfo.example.com]", f"- {route_to('v1')}") + se("[bookinfo.example.com]"))
    assert with_se.route(call("bookinfo.example.com:8080")).virtual_service == "default/r"


def test_a_host_outside_the_registry_is_routed_on_the_http_ports_of_the_services_its_virtual_service_names() -> (
    None
):
    # pilot gives the VirtualService's non-registry hosts a virtual host on port 80 and in the route table of
    # each HTTP (or sniffed) port of the services it names, and no other.
    api = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.internal]
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 3306, name: db, protocol: TCP},
          {number: 7000, name: other}]
"""
    s = snap(vs("[api.internal, bookinfo.example.com]", f"- {route_to('v1')}") + api)
    for port, routed in ((80, True), (9080, True), (7000, True), (3306, False), (8080, False)):
        d = s.route(call(f"bookinfo.example.com:{port}"))
        assert (d.virtual_service == "default/r") is routed, port
    # A Kubernetes service's ports are not known: its VirtualService's other hosts are routed on every port.
    k8s = snap(vs("[reviews, bookinfo.example.com]", f"- {route_to('v1')}"))
    assert k8s.route(call("bookinfo.example.com:8080")).virtual_service == "default/r"
    # A name only a wildcard ServiceEntry host covers is no service of its own in pilot's registry map.
    wild = snap(
        vs("[a.foo.com, bookinfo.example.com]", f"- {route_to('v1')}")
        + se('["*.foo.com"]', resolution="NONE")
    )
    assert wild.route(call("bookinfo.example.com:8080")).virtual_service is None
    assert wild.route(call("bookinfo.example.com")).virtual_service == "default/r"


def test_a_service_named_exactly_is_never_handed_to_a_wildcard_virtual_service() -> None:
    # computeWildcardHostVirtualServiceIndex maps a service to the VirtualService naming it exactly, when
    # one does; if that one has no route for this workload, the service keeps its default route.
    text = vs(
        "[reviews]",
        f"- match: [{{sourceLabels: {{app: productpage}}}}]\n  {route_to('v1')}",
        name="exact",
    )
    text += vs('["*.default.svc.cluster.local"]', f"- {route_to('v3')}", name="wild")
    s = snap(text, Workload(namespace="default", labels={"app": "ratings"}))
    assert s.route(call("reviews")).virtual_service is None
    assert s.route(call("ratings")).virtual_service == "default/wild"


def test_only_the_most_specific_wildcard_virtual_service_serves_a_service() -> None:
    text = vs(
        '["*.default.svc.cluster.local"]', f"- match: [{{port: 9080}}]\n  {route_to('v1')}", name="narrow"
    )
    text += vs('["*.svc.cluster.local"]', f"- {route_to('v2')}", name="broad")
    s = snap(text)
    assert s.route(call("reviews:9080")).virtual_service == "default/narrow"
    assert s.route(call("reviews:8080")).virtual_service is None  # not handed on to the broader wildcard
    assert s.route(call("ratings.prod.svc.cluster.local:8080")).virtual_service == "default/broad"


def test_every_host_of_a_virtual_service_reports_itself() -> None:
    s = snap(vs("[reviews, ratings]", f"- {route_to('v1')}"))
    assert s.route(call("reviews")).host == REVIEWS
    assert s.route(call("ratings")).host == "ratings.default.svc.cluster.local"
    wild = snap(
        vs('["*.example.com"]', "- route: [{destination: {host: backend}}]")
        + se('["*.example.com"]', resolution="NONE")
    )
    assert wild.route(call("api.example.com")).host == "api.example.com"


# --- outbound traffic to hosts outside the registry: buildCatchAllVirtualHost -------------------------------


def test_unknown_external_host_is_passed_through_without_retries() -> None:
    s = snap(vs("[reviews]", f"- {route_to('v1')}"))
    d = s.route(call("httpbin.org"))
    assert d.action is Action.ROUTE and d.virtual_service is None
    assert d.destinations[0].host == "httpbin.org" and d.destinations[0].policy is None
    assert d.retries is not None and d.retries.attempts == 0 and d.timeout is None


def test_registry_only_blocks_unknown_hosts_with_502() -> None:
    mesh = """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"""
    s = snap(mesh + se("[api.example.com]"))
    blocked = s.route(call("httpbin.org"))
    assert blocked.action is Action.DIRECT_RESPONSE and blocked.direct_response is not None
    assert blocked.direct_response.status == 502
    known = s.route(call("api.example.com"))
    assert known.action is Action.ROUTE and known.retries is not None and known.retries.attempts == 2
    svc = s.route(call("reviews"))  # Kubernetes services are in the registry
    assert svc.action is Action.ROUTE and svc.retries is not None and svc.retries.attempts == 2


# --- DestinationRule lookup: PushContext.destinationRule and SidecarScope.DestinationRule -------------------


def test_destination_rule_in_an_unrelated_namespace_does_not_apply() -> None:
    s = snap(dr(REVIEWS, "trafficPolicy: {loadBalancer: {simple: RANDOM}}", ns="other"))
    assert s.traffic_policy(REVIEWS) is None


def test_destination_rule_in_the_root_namespace_applies_last() -> None:
    root = dr(REVIEWS, "trafficPolicy: {loadBalancer: {simple: RANDOM}}", ns="istio-system", name="root")
    assert lb_of(snap(root), REVIEWS) == "RANDOM"
    svc_ns = dr("reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}", name="svc")
    client = Workload(namespace="client")
    assert lb_of(snap(root + svc_ns, client), REVIEWS) == "ROUND_ROBIN"  # service namespace first


def test_client_namespace_destination_rule_beats_the_service_namespace_one() -> None:
    text = dr("reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}", name="svc")
    text += dr(REVIEWS, "trafficPolicy: {loadBalancer: {simple: RANDOM}}", ns="client", name="mine")
    assert lb_of(snap(text, Workload(namespace="client")), REVIEWS) == "RANDOM"


def test_service_namespace_rule_must_be_exported_and_the_most_specific_one_decides() -> None:
    # getExportedDestinationRuleFromNamespace picks the most specific host first, then filters by exportTo:
    # an exact rule exported elsewhere hides the namespace's wildcard rule, and the root namespace is next.
    text = dr(
        "reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\nexportTo: [other]", name="exact"
    )
    text += dr(
        '"*.default.svc.cluster.local"', "trafficPolicy: {loadBalancer: {simple: RANDOM}}", name="wild"
    )
    assert snap(text, Workload(namespace="client")).traffic_policy(REVIEWS) is None
    assert lb_of(snap(text, Workload(namespace="other")), REVIEWS) == "ROUND_ROBIN"
    private = dr(
        "reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\nexportTo: ['.']", name="exact"
    )
    private += dr(
        '"*.default.svc.cluster.local"', "trafficPolicy: {loadBalancer: {simple: RANDOM}}", name="wild"
    )
    assert (
        lb_of(snap(private, Workload(namespace="client")), REVIEWS) == "RANDOM"
    )  # private rules are not exported
    assert lb_of(snap(private), REVIEWS) == "ROUND_ROBIN"  # but apply in their own namespace


def test_client_namespace_rule_exported_elsewhere_only_does_not_apply_locally() -> None:
    # setDestinationRules: a rule joins its namespace's local index only for exportTo empty, '*', '.' or
    # its own namespace.
    text = dr("reviews", "trafficPolicy: {loadBalancer: {simple: RANDOM}}\nexportTo: [prod]")
    assert snap(text).traffic_policy(REVIEWS) is None
    assert lb_of(snap(text, Workload(namespace="prod")), REVIEWS) == "RANDOM"


def test_workload_selector_rules_apply_only_in_their_own_namespace() -> None:
    text = dr(
        REVIEWS,
        "workloadSelector: {matchLabels: {app: pp}}\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}",
        ns="other",
    )
    assert snap(text, Workload(namespace="default", labels={"app": "pp"})).traffic_policy(REVIEWS) is None
    assert lb_of(snap(text, Workload(namespace="other", labels={"app": "pp"})), REVIEWS) == "RANDOM"


def test_workload_selector_rule_beats_the_namespace_wide_one_and_hides_other_namespaces() -> None:
    # SidecarScope.DestinationRule: the client namespace's rule whose selector matches wins; when the host's
    # rules there all select other workloads, no rule applies (the service namespace is not consulted).
    text = dr("reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}", name="all")
    text += dr(
        "reviews",
        "workloadSelector: {matchLabels: {app: pp}}\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}",
        name="pp",
    )
    assert lb_of(snap(text, Workload(namespace="default", labels={"app": "pp"})), REVIEWS) == "RANDOM"
    assert lb_of(snap(text, Workload(namespace="default", labels={"app": "x"})), REVIEWS) == "ROUND_ROBIN"
    other = dr(
        REVIEWS,
        "workloadSelector: {matchLabels: {app: pp}}\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}",
        ns="client",
        name="pp",
    )
    other += dr("reviews", "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}", name="svc")
    assert snap(other, Workload(namespace="client", labels={"app": "x"})).traffic_policy(REVIEWS) is None


def test_same_host_rules_merge_in_creation_order() -> None:
    # setDestinationRules sorts by creation time before merging: the oldest top-level policy is kept.
    text = dr(
        "reviews",
        "trafficPolicy: {loadBalancer: {simple: RANDOM}}",
        name="b-new",
        created="2024-06-01T00:00:00Z",
    )
    text += dr(
        "reviews",
        "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\nsubsets: [{name: v1, labels: {version: v1}}]",
        name="a-old",
        created="2024-01-01T00:00:00Z",
    )
    s = snap(text)
    assert lb_of(s, REVIEWS) == "ROUND_ROBIN"
    assert s.subset_labels(REVIEWS, "v1") == {"version": "v1"}


def test_service_entry_namespace_is_the_service_namespace_for_destination_rules() -> None:
    text = se("[api.example.com]", ns="ext")
    text += dr("api.example.com", "trafficPolicy: {loadBalancer: {simple: RANDOM}}", ns="ext")
    s = snap(text, Workload(namespace="client"))
    assert lb_of(s, "api.example.com") == "RANDOM"
    assert s.route(call("api.example.com")).destinations[0].destination_rule == "ext/d"


def test_port_level_settings_use_the_called_port_when_the_destination_has_none() -> None:
    # GetDestinationCluster: a destination without a port goes to the cluster of the listener port, whose
    # policy takes that port's portLevelSettings.
    text = dr(
        "reviews",
        """
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          portLevelSettings: [{port: {number: 9080}, loadBalancer: {simple: RANDOM}}]
        """,
    )
    default_route = snap(text).route(call("reviews:9080"))
    assert effective_policy(default_route.destinations[0].policy).load_balancer == "RANDOM"
    routed = snap(text + vs("[reviews]", "- route: [{destination: {host: reviews}}]"))
    assert (
        effective_policy(routed.route(call("reviews:9080")).destinations[0].policy).load_balancer == "RANDOM"
    )
    assert (
        effective_policy(routed.route(call("reviews:80")).destinations[0].policy).load_balancer
        == "ROUND_ROBIN"
    )


# --- retries: retry.ConvertPolicy --------------------------------------------------------------------------


def test_consistent_hash_destinations_do_not_skip_previous_hosts_on_retry() -> None:
    text = dr("reviews", "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}")
    single = snap(text + vs("[reviews]", "- route: [{destination: {host: reviews}}]")).route(call())
    assert single.retries is not None and single.retries.attempts == 2
    assert single.retries.retry_on == DEFAULT_RETRY_ON and not single.retries.ignore_previous_hosts
    explicit = snap(
        text + vs("[reviews]", "- retries: {attempts: 3}\n  route: [{destination: {host: reviews}}]")
    )
    d = explicit.route(call())
    assert d.retries is not None and d.retries.attempts == 3 and not d.retries.ignore_previous_hosts
    forced = snap(
        text
        + vs(
            "[reviews]",
            "- retries: {attempts: 3, retryIgnorePreviousHosts: true}\n"
            "  route: [{destination: {host: reviews}}]",
        )
    )
    r = forced.route(call()).retries
    assert r is not None and r.ignore_previous_hosts
    weighted = snap(
        text
        + vs(
            "[reviews]",
            """
        - route:
          - {destination: {host: reviews}, weight: 50}
          - {destination: {host: ratings}, weight: 50}
        """,
        )
    ).route(call())
    assert weighted.retries is not None and weighted.retries.ignore_previous_hosts  # only single routes hash


def test_retry_on_reads_numbers_as_go_does() -> None:
    # parseRetryOn: strconv.Atoi accepts a sign, and a known HTTP status becomes a retriable status code.
    d = snap(
        vs(
            "[reviews]",
            "- retries: {attempts: 2, retryOn: '+503,5xx'}\n  route: [{destination: {host: reviews}}]",
        )
    )
    r = d.route(call()).retries
    assert r is not None and r.retriable_status_codes == {503}
    assert r.retry_on == ("5xx", "retriable-status-codes")


# --- faults: TranslateRoute adds the fault filter config whatever the route's action ----------------------


def test_root_fault_reaches_delegated_redirects() -> None:
    # Validation forbids fault beside redirect in one route, but mergeHTTPRoute gives a delegate redirect
    # the root's fault, and Envoy's fault filter runs before the redirect is answered.
    text = vs(
        "[reviews]",
        """
    - fault: {delay: {fixedDelay: 1s, percentage: {value: 50}}}
      delegate: {name: moved}
    """,
        name="root",
    )
    text += delegate_vs("- redirect: {uri: /x}", ns="default", name="moved")
    r = snap(text).route(call(path="/other"))
    assert r.action is Action.REDIRECT and r.fault is not None and r.fault.delay == 1


# --- DestinationRule defaults: applyOutlierDetection ------------------------------------------------------


def test_outlier_detection_ignores_the_deprecated_consecutive_errors_and_zero_max_ejection() -> None:
    s = snap(
        dr("reviews", "trafficPolicy: {outlierDetection: {consecutiveErrors: 2, maxEjectionPercent: 0}}")
    )
    eff = effective_policy(s.traffic_policy(REVIEWS))
    assert eff.outlier is not None
    assert eff.outlier.consecutive_5xx == 5  # pilot stopped reading consecutiveErrors (istio#24087)
    assert eff.outlier.max_ejection_percent == 10  # 0 means unset: Envoy's default applies


# --- uriRegexRewrite: Envoy's regex_rewrite (RE2 GlobalReplace on the path, query kept) ---------------------


def test_regex_rewrite_uses_re2_substitution_syntax() -> None:
    s = snap(
        vs(
            "[reviews]",
            f"""
        - match: [{{uri: {{prefix: /a}}}}]
          rewrite: {{uriRegexRewrite: {{match: '^/a/(.*)$', rewrite: '/b\\0/\\1'}}}}
          {route_to("v1")}
        - rewrite: {{uriRegexRewrite: {{match: '^/(x*)other$', rewrite: '\\1'}}}}
          {route_to("v1")}
        """,
        )
    )
    d = s.route(call(path="/a/x?q=1"))
    assert d.rewrite is not None and d.rewrite.apply_path("/a/x?q=1") == "/b/a/x/x?q=1"
    d = s.route(call(path="/other"))
    assert d.rewrite is not None and d.rewrite.apply_path("/other?q=1") == "/other?q=1"  # empty: no rewrite


# --- delegate VirtualServices: mergeVirtualServices / mergeHTTPRoute ---------------------------------------


ROOT_VS = vs(
    "[reviews]",
    """
    - name: root
      match: [{uri: {prefix: /api}, headers: {x-team: {exact: a}}}]
      timeout: 3s
      delegate: {name: api, namespace: team}
    - route: [{destination: {host: reviews, subset: v1}}]
    """,
    name="root",
)


def test_delegate_routes_are_merged_into_the_root() -> None:
    text = ROOT_VS + delegate_vs(
        """
        - name: v2
          match: [{uri: {prefix: /api/v2}}]
          route: [{destination: {host: reviews, subset: v2}}]
        - route: [{destination: {host: backend}}]
        """,
        ns="team",
        name="api",
    )
    s = snap(text)
    d = s.route(call(path="/api/v2/x", headers={"x-team": "a"}))
    assert d.action is Action.ROUTE and d.virtual_service == "default/root"
    assert d.route_name == "root-v2" and d.timeout == 3
    # Short names in the delegate resolve in the delegate's namespace.
    assert (d.destinations[0].host, d.destinations[0].subset) == ("reviews.team.svc.cluster.local", "v2")
    d = s.route(call(path="/api/other", headers={"x-team": "a"}))
    assert d.destinations[0].host == "backend.team.svc.cluster.local" and d.route_name == "root"
    # The root's match still applies to every delegate route.
    assert s.route(call(path="/api/v2/x")).destinations[0].subset == "v1"


def test_delegate_routes_that_conflict_with_the_root_match_are_dropped() -> None:
    text = ROOT_VS + delegate_vs(
        """
        - match: [{uri: {prefix: /apx}}]
          route: [{destination: {host: reviews, subset: v2}}]
        """,
        ns="team",
        name="api",
    )
    d = snap(text).route(call(path="/apx", headers={"x-team": "a"}))
    assert d.destinations[0].subset == "v1"  # the conflicting delegate route does not exist


def test_delegate_not_exported_to_the_root_namespace_is_ignored() -> None:
    text = ROOT_VS + delegate_vs(
        "- route: [{destination: {host: reviews, subset: v2}}]",
        ns="team",
        name="api",
        extra="  exportTo: ['.']\n",
    )
    d = snap(text).route(call(path="/api/x", headers={"x-team": "a"}))
    assert d.destinations[0].subset == "v1"
    assert all(x.host for x in d.destinations)


def test_delegate_virtual_service_is_not_routed_directly() -> None:
    text = delegate_vs("- route: [{destination: {host: backend}}]", ns="default", name="api")
    assert snap(text).route(call("backend")).virtual_service is None


# --- host resolution ----------------------------------------------------------------------------------------


def test_namespace_qualified_short_name_reaches_the_service_and_its_rule() -> None:
    text = dr("reviews", "trafficPolicy: {loadBalancer: {simple: RANDOM}}", ns="prod")
    s = snap(text, Workload(namespace="prod"))
    d = Snapshot.compile(s.config, workload=Workload(namespace="prod")).route(call("reviews.prod"))
    assert d.host == "reviews.prod.svc.cluster.local"
    assert effective_policy(d.destinations[0].policy).load_balancer == "RANDOM"


# --- header edits of a route and its destinations: the order Envoy applies them in -------------------------

_REVIEWS_ENTRY = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
"""
_HEADER_SERVICE = (
    _REVIEWS_ENTRY
    + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""
)


def test_no_healthy_upstream_is_answered_before_the_circuit_breaker_is_checked() -> None:
    # Envoy's router asks the load balancer for a host first (none: 503 UH) and only then does the host's
    # connection pool check the circuit breakers (503 UO).
    dr_text = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 1}}
    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 0}
"""
    mesh = Mesh(load_yaml(textwrap.dedent(_REVIEWS_ENTRY) + dr_text))
    call = Call(authority="reviews:9080", path="/")
    plan = mesh.plan(call, body_replayable=True)
    first = plan.first()
    assert isinstance(first, Send)
    cluster = next(iter(mesh.clusters().values()))
    other = next(e for e in cluster.endpoints if e is not first.endpoint)
    plan.sent(Outcome(status=503), fault_injected=True)  # this endpoint is ejected (no retry)
    assert cluster.start_request(other)
    cluster.end_request(other, Outcome(status=503))  # and the other one
    assert len(cluster.stats().ejected) == 2
    assert cluster.start_request(None)  # the only request slot is taken
    reply = mesh.plan(call, body_replayable=True).first()
    assert isinstance(reply, Reply) and (reply.status, reply.flags) == (503, "UH")
    mesh.close()


def _header_edits(
    destinations: str, route_edits: str = "{set: {x-a: route}, remove: [x-b]}"
) -> tuple[HeaderOps, HeaderOps]:
    """The request and response edits the plan gives the attempt and the delivered response, with the
    route's own ``route_edits`` on both."""
    text = vs(
        "[reviews]",
        f"- headers: {{request: {route_edits}, response: {route_edits}}}\n  route:\n{destinations}",
    )
    mesh = Mesh(load_yaml(textwrap.dedent(_HEADER_SERVICE) + text))
    plan = mesh.plan(Call(authority="reviews:9080", path="/"), body_replayable=True)
    send = plan.first()
    assert isinstance(send, Send), send
    deliver = plan.sent(Outcome(status=200))
    assert isinstance(deliver, Deliver), deliver
    mesh.close()
    return send.headers, deliver.response_headers


def _after(ops: HeaderOps, name: str) -> str | None:
    """What an adapter leaves in header ``name`` (absent before): removals, then sets, then adds."""
    value = ops.set.get(name)
    if name in ops.add:
        value = ops.add[name] if value is None else f"{value},{ops.add[name]}"
    return value


def test_a_lone_destinations_header_edits_follow_the_routes() -> None:
    # pilot's processDestination appends the destination's edits to the route's list: its 'set' wins, and
    # the route's removals (done first) do not undo it. Same for responses.
    edits = "{set: {x-a: dest, x-b: dest}}"
    dest = f"  - destination: {{host: reviews, subset: v1}}\n    headers: {{request: {edits}, response: {edits}}}"
    request, response = _header_edits(dest)
    for ops in (request, response):
        assert (_after(ops, "x-a"), _after(ops, "x-b")) == ("dest", "dest")


def test_the_routes_header_edits_win_over_a_weighted_destinations() -> None:
    # With weighted clusters Envoy applies the destination's edits, then the route's: the route's 'set' wins
    # and its 'remove' takes out what the destination set. Same for responses.
    edits = "{set: {x-a: dest, x-b: dest}}"
    dests = (
        f"  - destination: {{host: reviews, subset: v1}}\n    weight: 100\n"
        f"    headers: {{request: {edits}, response: {edits}}}\n"
        "  - destination: {host: reviews, subset: v2}\n    weight: 0"
    )
    request, response = _header_edits(dests)
    for ops in (request, response):
        assert (_after(ops, "x-a"), _after(ops, "x-b")) == ("route", None)


def test_a_header_both_a_weighted_destination_and_its_route_add_carries_both_values() -> None:
    # Envoy appends the weighted cluster's value, then the route's: neither replaces the other, on requests
    # and on responses alike.
    edits = "{add: {x-c: dest}}"
    dests = (
        f"  - destination: {{host: reviews, subset: v1}}\n    weight: 100\n"
        f"    headers: {{request: {edits}, response: {edits}}}\n"
        "  - destination: {host: reviews, subset: v2}\n    weight: 0"
    )
    for ops in _header_edits(dests, route_edits="{add: {x-c: route}}"):
        assert _after(ops, "x-c") == "dest,route"


@pytest.mark.parametrize(
    ("pool", "idle"),
    [
        ("{tcp: {idleTimeout: 30s}}", 30.0),  # pilot falls back on the TCP setting for HTTP clusters
        ("{tcp: {idleTimeout: 30s}, http: {idleTimeout: 5s}}", 5.0),  # the HTTP setting comes first
        ("{tcp: {idleTimeout: 0s}}", None),  # 0s: libmesh sets no idle timeout of its own
        ("{http: {maxRetries: 3}}", None),
    ],
)
def test_connection_idle_timeout_falls_back_on_the_tcp_setting(pool: str, idle: float | None) -> None:
    s = snap(dr("reviews", f"trafficPolicy: {{connectionPool: {pool}}}"))
    assert effective_policy(s.traffic_policy(REVIEWS)).pool.idle_timeout == idle


@pytest.mark.parametrize(
    ("route", "policy_timeout"),
    [
        ("", False),
        ("\n  timeout: 2s", True),
        ("\n  retries: {attempts: 2, perTryTimeout: 1s}", True),
    ],
)
def test_an_attempt_says_whether_its_timeout_is_the_meshs_or_only_the_callers(
    route: str, policy_timeout: bool
) -> None:
    """Every attempt of a call with a deadline of its own has a timeout; only a route or per-try timeout (or
    a propagated deadline) makes it the mesh's to enforce, else the caller's transport already does."""
    mesh = Mesh(
        load_yaml(
            textwrap.dedent(_HEADER_SERVICE)
            + vs("[reviews]", f"- route: [{{destination: {{host: reviews}}}}]{route}")
        )
    )
    plan = mesh.plan(
        Call(authority="reviews:9080", path="/", deadline=mesh.clock() + 30.0), body_replayable=True
    )
    send = plan.first()
    assert isinstance(send, Send), send
    assert send.timeout is not None and send.timeout <= 30.0
    assert send.policy_timeout is policy_timeout
    mesh.close()
