"""Istio's routing semantics, one test per rule: hosts, match kinds, precedence, defaults, DestinationRules."""

from __future__ import annotations

import textwrap

import pytest

from libmesh.config import load_yaml
from libmesh.routing.call import Call
from libmesh.routing.decision import DEFAULT_RETRY_ON, Action
from libmesh.routing.policy import effective_policy
from libmesh.routing.snapshot import Snapshot
from libmesh.workload import Workload


def snap(yaml_text: str, workload: Workload | None = None) -> Snapshot:
    return Snapshot.compile(load_yaml(textwrap.dedent(yaml_text)), workload=workload)


def call(url_host: str = "reviews", path: str = "/", **kw: object) -> Call:
    return Call(authority=url_host, path=path, **kw)  # type: ignore[arg-type]


def vs(hosts: str, http: str, ns: str = "default", name: str = "r", extra: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: {hosts}
{extra}  http:
{textwrap.indent(textwrap.dedent(http).strip(), "  ")}
"""


ROUTE_V1 = "route: [{destination: {host: reviews, subset: v1}}]"


def subset_of(s: Snapshot, c: Call) -> str | None:
    d = s.route(c)
    assert d.action is Action.ROUTE, d
    return d.destinations[0].subset


# --- hosts -------------------------------------------------------------------------------------------------


def test_short_host_expands_in_rule_namespace() -> None:
    s = snap(vs("[reviews]", f"- {ROUTE_V1}", ns="prod"), Workload(namespace="prod"))
    d = s.route(call("reviews"))
    assert d.host == "reviews.prod.svc.cluster.local"
    assert d.virtual_service == "prod/r"
    assert d.destinations[0].host == "reviews.prod.svc.cluster.local"


def test_short_host_from_other_namespace_does_not_match_local_short_name() -> None:
    s = snap(vs("[reviews]", f"- {ROUTE_V1}", ns="prod"), Workload(namespace="default"))
    assert s.route(call("reviews")).virtual_service is None  # reviews.default..., not reviews.prod...
    assert s.route(call("reviews.prod")).virtual_service == "prod/r"
    assert s.route(call("reviews.prod.svc.cluster.local")).virtual_service == "prod/r"


def test_exact_host_beats_wildcard() -> None:
    text = vs('["*.example.com"]', "- route: [{destination: {host: wild.example.com}}]", name="wild")
    text += "---" + vs(
        "[api.example.com]", "- route: [{destination: {host: exact.example.com}}]", name="exact"
    )
    s = snap(text)
    assert s.route(call("api.example.com")).virtual_service == "default/exact"
    assert s.route(call("web.example.com")).virtual_service == "default/wild"


def test_wildcard_does_not_match_bare_domain() -> None:
    s = snap(vs('["*.foo.com"]', "- route: [{destination: {host: x.foo.com}}]"))
    assert s.route(call("foo.com")).virtual_service is None
    assert s.route(call("a.b.foo.com")).virtual_service == "default/r"


def test_most_specific_wildcard_wins() -> None:
    text = vs('["*.com"]', "- route: [{destination: {host: a.com}}]", name="broad")
    text += "---" + vs('["*.foo.com"]', "- route: [{destination: {host: b.foo.com}}]", name="narrow")
    assert snap(text).route(call("x.foo.com")).virtual_service == "default/narrow"


def test_oldest_virtual_service_wins_for_same_host() -> None:
    a = vs("[reviews]", f"- {ROUTE_V1}", name="b-newer", extra="")
    a = a.replace(
        "metadata: {name: b-newer, namespace: default}",
        "metadata: {name: b-newer, namespace: default, creationTimestamp: '2024-02-01T00:00:00Z'}",
    )
    b = vs("[reviews]", "- route: [{destination: {host: reviews, subset: v2}}]", name="a-older")
    b = b.replace(
        "metadata: {name: a-older, namespace: default}",
        "metadata: {name: a-older, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z'}",
    )
    s = snap(a + "---" + b)
    assert s.route(call()).virtual_service == "default/a-older"


# --- route order and match composition ---------------------------------------------------------------------


def test_first_matching_route_wins() -> None:
    s = snap(
        vs(
            "[reviews]",
            """
        - match: [{uri: {prefix: /api}}]
          route: [{destination: {host: reviews, subset: v2}}]
        - match: [{uri: {prefix: /api/v1}}]
          route: [{destination: {host: reviews, subset: v3}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """,
        )
    )
    assert subset_of(s, call(path="/api/v1/x")) == "v2"
    assert subset_of(s, call(path="/other")) == "v1"
    d = s.route(call(path="/api/v1/x"))
    assert (d.route_index, d.match_index) == (0, 0)


def test_match_blocks_are_ored_and_fields_anded() -> None:
    s = snap(
        vs(
            "[reviews]",
            """
        - match:
          - uri: {prefix: /a}
            headers: {x-env: {exact: prod}}
          - uri: {prefix: /b}
          route: [{destination: {host: reviews, subset: v2}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """,
        )
    )
    assert subset_of(s, call(path="/a", headers={"x-env": "prod"})) == "v2"
    assert subset_of(s, call(path="/a", headers={"x-env": "dev"})) == "v1"  # AND within a block
    assert subset_of(s, call(path="/a")) == "v1"
    assert subset_of(s, call(path="/b")) == "v2"  # OR across blocks
    assert s.route(call(path="/b")).match_index == 1


@pytest.mark.parametrize(
    ("match", "path", "hit"),
    [
        ("{exact: /x}", "/x", True),
        ("{exact: /x}", "/x/", False),
        ("{exact: /x}", "/x?q=1", True),  # the query string is not part of the path
        ("{prefix: /x}", "/xyz", True),
        ("{prefix: /x}", "/y/x", False),
        ("{regex: '/x/[0-9]+'}", "/x/12", True),
        ("{regex: '/x/[0-9]+'}", "/x/12/more", False),  # regexes match the full string
        ("{regex: '[0-9]+'}", "/x/12", False),
    ],
)
def test_uri_string_match(match: str, path: str, hit: bool) -> None:
    s = snap(vs("[reviews]", f"- match: [{{uri: {match}}}]\n  {ROUTE_V1}"))
    assert (s.route(call(path=path)).action is Action.ROUTE) is hit


def test_regex_star_in_headers_is_rejected_as_istio_does() -> None:
    from libmesh.errors import ConfigError

    with pytest.raises(ConfigError, match="regex"):
        snap(vs("[reviews]", f"- match: [{{headers: {{end-user: {{regex: '*'}}}}}}]\n  {ROUTE_V1}"))


def test_ignore_uri_case() -> None:
    s = snap(vs("[reviews]", f"- match: [{{uri: {{prefix: /API}}, ignoreUriCase: true}}]\n  {ROUTE_V1}"))
    assert s.route(call(path="/api/x")).action is Action.ROUTE
    strict = snap(vs("[reviews]", f"- match: [{{uri: {{prefix: /API}}}}]\n  {ROUTE_V1}"))
    assert strict.route(call(path="/api/x")).action is Action.NO_ROUTE


@pytest.mark.parametrize(
    ("match", "headers", "hit"),
    [
        ("{end-user: {exact: jason}}", {"end-user": "jason"}, True),
        ("{end-user: {exact: jason}}", {"end-user": "Jason"}, False),
        ("{end-user: {exact: jason}}", {}, False),
        ("{end-user: {prefix: ja}}", {"end-user": "jason"}, True),
        ("{end-user: {regex: 'j.*n'}}", {"end-user": "jason"}, True),
        ("{end-user: {regex: 'j.*'}}", {"end-user": "xjason"}, False),
        ("{end-user: {}}", {"end-user": ""}, True),  # {} means present
        ("{end-user: {}}", {}, False),
        ("{End-User: {exact: jason}}", {"end-user": "jason"}, True),  # header names are case-insensitive
    ],
)
def test_header_match(match: str, headers: dict[str, str], hit: bool) -> None:
    s = snap(vs("[reviews]", f"- match: [{{headers: {match}}}]\n  {ROUTE_V1}"))
    assert (s.route(call(headers=headers)).action is Action.ROUTE) is hit


@pytest.mark.parametrize(
    ("match", "headers", "hit"),
    [
        ("{x-canary: {exact: 'true'}}", {"x-canary": "true"}, False),
        ("{x-canary: {exact: 'true'}}", {"x-canary": "false"}, True),
        ("{x-canary: {exact: 'true'}}", {}, True),  # missing counts as "", which is not "true"
        ("{x-canary: {exact: ''}}", {}, False),  # missing counts as "", which equals ""
        ("{x-canary: {regex: '.*'}}", {}, False),  # "" matches .*, inverted
        ("{x-canary: {}}", {}, True),  # not present
        ("{x-canary: {regex: '*'}}", {}, True),  # regex "*" means present (only allowed here), inverted
        ("{x-canary: {regex: '*'}}", {"x-canary": "x"}, False),
        ("{x-canary: {}}", {"x-canary": "1"}, False),
    ],
)
def test_without_headers(match: str, headers: dict[str, str], hit: bool) -> None:
    s = snap(vs("[reviews]", f"- match: [{{withoutHeaders: {match}}}]\n  {ROUTE_V1}"))
    assert (s.route(call(headers=headers)).action is Action.ROUTE) is hit


@pytest.mark.parametrize(
    ("match", "path", "hit"),
    [
        ("{v: {exact: '2'}}", "/?v=2", True),
        ("{v: {exact: '2'}}", "/?v=3", False),
        ("{v: {exact: '2'}}", "/", False),
        ("{v: {prefix: '2'}}", "/?v=21", True),
        ("{v: {regex: '[0-9]'}}", "/?v=7&w=1", True),
        ("{v: {}}", "/?v=", True),
        ("{v: {}}", "/?w=1", False),
    ],
)
def test_query_params(match: str, path: str, hit: bool) -> None:
    s = snap(vs("[reviews]", f"- match: [{{queryParams: {match}}}]\n  {ROUTE_V1}"))
    assert (s.route(call(path=path)).action is Action.ROUTE) is hit


def test_method_authority_scheme() -> None:
    s = snap(
        vs(
            "[reviews]",
            f"""
        - match: [{{method: {{exact: POST}}, authority: {{prefix: reviews}}, scheme: {{exact: http}}}}]
          {ROUTE_V1}
    """,
        )
    )
    assert s.route(call(method="POST")).action is Action.ROUTE
    assert s.route(call(method="GET")).action is Action.NO_ROUTE


def test_port_match() -> None:
    s = snap(
        vs(
            "[reviews]",
            f"""
        - match: [{{port: 9080}}]
          {ROUTE_V1}
        - route: [{{destination: {{host: reviews, subset: v2}}}}]
    """,
        )
    )
    assert subset_of(s, call("reviews:9080")) == "v1"
    assert subset_of(s, call("reviews:8080")) == "v2"
    assert subset_of(s, call("reviews")) == "v2"  # port 80 by default


def test_source_labels_and_namespace_use_the_local_workload() -> None:
    text = vs(
        "[reviews]",
        f"""
        - match: [{{sourceLabels: {{app: productpage, version: v1}}}}]
          {ROUTE_V1}
        - match: [{{sourceNamespace: prod}}]
          route: [{{destination: {{host: reviews, subset: v3}}}}]
        - route: [{{destination: {{host: reviews, subset: v2}}}}]
    """,
        extra="  exportTo: ['*']\n",
    )
    pp = Workload(namespace="default", labels={"app": "productpage", "version": "v1", "extra": "x"})
    assert subset_of(snap(text, pp), call()) == "v1"
    other = Workload(namespace="default", labels={"app": "productpage", "version": "v2"})
    assert subset_of(snap(text, other), call()) == "v2"
    prod = Workload(namespace="prod", labels={})
    assert subset_of(snap(text, prod), call("reviews.default")) == "v3"


def test_gateway_only_routes_do_not_apply_to_the_mesh() -> None:
    text = vs("[reviews]", f"- {ROUTE_V1}", extra="  gateways: [bookinfo-gateway]\n")
    assert snap(text).route(call()).virtual_service is None
    both = vs("[reviews]", f"- {ROUTE_V1}", extra="  gateways: [bookinfo-gateway, mesh]\n")
    assert snap(both).route(call()).virtual_service == "default/r"
    match_gw = vs(
        "[reviews]",
        f"""
        - match: [{{gateways: [my-gw]}}]
          route: [{{destination: {{host: reviews, subset: v3}}}}]
        - {ROUTE_V1}
    """,
    )
    assert subset_of(snap(match_gw), call()) == "v1"


def test_export_to_limits_visibility() -> None:
    text = vs("[reviews.prod.svc.cluster.local]", f"- {ROUTE_V1}", ns="prod", extra="  exportTo: ['.']\n")
    assert snap(text, Workload(namespace="prod")).route(call("reviews")).virtual_service == "prod/r"
    assert snap(text, Workload(namespace="default")).route(call("reviews.prod")).virtual_service is None


# --- weights, defaults, no route ----------------------------------------------------------------------------


def test_weights_are_normalised_to_shares() -> None:
    s = snap(
        vs(
            "[reviews]",
            """
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 1}
          - {destination: {host: reviews, subset: v2}, weight: 3}
          - {destination: {host: reviews, subset: v3}, weight: 0}
    """,
        )
    )
    d = s.route(call())
    assert [(x.subset, x.weight) for x in d.destinations] == [("v1", 25.0), ("v2", 75.0)]
    assert d.pick(0.0).subset == "v1" and d.pick(0.24).subset == "v1" and d.pick(0.26).subset == "v2"


def test_single_destination_gets_everything() -> None:
    d = snap(vs("[reviews]", f"- {ROUTE_V1}")).route(call())
    assert d.destinations[0].weight == 100.0


def test_no_virtual_service_gives_default_route_with_istio_default_retries() -> None:
    d = snap(vs("[other]", "- route: [{destination: {host: other}}]")).route(call("reviews:9080"))
    assert d.action is Action.ROUTE and d.virtual_service is None
    assert d.destinations[0].host == "reviews.default.svc.cluster.local"
    assert d.retries is not None and d.retries.attempts == 2
    assert d.retries.retry_on == DEFAULT_RETRY_ON and not d.retries.retriable_status_codes
    assert d.timeout is None


def test_virtual_service_without_matching_route_is_no_route() -> None:
    d = snap(vs("[reviews]", f"- match: [{{uri: {{exact: /only}}}}]\n  {ROUTE_V1}")).route(call(path="/x"))
    assert d.action is Action.NO_ROUTE and d.virtual_service == "default/r" and not d.destinations


def test_retries_timeout_fault_from_route() -> None:
    d = snap(
        vs(
            "[reviews]",
            f"""
        - timeout: 1.5s
          retries: {{attempts: 3, perTryTimeout: 500ms, retryOn: '5xx,503,reset'}}
          fault:
            delay: {{fixedDelay: 7s, percentage: {{value: 100}}}}
            abort: {{httpStatus: 500, percentage: {{value: 10}}}}
          {ROUTE_V1}
    """,
        )
    ).route(call())
    assert d.timeout == 1.5
    assert d.retries is not None
    assert (d.retries.attempts, d.retries.per_try_timeout) == (3, 0.5)
    assert d.retries.retry_on == ("5xx", "reset", "retriable-status-codes")
    assert d.retries.retriable_status_codes == {503}
    assert d.fault is not None and d.fault.delay == 7 and d.fault.abort_http_status == 500
    assert d.fault.abort_fires(0.05) and not d.fault.abort_fires(0.2)


def test_empty_retries_and_zero_attempts_disable_retries() -> None:
    for retries in ("{}", "{attempts: 0}"):
        d = snap(vs("[reviews]", f"- retries: {retries}\n  {ROUTE_V1}")).route(call())
        assert d.retries is not None and d.retries.attempts == 0


def test_fault_without_percentage_never_fires() -> None:
    d = snap(vs("[reviews]", f"- fault: {{abort: {{httpStatus: 503}}}}\n  {ROUTE_V1}")).route(call())
    assert d.fault is not None and not d.fault.abort_fires(0.0)


def test_redirect_and_direct_response() -> None:
    s = snap(
        vs(
            "[reviews]",
            """
        - match: [{uri: {prefix: /old}}]
          redirect: {uri: /new, redirectCode: 302}
        - match: [{uri: {prefix: /gone}}]
          directResponse: {status: 410, body: {string: bye}}
        - match: [{uri: {prefix: /v1/}}]
          redirect: {prefixRewrite: /v2/, authority: other.example.com}
    """,
        )
    )
    d = s.route(call("reviews:9080", path="/old/x?q=1"))
    assert d.action is Action.REDIRECT and d.redirect is not None and d.redirect.status == 302
    # Envoy keeps the query string on a path redirect unless the new path has its own.
    assert d.redirect.location("http", "reviews", 9080, "/old/x?q=1") == "http://reviews:9080/new?q=1"
    d = s.route(call(path="/gone"))
    assert d.action is Action.DIRECT_RESPONSE and d.direct_response is not None
    assert (d.direct_response.status, d.direct_response.body) == (410, b"bye")
    d = s.route(call(path="/v1/items?x=1"))
    assert d.redirect is not None
    assert (
        d.redirect.location("http", "reviews", 80, "/v1/items?x=1") == "http://other.example.com/v2/items?x=1"
    )


def test_rewrite_prefix_and_regex() -> None:
    s = snap(
        vs(
            "[reviews]",
            f"""
        - match: [{{uri: {{prefix: /api/}}}}]
          rewrite: {{uri: /v2/, authority: backend}}
          {ROUTE_V1}
        - match: [{{uri: {{prefix: /re}}}}]
          rewrite: {{uriRegexRewrite: {{match: '^/re/([^/]+)/(.*)$', rewrite: '/\\2/\\1'}}}}
          {ROUTE_V1}
    """,
        )
    )
    d = s.route(call(path="/api/items?x=1"))
    assert d.rewrite is not None and d.rewrite.apply_path("/api/items?x=1") == "/v2/items?x=1"
    assert d.rewrite.authority == "backend"
    d = s.route(call(path="/re/a/b"))
    assert d.rewrite is not None and d.rewrite.apply_path("/re/a/b") == "/b/a"


def test_mirror_percentages() -> None:
    s = snap(
        vs(
            "[reviews]",
            f"""
        - match: [{{uri: {{prefix: /one}}}}]
          mirror: {{host: reviews, subset: v2}}
          mirrorPercentage: {{value: 25}}
          {ROUTE_V1}
        - mirrors:
          - destination: {{host: shadow}}
          - destination: {{host: never}}
            percentage: {{value: 0}}
          {ROUTE_V1}
    """,
        )
    )
    one = [(m.host.split(".")[0], m.subset, m.percent) for m in s.route(call(path="/one")).mirrors]
    assert one == [("reviews", "v2", 25.0)]
    many = [(m.host.split(".")[0], m.subset, m.percent) for m in s.route(call(path="/x")).mirrors]
    assert many == [("shadow", None, 100.0)]  # an explicit 0 % mirrors nothing


# --- DestinationRules ---------------------------------------------------------------------------------------


def dr(host: str, body: str, name: str = "d", ns: str = "default") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {host}
{textwrap.indent(textwrap.dedent(body).strip(), "  ")}
"""


def test_subsets_resolve_to_labels_and_subset_policy_overrides_field_by_field() -> None:
    s = snap(
        dr(
            "reviews",
            """
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          connectionPool: {http: {http2MaxRequests: 10}}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy: {loadBalancer: {simple: RANDOM}}
    """,
        )
    )
    fqdn = "reviews.default.svc.cluster.local"
    assert s.subset_labels(fqdn, "v1") == {"version": "v1"}
    p = s.traffic_policy(fqdn, "v1")
    assert p is not None and p.load_balancer is not None
    assert p.load_balancer.simple == "RANDOM"  # from the subset
    assert (
        p.connection_pool is not None and p.connection_pool.http is not None
    )  # inherited from the top level
    assert effective_policy(p).load_balancer == "RANDOM"


def test_port_level_settings_replace_the_top_level_wholesale() -> None:
    s = snap(
        dr(
            "reviews",
            """
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          outlierDetection: {consecutive5xxErrors: 3}
          portLevelSettings:
          - port: {number: 9080}
            loadBalancer: {simple: RANDOM}
    """,
        )
    )
    fqdn = "reviews.default.svc.cluster.local"
    at_port = s.traffic_policy(fqdn, None, 9080)
    assert at_port is not None and at_port.outlier_detection is None  # not inherited
    assert effective_policy(at_port).load_balancer == "RANDOM"
    other = s.traffic_policy(fqdn, None, 8080)
    assert other is not None and effective_policy(other).load_balancer == "ROUND_ROBIN"


def test_istio_defaults_least_request_and_no_outlier_detection() -> None:
    p = effective_policy(None)
    assert p.load_balancer == "LEAST_REQUEST" and p.outlier is None
    s = snap(dr("reviews", "trafficPolicy: {outlierDetection: {interval: 1s}}"))
    eff = effective_policy(s.traffic_policy("reviews.default.svc.cluster.local"))
    assert eff.load_balancer == "LEAST_REQUEST"
    assert eff.outlier is not None and eff.outlier.consecutive_5xx == 5 and eff.outlier.interval == 1.0


def test_exact_destination_rule_beats_wildcard_and_same_host_rules_merge() -> None:
    text = dr('"*.default.svc.cluster.local"', "trafficPolicy: {loadBalancer: {simple: RANDOM}}", name="wild")
    text += "---" + dr("reviews", "subsets: [{name: v1, labels: {version: v1}}]", name="a")
    text += "---" + dr(
        "reviews",
        "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\nsubsets: [{name: v2, labels: {version: v2}}]",
        name="b",
    )
    s = snap(text)
    fqdn = "reviews.default.svc.cluster.local"
    assert s.subset_labels(fqdn, "v1") == {"version": "v1"}
    assert s.subset_labels(fqdn, "v2") == {"version": "v2"}
    assert effective_policy(s.traffic_policy(fqdn)).load_balancer == "ROUND_ROBIN"
    other = s.traffic_policy("ratings.default.svc.cluster.local")
    assert effective_policy(other).load_balancer == "RANDOM"


def test_route_destinations_carry_their_policy() -> None:
    text = vs("[reviews]", "- route: [{destination: {host: reviews, subset: v2}}]")
    text += "---" + dr(
        "reviews",
        "subsets: [{name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}]",
    )
    d = snap(text).route(call())
    dest = d.destinations[0]
    assert dest.labels == {"version": "v2"} and dest.destination_rule == "default/d"
    assert effective_policy(dest.policy).load_balancer == "RANDOM"


def test_route_is_pure_and_decisions_are_shared() -> None:
    s = snap(vs("[reviews]", f"- {ROUTE_V1}"))
    assert s.route(call()) is s.route(call())
