"""VirtualService validation: Istio's webhook rules (cases after its Go test tables) and istioctl's warnings.

Each case is a ``spec`` in YAML; invalid cases name the field path and a phrase of the expected message.
"""

from __future__ import annotations

import datetime
import glob
import textwrap
from pathlib import Path

import pytest

from libmesh.config import parse_yaml
from libmesh.config.validation import Reporter
from libmesh.config.validation.common import (
    fqdn_error,
    header_value_error,
    host_matches,
    host_subset_of,
    ip_subnet_error,
    is_dns1123_label,
    is_jwt_claim_route,
    is_wildcard_dns1123_label,
    label_key_error,
    percentage_error,
    regex_error,
    validate_duration,
    validate_export_to,
    validate_header_name,
    validate_header_operation_name,
    validate_namespace_slash_hostname,
    wildcard_domain_error,
)
from libmesh.errors import ConfigIssue

ROUTE = "route: [{destination: {host: foo.baz}}]"


def _http(*routes: str, hosts: str = "foo.bar") -> str:
    """A spec with ``hosts`` and the given HTTP routes (each a YAML flow mapping)."""
    return f"hosts: [{hosts}]\nhttp: [{', '.join(routes)}]"


def _routed(fields: str, hosts: str = "foo.bar") -> str:
    """A spec with one HTTP route to foo.baz that also has ``fields``."""
    return _http("{" + fields + ", " + ROUTE + "}", hosts=hosts)


def _issues(spec: str, *, namespace: str = "default", annotations: str = "") -> tuple[ConfigIssue, ...]:
    meta = f"{{name: vs, namespace: {namespace}{', annotations: ' + annotations if annotations else ''}}}"
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {meta}\nspec:\n{textwrap.indent(textwrap.dedent(spec).strip(), '  ')}\n"
    )
    return parse_yaml(text, file="vs.yaml").issues


def _errors(spec: str, **kw: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _issues(spec, **kw) if i.is_error]


def _warnings(spec: str, **kw: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _issues(spec, **kw) if not i.is_error]


def _has(found: list[tuple[str, str]], path: str, phrase: str) -> bool:
    return any(p == path and phrase in m for p, m in found)


# --- valid VirtualServices ---------------------------------------------------------------------------------

VALID = {
    "simple": f"hosts: [foo.bar]\nhttp: [{{{ROUTE}}}]",
    "short name host": f"hosts: [reviews]\nhttp: [{{{ROUTE}}}]",
    "ip host": f"hosts: [10.1.2.3]\nhttp: [{{{ROUTE}}}]",
    "wildcard host": f"hosts: ['*.example.com']\nhttp: [{{{ROUTE}}}]",
    "wildcard for non-mesh gateway": f"hosts: ['*']\ngateways: [somegateway]\nhttp: [{{{ROUTE}}}]",
    "namespace/name gateway": f"hosts: [foo.bar]\ngateways: [ns1/gateway, mesh]\nhttp: [{{{ROUTE}}}]",
    "delegate with no hosts": f"http: [{{{ROUTE}}}]",
    "delegate with sourceNamespace": f"http: [{{match: [{{sourceNamespace: test}}], {ROUTE}}}]",
    "root with delegate": _http("{delegate: {name: test, namespace: test}}"),
    "weights over 100 are relative": """
        hosts: [foo.bar]
        http:
        - route:
          - {destination: {host: foo.baz.south}, weight: 550}
          - {destination: {host: foo.baz.east}, weight: 500}
        """,
    "one weight may be zero": """
        hosts: [foo.bar]
        tcp:
        - route:
          - {destination: {host: foo.baz.south}, weight: 100}
          - {destination: {host: foo.baz.east}}
        """,
    "single destination weight zero": "hosts: [a.b]\ntcp: [{route: [{destination: {host: a.b}, weight: 0}]}]",
    "wildcard destination hosts": """
        hosts: [foo.bar]
        tcp:
        - route:
          - {destination: {host: '*-foo.baz'}, weight: 50}
          - {destination: {host: '*foo.baz'}, weight: 50}
        """,
    "full destination": f"""
        hosts: [foo.bar]
        http:
        - route: [{{destination: {{host: foo.bar, subset: shiny, port: {{number: 5000}}}}}}]
          timeout: 1.5s
          retries: {{attempts: 3, perTryTimeout: 2s, retryOn: '5xx,gateway-error,503,reset,cancelled'}}
          mirror: {{host: shadow.svc}}
          mirrorPercentage: {{value: 0.5}}
        - {ROUTE}
        """,
    "retries disabled": _routed("retries: {attempts: 0}"),
    "simple redirect": _http("{redirect: {uri: /lerp, authority: foo.biz, redirectCode: 308}}"),
    "prefix_rewrite redirect with prefix match": """
        hosts: [foo.bar]
        http:
        - match: [{uri: {prefix: /foo}}]
          redirect: {prefixRewrite: /bar}
        - redirect: {prefixRewrite: /bar, authority: foo.example.com}
          match: [{headers: {x-foo: {exact: bar}}}]
        """,
    "redirect derivePort": _http("{redirect: {derivePort: FROM_REQUEST_PORT}}"),
    "direct response": _http("{directResponse: {status: 503, body: {string: unavailable}}}"),
    "rewrite uri and authority": _routed("rewrite: {uri: /x, authority: foobar.org}"),
    "uri regex rewrite": f"""
        hosts: [foo.bar]
        http:
        - rewrite: {{uriRegexRewrite: {{match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}}}
          {ROUTE}
        """,
    "header operations": """
        hosts: [foo.bar]
        http:
        - headers:
            request: {set: {':authority': foo, x-a: '%HOSTNAME%'}, add: {x-b: '100%%'}, remove: [x-c]}
            response: {set: {x-d: 'prefix %HOSTNAME% suffix'}, add: {name: ''}, remove: [name]}
          route:
          - destination: {host: foo.baz}
            headers: {request: {set: {host: foo}}}
        """,
    "matches": f"""
        hosts: [foo.bar]
        http:
        - match:
          - uri: {{prefix: ''}}
            headers: {{':authority': {{exact: a}}, 'funky!$#_': {{regex: 'te.*st'}}, present: {{}}}}
            withoutHeaders: {{x-never: {{regex: '*'}}, x-other: {{exact: test}}}}
            queryParams: {{q: {{prefix: test}}, r: {{exact: ''}}}}
            method: {{exact: GET}}
            port: 8080
            sourceLabels: {{app: reviews, app.kubernetes.io/version: v1}}
            ignoreUriCase: true
          {ROUTE}
        """,
    "cors policy": f"""
        hosts: [foo.bar]
        http:
        - corsPolicy:
            allowOrigins: [{{exact: exact}}, {{prefix: prefix}}, {{regex: 'https://.*\\.example\\.com'}}]
            allowMethods: [GET, POST, '*']
            allowHeaders: [header1, '*']
            exposeHeaders: [header3]
            maxAge: 24h
          {ROUTE}
        """,
    "fault injection": f"""
        hosts: [foo.bar]
        http:
        - fault:
            delay: {{fixedDelay: 3s, percentage: {{value: 0.001}}}}
            abort: {{grpcStatus: DEADLINE_EXCEEDED, percentage: {{value: 0}}}}
          {ROUTE}
        """,
    "fault abort http status": _routed("fault: {abort: {httpStatus: 200}}"),
    "mirrors": f"""
        hosts: [foo.bar]
        http:
        - mirrors:
          - {{destination: {{host: foo.baz}}, percentage: {{value: 1}}}}
          - {{destination: {{host: foo.baz}}, percentage: {{value: 50}}}}
          {ROUTE}
        """,
    "tcp route": """
        hosts: [foo.bar]
        tcp:
        - match:
          - {port: 27017, destinationSubnets: [10.0.0.0/8, 2001:db8::/32, 1.2.3.4], sourceSubnet: 10.0.0.1}
          route: [{destination: {host: mongo.backup.svc.cluster.local, port: {number: 5555}}}]
        """,
    "tls route": """
        hosts: ['*.bar.com']
        tls:
        - match: [{port: 443, sniHosts: [login.bar.com, '*.bar.com']}]
          route: [{destination: {host: login.prod.svc.cluster.local}}]
        """,
    "sni based gateway domains": """
        hosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]
        gateways: [ns1/gateway]
        tls:
        - match: [{sniHosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]}]
          route: [{destination: {host: istio.istio-system.svc.cluster.local}}]
        """,
    "exportTo": f"hosts: [foo.bar]\nexportTo: [., ns1]\nhttp: [{{{ROUTE}}}]",
    "uri prefix and exact on one route": f"""
        hosts: [foo.bar]
        http:
        - match: [{{uri: {{prefix: /}}}}, {{uri: {{exact: /}}, method: {{exact: GET}}}}]
          {ROUTE}
        """,
}


@pytest.mark.parametrize("spec", VALID.values(), ids=VALID.keys())
def test_valid_virtual_services_have_no_errors(spec: str) -> None:
    assert _errors(spec) == []


# --- invalid VirtualServices -------------------------------------------------------------------------------

INVALID = [
    # hosts
    ("bad host", f"hosts: [foo.ba!r]\nhttp: [{{{ROUTE}}}]", "spec.hosts[0]", 'label "ba!r" invalid'),
    ("ip with port", f"hosts: ['1.2.3.4:80']\nhttp: [{{{ROUTE}}}]", "spec.hosts[0]", "invalid"),
    ("numeric tld", f"hosts: [foo.123]\nhttp: [{{{ROUTE}}}]", "spec.hosts[0]", "cannot be all-numeric"),
    ("partial wildcard", f"hosts: ['foo.*.com']\nhttp: [{{{ROUTE}}}]", "spec.hosts[0]", 'label "*" invalid'),
    (
        "wildcard for mesh",
        f"hosts: ['*']\nhttp: [{{{ROUTE}}}]",
        "spec.hosts[0]",
        "wildcard host * is not allowed",
    ),
    (
        "wildcard for explicit mesh",
        f"hosts: ['*']\ngateways: [mesh, gw]\nhttp: [{{{ROUTE}}}]",
        "spec.hosts[0]",
        "bound to the mesh gateway",
    ),
    (
        "duplicate hosts",
        f"hosts: ['*.foo.bar', '*.bar']\nhttp: [{{{ROUTE}}}]",
        "spec.hosts[1]",
        "duplicate hosts in virtual service: *.foo.bar & *.bar",
    ),
    ("literal duplicate", f"hosts: [a.b, a.b]\nhttp: [{{{ROUTE}}}]", "spec.hosts[1]", "duplicate hosts"),
    ("no routes", "hosts: [foo.bar]", "spec", "http, tcp or tls must be provided"),
    # gateways
    (
        "bad gateway",
        f"hosts: [foo.bar]\ngateways: [b@dgateway]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[0]",
        "invalid",
    ),
    (
        "namespace/* gateway",
        f"hosts: [foo.bar]\ngateways: [ns1/*]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[0]",
        'invalid value for gateway name: "*"',
    ),
    (
        "*/name gateway",
        f"hosts: [foo.bar]\ngateways: ['*/gateway']\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[0]",
        'invalid value for namespace: "*"',
    ),
    (
        "empty gateway namespace",
        f"hosts: [foo.bar]\ngateways: [/gw]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[0]",
        "config namespace and gateway name cannot be empty",
    ),
    (
        "bad match gateway",
        _routed("match: [{gateways: [a/b/c]}]"),
        "spec.http[0].match[0].gateways[0]",
        "invalid value for gateway name",
    ),
    # delegates
    (
        "delegate with gateway",
        f"gateways: [test]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways",
        "delegate virtual service must have no gateways specified",
    ),
    (
        "delegate with tcp",
        "tcp: [{route: [{destination: {host: foo.baz}}]}]",
        "spec.tcp",
        "delegate virtual service must have no tcp route specified",
    ),
    (
        "delegate with tls",
        "tls: [{match: [{sniHosts: [a.b]}], route: [{destination: {host: foo.baz}}]}]",
        "spec.tls",
        "delegate virtual service must have no tls route specified",
    ),
    (
        "delegate route with delegate",
        "http: [{delegate: {name: test, namespace: test}}]",
        "spec.http[0].delegate",
        "delegate HTTP route cannot contain delegate",
    ),
    (
        "delegate route without action",
        "http: [{name: r}]",
        "spec.http[0]",
        "HTTP route, redirect or direct_response",
    ),
    (
        "root with route",
        _routed("delegate: {name: test}"),
        "spec.http[0].route",
        "root HTTP route must not specify route",
    ),
    (
        "root with redirect",
        _http("{name: r1, delegate: {name: test}, redirect: {uri: /x}}"),
        "spec.http[0].redirect",
        "root HTTP route r1 must not specify redirect",
    ),
    # route conflicts
    ("empty route", _http("{name: r}"), "spec.http[0]", "HTTP route, redirect or direct_response"),
    (
        "route and redirect",
        _routed("redirect: {uri: /lerp}"),
        "spec.http[0].redirect",
        "cannot contain both route and redirect",
    ),
    (
        "rewrite and redirect",
        _http("{redirect: {uri: /lerp}, rewrite: {uri: /x}}"),
        "spec.http[0].rewrite",
        "cannot contain both rewrite and redirect",
    ),
    (
        "fault and redirect",
        _http("{redirect: {uri: /lerp}, fault: {abort: {httpStatus: 500}}}"),
        "spec.http[0].fault",
        "cannot contain both fault and redirect",
    ),
    (
        "directResponse and redirect",
        _http("{redirect: {uri: /lerp}, directResponse: {status: 200}}"),
        "spec.http[0].directResponse",
        "cannot contain both direct_response and redirect",
    ),
    (
        "route and directResponse",
        _routed("directResponse: {status: 200}"),
        "spec.http[0].directResponse",
        "cannot contain both route and direct_response",
    ),
    (
        "rewrite and directResponse",
        _http("{directResponse: {status: 200}, rewrite: {uri: /x}}"),
        "spec.http[0].rewrite",
        "cannot contain both rewrite and direct_response",
    ),
    (
        "mirror and mirrors",
        _routed("mirror: {host: a.b}, mirrors: [{destination: {host: c.d}}]"),
        "spec.http[0].mirrors",
        "cannot contain both mirror and mirrors",
    ),
    # destinations and weights
    (
        "wildcard destination",
        _http("{route: [{destination: {host: '*'}}]}"),
        "spec.http[0].route[0].destination.host",
        "invalid destination host *",
    ),
    (
        "bad wildcard destination",
        "hosts: [foo.bar]\ntcp: [{route: [{destination: {host: 'foo.*'}}]}]",
        "spec.tcp[0].route[0].destination.host",
        "invalid",
    ),
    (
        "namespace/host destination",
        "hosts: [foo.bar]\ntcp: [{route: [{destination: {host: default/baz}}]}]",
        "spec.tcp[0].route[0].destination.host",
        "invalid",
    ),
    (
        "empty destination host",
        _http("{route: [{destination: {host: ''}}]}"),
        "spec.http[0].route[0].destination.host",
        "empty domain name not allowed",
    ),
    (
        "bad subset",
        _http("{route: [{destination: {host: a.b, subset: v1_0}}]}"),
        "spec.http[0].route[0].destination.subset",
        "subset name is invalid: v1_0",
    ),
    (
        "unnumbered port selector",
        _http("{route: [{destination: {host: a.b, port: {}}}]}"),
        "spec.http[0].route[0].destination.port.number",
        "port must be between 1-65535",
    ),
    (
        "port selector out of range",
        _http("{route: [{destination: {host: a.b, port: {number: 70000}}}]}"),
        "spec.http[0].route[0].destination.port.number",
        "port must be between 1-65535",
    ),
    (
        "negative weight",
        "hosts: [a.b]\ntcp: [{route: [{destination: {host: a}, weight: 5},"
        " {destination: {host: c}, weight: -1}]}]",
        "spec.tcp[0].route[1].weight",
        "weight must not be negative",
    ),
    (
        "all weights zero",
        _http("{route: [{destination: {host: a.b}, weight: 0}, {destination: {host: c.d}}]}"),
        "spec.http[0].route",
        "total destination weight = 0",
    ),
    (
        "bad mirror host",
        _routed("mirror: {host: 'a.*'}"),
        "spec.http[0].mirror.host",
        "invalid",
    ),
    # timeouts and retries
    ("timeout below 1ms", _routed("timeout: 500us"), "spec.http[0].timeout", "1ms"),
    (
        "timeout sub-ms precision",
        _routed("timeout: 1.0005s"),
        "spec.http[0].timeout",
        "only durations to ms precision are supported",
    ),
    ("zero timeout", _routed("timeout: 0s"), "spec.http[0].timeout", "1ms"),
    (
        "negative attempts",
        _routed("retries: {attempts: -1, perTryTimeout: 2s}"),
        "spec.http[0].retries.attempts",
        "attempts cannot be negative",
    ),
    (
        "retry policy with zero attempts",
        _routed("retries: {attempts: 0, perTryTimeout: 2s, retryOn: 5xx}"),
        "spec.http[0].retries.attempts",
        "http retry policy configured when attempts are set to 0 (disabled)",
    ),
    (
        "retryRemoteLocalities with attempts omitted",
        _routed("retries: {retryRemoteLocalities: false}"),
        "spec.http[0].retries.attempts",
        "attempts are set to 0",
    ),
    (
        "perTryTimeout sub-ms",
        _routed("retries: {attempts: 10, perTryTimeout: 2.0001s}"),
        "spec.http[0].retries.perTryTimeout",
        "ms precision",
    ),
    (
        "backoff too small",
        _routed("retries: {attempts: 10, backoff: 999ns}"),
        "spec.http[0].retries.backoff",
        "1ms",
    ),
    (
        "bad retryOn policy",
        _routed("retries: {attempts: 10, retryOn: '5xx,invalid policy'}"),
        "spec.http[0].retries.retryOn",
        '"invalid policy" is not a valid retryOn policy',
    ),
    (
        "unknown status in retryOn",
        _routed("retries: {attempts: 10, retryOn: '600,connect-failure'}"),
        "spec.http[0].retries.retryOn",
        '"600" is not a valid retryOn policy',
    ),
    (
        "unnamed status in retryOn",
        _routed("retries: {attempts: 10, retryOn: '306'}"),
        "spec.http[0].retries.retryOn",
        '"306" is not a valid retryOn policy',
    ),
    (
        "spaces in retryOn",
        _routed("retries: {attempts: 10, retryOn: '5xx, reset'}"),
        "spec.http[0].retries.retryOn",
        '" reset" is not a valid retryOn policy',
    ),
    # matches
    (
        "empty prefix header match",
        _routed("match: [{headers: {emptyprefix: {prefix: ''}}}]"),
        "spec.http[0].match[0].headers.emptyprefix.prefix",
        "prefix string match should not be empty",
    ),
    (
        "empty prefix method match",
        _routed("match: [{method: {prefix: ''}}]"),
        "spec.http[0].match[0].method.prefix",
        "prefix string match should not be empty",
    ),
    (
        "empty regex uri match",
        _routed("match: [{uri: {regex: ''}}]"),
        "spec.http[0].match[0].uri.regex",
        "regex string match should not be empty",
    ),
    (
        "empty regex scheme match",
        _routed("match: [{scheme: {regex: ''}}]"),
        "spec.http[0].match[0].scheme.regex",
        "regex string match should not be empty",
    ),
    (
        "empty regex query match",
        _routed("match: [{queryParams: {q: {regex: ''}}}]"),
        "spec.http[0].match[0].queryParams.q.regex",
        "regex string match should not be empty",
    ),
    (
        "non-RE2 uri regex",
        _routed("match: [{uri: {regex: '(?<=a)b'}}]"),
        "spec.http[0].match[0].uri.regex",
        "Istio uses RE2 syntax",
    ),
    (
        "regex too long",
        _routed(f"match: [{{authority: {{regex: '{'a' * 1025}'}}}}]"),
        "spec.http[0].match[0].authority.regex",
        "regex is too large, max length allowed is 1024",
    ),
    (
        "withoutHeaders bad regex",
        _http("{match: [{withoutHeaders: {header: {regex: '?'}}}], redirect: {uri: /}}"),
        "spec.http[0].match[0].withoutHeaders.header.regex",
        "invalid regex",
    ),
    (
        "header regex star",
        _routed("match: [{headers: {header: {regex: '*'}}}]"),
        "spec.http[0].match[0].headers.header.regex",
        "invalid regex",
    ),
    (
        "bad header name",
        _routed("match: [{headers: {'illegal\"char': {exact: a}}}]"),
        'spec.http[0].match[0].headers[illegal"char]',
        "is not a valid header name",
    ),
    (
        "double-colon header name",
        _routed("match: [{headers: {'::': {exact: a}}}]"),
        "spec.http[0].match[0].headers[::]",
        "is not a valid header name",
    ),
    (
        "match port out of range",
        _routed("match: [{port: 65536}]"),
        "spec.http[0].match[0].port",
        "port must be between 1-65535",
    ),
    (
        "bad source label key",
        _routed("match: [{sourceLabels: {'-app': a}}]"),
        "spec.http[0].match[0].sourceLabels[-app]",
        "invalid label key",
    ),
    (
        "bad source label value",
        _routed("match: [{sourceLabels: {app: 'a b'}}]"),
        "spec.http[0].match[0].sourceLabels.app",
        'invalid label value: "a b"',
    ),
    (
        "bad sourceNamespace",
        _routed("match: [{sourceNamespace: Bad_NS}]"),
        "spec.http[0].match[0].sourceNamespace",
        "sourceNamespace match Bad_NS is invalid",
    ),
    (
        "jwt claim route without gateway",
        f"""
        hosts: [foo.bar]
        gateways: [mesh]
        http: [{{match: [{{headers: {{'@request.auth.claims.foo': {{exact: bar}}}}}}], {ROUTE}}}]
        """,
        "spec.http[0].match[0].headers[@request.auth.claims.foo]",
        "JWT claim based routing (key: @request.auth.claims.foo) is only supported for gateway",
    ),
    # header operations
    (
        "empty header name request add",
        _http("{route: [{destination: {host: a.b}, headers: {request: {add: {'': v}}}}]}"),
        "spec.http[0].route[0].headers.request.add[]",
        "header name cannot be empty",
    ),
    (
        "empty header name response remove",
        _http("{route: [{destination: {host: a.b}, headers: {response: {remove: ['']}}}]}"),
        "spec.http[0].route[0].headers.response.remove[0]",
        "header name cannot be empty",
    ),
    (
        "pseudo header set",
        _routed("headers: {request: {set: {':path': /x}}}"),
        "spec.http[0].headers.request.set[:path]",
        'invalid header ":path": header cannot have ":" prefix',
    ),
    (
        "host removed",
        _routed("headers: {request: {remove: [Host]}}"),
        "spec.http[0].headers.request.remove[0]",
        'invalid header "Host": cannot set Host header',
    ),
    (
        "host in response",
        _routed("headers: {response: {set: {host: x}}}"),
        "spec.http[0].headers.response.set.host",
        "cannot set Host header",
    ),
    (
        "unescaped percent in value",
        _routed("headers: {response: {set: {name: 'abcd%oijasodifj'}}}"),
        "spec.http[0].headers.response.set.name",
        "header value configuration",
    ),
    (
        "trailing percent in value",
        _routed("headers: {response: {add: {name: '%START_TIME%%'}}}"),
        "spec.http[0].headers.response.add.name",
        "header value configuration",
    ),
    (
        "control character in value",
        f'hosts: [foo.bar]\nhttp: [{{headers: {{request: {{set: {{name: "a\\x01b"}}}}}}, {ROUTE}}}]',
        "spec.http[0].headers.request.set.name",
        "is invalid",
    ),
    (
        "authority in rewrite and header",
        _routed("headers: {request: {set: {':authority': foo}}}, rewrite: {authority: bar}"),
        "spec.http[0].headers.request.set[:authority]",
        'authority header cannot be set multiple times: have "bar", attempting to set "foo"',
    ),
    # rewrite
    (
        "rewrite uri and regex",
        f"""
        hosts: [foo.bar]
        http: [{{rewrite: {{uri: /p, uriRegexRewrite: {{match: '^/s/(.*)$', rewrite: '/\\1'}}}}, {ROUTE}}}]
        """,
        "spec.http[0].rewrite",
        "rewrite may only contain one of URI or UriRegexRewrite",
    ),
    ("empty rewrite", _routed("rewrite: {}"), "spec.http[0].rewrite", "at least one"),
    (
        "regex rewrite missing rewrite",
        _routed("rewrite: {uriRegexRewrite: {match: '^/s$'}}"),
        "spec.http[0].rewrite.uriRegexRewrite",
        "requires both Rewrite and Match",
    ),
    (
        "regex rewrite bad pattern",
        _routed("rewrite: {uriRegexRewrite: {match: '[', rewrite: '['}}"),
        "spec.http[0].rewrite.uriRegexRewrite.match",
        "invalid regex",
    ),
    # redirect
    ("empty redirect", _http("{redirect: {}}"), "spec.http[0].redirect", "must specify URI"),
    (
        "redirect code too small",
        _http("{redirect: {uri: t, redirectCode: 299}}"),
        "spec.http[0].redirect.redirectCode",
        "299 is not a valid redirect code, must be 3xx",
    ),
    (
        "redirect code too large",
        _http("{redirect: {uri: t, redirectCode: 400}}"),
        "spec.http[0].redirect.redirectCode",
        "must be 3xx",
    ),
    (
        "uri and prefixRewrite",
        _http("{redirect: {uri: /old, prefixRewrite: /new}}"),
        "spec.http[0].redirect.prefixRewrite",
        "redirect may only specify one of uri or prefix_rewrite",
    ),
    (
        "prefixRewrite with exact uri match",
        _http("{match: [{uri: {exact: /foo}}], redirect: {prefixRewrite: /bar}}"),
        "spec.http[0].redirect.prefixRewrite",
        "requires all URI matches to use prefix match type",
    ),
    (
        "prefixRewrite with regex uri match",
        _http("{match: [{uri: {regex: /foo.*}}], redirect: {prefixRewrite: /bar}}"),
        "spec.http[0].redirect.prefixRewrite",
        "requires all URI matches to use prefix match type",
    ),
    (
        "bad redirect scheme",
        _http("{redirect: {scheme: ftp}}"),
        "spec.http[0].redirect.scheme",
        'must be "http" or "https"',
    ),
    (
        "redirect port out of range",
        _http("{redirect: {port: 70000}}"),
        "spec.http[0].redirect.port",
        "port must be between 1-65535",
    ),
    # direct response
    (
        "direct response status 199",
        _http("{directResponse: {status: 199}}"),
        "spec.http[0].directResponse.status",
        "HTTP status 199 is not in range 200-599",
    ),
    (
        "direct response status 601",
        _http("{directResponse: {status: 601}}"),
        "spec.http[0].directResponse.status",
        "not in range 200-599",
    ),
    (
        "direct response body over 1MB",
        _http("{directResponse: {status: 200, body: {string: " + "a" * (2 * 1024 * 1024) + "}}}"),
        "spec.http[0].directResponse.body",
        "must be less than 1MB",
    ),
    # fault injection
    (
        "fault without abort or delay",
        _routed("fault: {}"),
        "spec.http[0].fault",
        "must have an abort and/or a delay",
    ),
    (
        "abort http status 9000",
        _routed("fault: {abort: {httpStatus: 9000, percentage: {value: 20}}}"),
        "spec.http[0].fault.abort.httpStatus",
        "HTTP status 9000 is not in range 200-599",
    ),
    (
        "abort http status 100",
        _routed("fault: {abort: {httpStatus: 100}}"),
        "spec.http[0].fault.abort.httpStatus",
        "not in range",
    ),
    (
        "abort negative percentage",
        _routed("fault: {abort: {httpStatus: 200, percentage: {value: -10}}}"),
        "spec.http[0].fault.abort.percentage",
        "percentage -10 is neither 0.0, nor in range [0.0001, 100.0]",
    ),
    (
        "abort tiny percentage",
        _routed("fault: {abort: {httpStatus: 200, percentage: {value: 0.00001}}}"),
        "spec.http[0].fault.abort.percentage",
        "nor in range [0.0001, 100.0]",
    ),
    (
        "abort bad grpc status",
        _routed("fault: {abort: {grpcStatus: BAD_STATUS}}"),
        "spec.http[0].fault.abort.grpcStatus",
        'gRPC status "BAD_STATUS" is not supported',
    ),
    (
        "abort http2 error",
        _routed("fault: {abort: {http2Error: REFUSED_STREAM}}"),
        "spec.http[0].fault.abort.http2Error",
        "HTTP/2 abort fault injection not supported yet",
    ),
    (
        "abort without type",
        _routed("fault: {abort: {percentage: {value: 10}}}"),
        "spec.http[0].fault.abort",
        "error type not set",
    ),
    (
        "delay percentage over 100",
        _routed("fault: {delay: {fixedDelay: 3s, percentage: {value: 101}}}"),
        "spec.http[0].fault.delay.percentage",
        "percentage 101 is neither",
    ),
    (
        "delay sub-ms",
        _routed("fault: {delay: {fixedDelay: 3.0005s}}"),
        "spec.http[0].fault.delay.fixedDelay",
        "ms precision",
    ),
    (
        "delay without fixedDelay",
        _routed("fault: {delay: {percentage: {value: 50}}}"),
        "spec.http[0].fault.delay",
        "fixedDelay not set",
    ),
    (
        "exponential delay",
        _routed("fault: {delay: {exponentialDelay: 1s}}"),
        "spec.http[0].fault.delay.exponentialDelay",
        "exponentialDelay not supported yet",
    ),
    # mirrors
    (
        "mirror_percent over 100",
        _routed("mirror_percent: 101, mirror: {host: a.b}"),
        "spec.http[0].mirror_percent",
        "mirror_percent must have a max value of 100",
    ),
    (
        "mirrorPercentage over 100",
        _routed("mirrorPercentage: {value: 101}"),
        "spec.http[0].mirrorPercentage",
        "max value of 100",
    ),
    (
        "negative mirrorPercentage",
        _routed("mirrorPercentage: {value: -1}"),
        "spec.http[0].mirrorPercentage",
        "min value of 0",
    ),
    (
        "mirrors percentage over 100",
        f"""
        hosts: [foo.bar]
        http:
        - mirrors:
          - {{destination: {{host: a.b}}}}
          - {{destination: {{host: a.b}}, percentage: {{value: 101}}}}
          {ROUTE}
        """,
        "spec.http[0].mirrors[1].percentage",
        "max value of 100",
    ),
    (
        "mirrors negative percentage",
        _routed("mirrors: [{destination: {host: a.b}, percentage: {value: -1}}]"),
        "spec.http[0].mirrors[0].percentage",
        "min value of 0",
    ),
    (
        "mirrors bad host",
        _routed("mirrors: [{destination: {host: '*'}}]"),
        "spec.http[0].mirrors[0].destination.host",
        "invalid destination host *",
    ),
    # CORS
    (
        "bad CORS method",
        _routed("corsPolicy: {allowMethods: [GET, PUTT]}"),
        "spec.http[0].corsPolicy.allowMethods[1]",
        '"PUTT" is not a supported HTTP method',
    ),
    (
        "empty CORS expose header",
        _routed("corsPolicy: {exposeHeaders: ['']}"),
        "spec.http[0].corsPolicy.exposeHeaders[0]",
        "header name cannot be empty",
    ),
    (
        "bad CORS allow header",
        _routed("corsPolicy: {allowHeaders: ['a b']}"),
        "spec.http[0].corsPolicy.allowHeaders[0]",
        "is not a valid header name",
    ),
    (
        "CORS maxAge sub-second",
        _routed("corsPolicy: {maxAge: 2.5s}"),
        "spec.http[0].corsPolicy.maxAge",
        "max_age duration is accurate only to seconds precision",
    ),
    (
        "CORS empty origin",
        _routed("corsPolicy: {allowOrigins: [{exact: ''}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "is not a valid match type for CORS allow origins",
    ),
    (
        "CORS origin without match type",
        _routed("corsPolicy: {allowOrigins: [{}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "is not a valid match type",
    ),
    (
        "CORS bad origin regex",
        _routed("corsPolicy: {allowOrigins: [{regex: '(a'}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0].regex",
        "invalid regex",
    ),
    # TCP and TLS
    (
        "missing tcp route",
        "hosts: [foo.bar]\ntcp: [{match: [{port: 999}]}]",
        "spec.tcp[0].route",
        "TCP route is required",
    ),
    (
        "bad tcp subnet",
        "hosts: [a.b]\ntcp: [{match: [{destinationSubnets: [10.0.0.0/33]}],"
        " route: [{destination: {host: a}}]}]",
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "10.0.0.0/33 is not a valid CIDR block",
    ),
    (
        "bad tcp source subnet",
        "hosts: [foo.bar]\ntcp: [{match: [{sourceSubnet: not-an-ip}], route: [{destination: {host: a.b}}]}]",
        "spec.tcp[0].match[0].sourceSubnet",
        "not-an-ip is not a valid IP",
    ),
    (
        "tcp port out of range",
        "hosts: [foo.bar]\ntcp: [{match: [{port: 70000}], route: [{destination: {host: a.b}}]}]",
        "spec.tcp[0].match[0].port",
        "port must be between 1-65535",
    ),
    (
        "missing tls route",
        "hosts: [foo.bar]\ntls: [{match: [{port: 999, sniHosts: [foo.bar]}]}]",
        "spec.tls[0].route",
        "TLS route is required",
    ),
    (
        "tls match list empty",
        "hosts: [foo.bar]\ntls: [{match: [], route: [{destination: {host: a.b}}]}]",
        "spec.tls[0].match",
        "TLS route must have at least one match condition",
    ),
    (
        "tls match without sni hosts",
        "hosts: [foo.bar]\ntls: [{match: [{sniHosts: []}], route: [{destination: {host: a.b}}]}]",
        "spec.tls[0].match[0].sniHosts",
        "TLS match must have at least one SNI host",
    ),
    (
        "invalid wildcard sni host",
        "hosts: [foo.bar]\ntls: [{match: [{sniHosts: ['foo.*.com']}], route: [{destination: {host: a.b}}]}]",
        "spec.tls[0].match[0].sniHosts[0]",
        "invalid",
    ),
    (
        "sni host outside hosts",
        "hosts: ['*.bar.com']\ntls: [{match: [{sniHosts: [foo.baz.com]}],"
        " route: [{destination: {host: a}}]}]",
        "spec.tls[0].match[0].sniHosts[0]",
        'SNI host "foo.baz.com" is not a compatible subset of any of the virtual service hosts: [*.bar.com]',
    ),
    (
        "bad tls subnet",
        "hosts: [a.b]\ntls: [{match: [{sniHosts: [a.b], destinationSubnets: [x]}],"
        " route: [{destination: {host: a}}]}]",
        "spec.tls[0].match[0].destinationSubnets[0]",
        "x is not a valid IP",
    ),
    # exportTo
    (
        "exportTo none",
        f"hosts: [a.b]\nexportTo: ['~']\nhttp: [{{{ROUTE}}}]",
        "spec.exportTo[0]",
        "exportTo ~ (none)",
    ),
    (
        "exportTo duplicate",
        f"hosts: [a.b]\nexportTo: [ns1, ns2, ns1]\nhttp: [{{{ROUTE}}}]",
        "spec.exportTo[2]",
        "duplicate entries in exportTo for entry ns1",
    ),
    (
        "exportTo dot and own namespace",
        f"hosts: [a.b]\nexportTo: [default, .]\nhttp: [{{{ROUTE}}}]",
        "spec.exportTo[1]",
        "duplicate entries in exportTo: . and current namespace default",
    ),
    (
        "exportTo star and others",
        f"hosts: [a.b]\nexportTo: ['*', ns1]\nhttp: [{{{ROUTE}}}]",
        "spec.exportTo",
        "cannot have both public (*) and non-public exportTo values",
    ),
    (
        "exportTo bad namespace",
        f"hosts: [a.b]\nexportTo: [ns1_]\nhttp: [{{{ROUTE}}}]",
        "spec.exportTo[0]",
        "only .,*, or a valid DNS 1123 label is allowed",
    ),
]


@pytest.mark.parametrize(("spec", "path", "phrase"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_virtual_services_are_rejected(spec: str, path: str, phrase: str) -> None:
    errors = _errors(spec)
    assert _has(errors, path, phrase), errors


def test_every_problem_is_reported_not_just_the_first() -> None:
    errors = _errors(
        """
        hosts: [foo.bar]
        http:
        - timeout: 0s
          retries: {attempts: -1}
          redirect: {uri: /x, redirectCode: 200, scheme: ftp}
        """
    )
    paths = {p for p, _ in errors}
    assert {
        "spec.http[0].timeout",
        "spec.http[0].retries.attempts",
        "spec.http[0].redirect.redirectCode",
        "spec.http[0].redirect.scheme",
    } <= paths


def test_findings_carry_the_yaml_line() -> None:
    issues = _issues(
        """
        hosts: [foo.bar]
        http:
        - route:
          - destination: {host: a.b}
            weight: -3
        """
    )
    (bad,) = [i for i in issues if i.is_error]
    assert bad.path == "spec.http[0].route[0].weight"
    assert bad.line == 9
    assert str(bad).startswith("vs.yaml:9: VirtualService default/vs: spec.http[0].route[0].weight: ")


def test_gateway_semantics_annotation_relaxes_gateway_names() -> None:
    gateway = "istio-ingress/gateway~istio-autogenerated-k8s-gateway~foo"
    spec = f"hosts: [foo.bar]\ngateways: [{gateway}]\nhttp: [{{{ROUTE}}}]"
    assert _has(_errors(spec), "spec.gateways[0]", "invalid value for gateway name")
    assert _errors(spec, annotations="{internal.istio.io/route-semantics: gateway}") == []


def test_jwt_claim_routes_are_allowed_on_gateways() -> None:
    spec = f"""
        hosts: [foo.bar]
        gateways: [ns/gw]
        http: [{{match: [{{headers: {{'@request.auth.claims[groups]': {{exact: admin}}}}}}], {ROUTE}}}]
        """
    assert _errors(spec) == []


def test_ip_sni_host_is_a_warning() -> None:
    spec = (
        "hosts: [foo.bar]\ntls: [{match: [{port: 999, sniHosts: [1.1.1.1]}],"
        " route: [{destination: {host: a}}]}]"
    )
    assert _errors(spec) == []
    assert _has(_warnings(spec), "spec.tls[0].match[0].sniHosts[0]", "goes against SNI spec")


# --- warnings ----------------------------------------------------------------------------------------------

WARNINGS = [
    (
        "rule after a catch-all",
        _http("{" + ROUTE + "}", "{match: [{uri: {prefix: /x}}], " + ROUTE + "}", hosts="a.b"),
        "spec.http[1]",
        "virtualService rule #1 not used (route without matches defined before)",
    ),
    (
        "two catch-alls",
        _http("{" + ROUTE + "}", "{name: last, " + ROUTE + "}", hosts="a.b"),
        "spec.http[1]",
        'virtualService rule "last" not used (only the last rule can have no matches)',
    ),
    (
        "duplicate match",
        f"""
        hosts: [a.b]
        http:
        - {{name: first, match: [{{uri: {{prefix: /x}}}}], {ROUTE}}}
        - {{match: [{{name: again, uri: {{prefix: /x}}}}], {ROUTE}}}
        """,
        "spec.http[1].match[0]",
        'virtualService rule #1 match "again" is not used (duplicate/overlapping match in rule "first")',
    ),
    (
        "all matches duplicated",
        f"""
        hosts: [a.b]
        http:
        - {{match: [{{uri: {{prefix: /x}}}}], {ROUTE}}}
        - {{match: [{{uri: {{prefix: /x}}}}], {ROUTE}}}
        """,
        "spec.http[1]",
        "virtualService rule #1 not used (all matches used by prior rules)",
    ),
    (
        "overlapping prefix",
        f"""
        hosts: [a.b]
        http:
        - match:
          - {{uri: {{prefix: /api/v1/product}}}}
          - {{uri: {{prefix: /api/v1/products}}, method: {{exact: GET}}}}
          {ROUTE}
        """,
        "spec.http[0].match[1]",
        "match #1 of prefix /api/v1/products is not used (duplicate/overlapping match in rule #0 of prefix "
        "/api/v1/product on #0)",
    ),
    (
        "duplicate tcp match",
        """
        hosts: [a.b]
        tcp:
        - {match: [{port: 80}], route: [{destination: {host: a.b}}]}
        - {match: [{port: 80}], route: [{destination: {host: c.d}}]}
        """,
        "spec.tcp[1].match[0]",
        "virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
    ),
    (
        "non-mesh gateway",
        f"hosts: [a.b]\ngateways: [mesh, istio-system/ingress]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[1]",
        'routes bound to gateway "istio-system/ingress" are not served by libmesh',
    ),
    (
        "non-mesh match gateway",
        _routed("match: [{gateways: [ns/gw]}]", hosts="a.b"),
        "spec.http[0].match[0].gateways[0]",
        'routes bound to gateway "ns/gw"',
    ),
    (
        "legacy gateway name",
        f"hosts: [a.b]\ngateways: [gateway.example.com]\nhttp: [{{{ROUTE}}}]",
        "spec.gateways[0]",
        'using legacy gatewayName format "gateway.example.com"; prefer the <namespace>/<name> format: '
        '"example/gateway"',
    ),
    (
        "deprecated mirror_percent",
        _routed("mirror_percent: 5, mirror: {host: c.d}", hosts="a.b"),
        "spec.http[0].mirror_percent",
        'using deprecated setting "mirrorPercent"',
    ),
    (
        "large direct response",
        f"hosts: [a.b]\nhttp: [{{directResponse: {{status: 200, body: {{string: {'a' * (101 * 1024)}}}}}}}]",
        "spec.http[0].directResponse.body",
        "large direct_responses may impact control plane performance",
    ),
    (
        "unsupported redirect code",
        "hosts: [a.b]\nhttp: [{redirect: {uri: /x, redirectCode: 304}}]",
        "spec.http[0].redirect.redirectCode",
        "use 301, 302, 303, 307 or 308",
    ),
    (
        "empty uri match",
        _routed("match: [{uri: {}}]", hosts="a.b"),
        "spec.http[0].match[0].uri",
        "empty uri match",
    ),
    (
        "ignoreUriCase with regex",
        _routed("match: [{uri: {regex: '/a.*'}, ignoreUriCase: true}]", hosts="a.b"),
        "spec.http[0].match[0].ignoreUriCase",
        "does not apply to regex uri matches",
    ),
    ("delegate", f"http: [{{{ROUTE}}}]", "spec.hosts", "delegate VirtualService"),
]


@pytest.mark.parametrize(("spec", "path", "phrase"), [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS])
def test_warnings(spec: str, path: str, phrase: str) -> None:
    assert _errors(spec) == []
    warnings = _warnings(spec)
    assert _has(warnings, path, phrase), warnings


def test_distinct_matches_and_a_final_catch_all_give_no_reachability_warning() -> None:
    spec = f"""
        hosts: [a.b]
        http:
        - {{match: [{{uri: {{prefix: /a}}}}, {{uri: {{prefix: /b}}, headers: {{x: {{exact: y}}}}}}], {ROUTE}}}
        - {{match: [{{uri: {{exact: /a}}}}], {ROUTE}}}
        - {{{ROUTE}}}
        """
    assert [w for w in _warnings(spec) if "not used" in w[1]] == []


def test_mesh_only_gateways_give_no_gateway_warning() -> None:
    assert _warnings(f"hosts: [a.b]\ngateways: [mesh]\nhttp: [{{{ROUTE}}}]") == []


# --- common helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label", "wildcard"),
    [
        ("reviews", True, True),
        ("Reviews-V1", True, True),
        ("a" * 63, True, True),
        ("a" * 64, False, False),
        ("-bad", False, False),
        ("bad-", False, False),
        ("*", False, True),
        ("*foo", False, True),
        ("*-foo", False, True),
        ("foo*", False, False),
        ("a.b", False, False),
        ("", False, False),
    ],
)
def test_dns1123_labels(name: str, label: bool, wildcard: bool) -> None:
    assert is_dns1123_label(name) is label
    assert is_wildcard_dns1123_label(name) is wildcard


@pytest.mark.parametrize(
    ("domain", "fqdn_ok", "wildcard_ok"),
    [
        ("foo.bar", True, True),
        ("istio.io.", True, True),
        ("reviews", True, True),
        ("*.foo.bar", False, True),
        ("*", False, True),
        ("foo.*.bar", False, False),
        ("foo.1", False, False),
        ("a" * 256, False, False),
        ("", False, False),
        ("foo..bar", False, False),
    ],
)
def test_domains(domain: str, fqdn_ok: bool, wildcard_ok: bool) -> None:
    assert (fqdn_error(domain) is None) is fqdn_ok
    assert (wildcard_domain_error(domain) is None) is wildcard_ok


@pytest.mark.parametrize(
    ("a", "b", "matches", "subset"),
    [
        ("foo.com", "foo.com", True, True),
        ("foo.com", "bar.com", False, False),
        ("*.com", "foo.com", True, False),
        ("foo.com", "*.com", True, True),
        ("*.foo.com", "foo.com", False, False),
        ("*", "*.com", True, False),
        ("*.com", "*", True, True),
        ("*.foo.com", "*.com", True, True),
    ],
)
def test_host_matching(a: str, b: str, matches: bool, subset: bool) -> None:
    assert host_matches(a, b) is matches
    assert host_subset_of(a, b) is subset


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("foo", True),
        ("%HOSTNAME%", True),
        ("100%%", True),
        ("prefix %HOSTNAME% suffix", True),
        ("%DOWNSTREAM_PEER_CERT_V_END(%b %d %H:%M:%S %Y %Z)%", True),
        ("%DYNAMIC_METADATA(com.test.my_filter)%", True),
        ('%REQ(["a", "b"])%', True),
        ("%START_TIME%%", False),
        ("abc%123", False),
        ('%REQ(["a" x])%', False),
        ("tab\tis fine", True),
        ("new\nline", False),
    ],
)
def test_header_values(value: str, ok: bool) -> None:
    assert (header_value_error(value) is None) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("header1", True),
        ("X-Requested-With", True),
        (":authority", True),
        ("funky!$#_", True),
        ("@request.auth.claims.sub", True),
        ("", False),
        ("::", False),
        ('illegal"char', False),
        ("@request.auth.claims", False),
    ],
)
def test_route_header_names(name: str, ok: bool) -> None:
    r = Reporter()
    validate_header_name(r, "h", name)
    assert (not r.findings) is ok


@pytest.mark.parametrize(
    ("name", "authority", "ok"),
    [
        ("x-a", False, True),
        (":authority", True, True),
        ("Host", True, True),
        (":path", True, False),
        (":authority", False, False),
        ("host", False, False),
        ("", True, False),
    ],
)
def test_header_operation_names(name: str, authority: bool, ok: bool) -> None:
    r = Reporter()
    validate_header_operation_name(r, "h", name, allow_authority=authority)
    assert (not r.findings) is ok


def test_jwt_claim_names() -> None:
    assert is_jwt_claim_route("@request.auth.claims.groups")
    assert is_jwt_claim_route("@Request.Auth.Claims[a][b]")
    assert not is_jwt_claim_route("@request.auth.claims.")
    assert not is_jwt_claim_route("@request.auth.claims[]")


@pytest.mark.parametrize(
    ("regex", "ok"),
    [("^/api/v[0-9]+/.*$", True), ("(?i)abc", True), ("(?<=a)b", False), ("a(", False), ("x" * 1025, False)],
)
def test_regexes(regex: str, ok: bool) -> None:
    assert (regex_error(regex) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.0.0.1", True),
        ("10.0.0.0/8", True),
        ("2001:db8::/32", True),
        ("::1", True),
        ("10.0.0.0/33", False),
        ("10.0.0.0/08", False),
        ("10.0.0.0/8/1", False),
        ("010.0.0.1", False),
        ("1.2.3.4:80", False),
    ],
)
def test_ip_subnets(value: str, ok: bool) -> None:
    assert (ip_subnet_error(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [(0.0, True), (0.0001, True), (100.0, True), (1e-5, False), (100.5, False)]
)
def test_percentages(value: float, ok: bool) -> None:
    assert (percentage_error(value) is None) is ok


@pytest.mark.parametrize(
    ("key", "ok"),
    [("app", True), ("app.kubernetes.io/name", True), ("a_b.c-d", True), ("-a", False), ("a/", False)],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (label_key_error(key) is None) is ok


@pytest.mark.parametrize(
    ("micros", "ok"), [(1000, True), (999, False), (0, False), (-1_000_000, False), (1_000_500, False)]
)
def test_durations(micros: int, ok: bool) -> None:
    r = Reporter()
    validate_duration(r, "d", datetime.timedelta(microseconds=micros))
    assert (not r.findings) is ok


@pytest.mark.parametrize(
    ("export_to", "service_entry", "dr_selector", "ok"),
    [
        ([], False, False, True),
        (["*"], False, False, True),
        ([".", "ns1"], False, False, True),
        (["ns1", "ns2", "ns5"], False, False, True),
        (["~"], True, False, True),
        (["~", "ns1"], False, False, False),
        ([".", "*"], False, False, False),
        (["*", "ns1"], False, False, False),
        ([".", "ns5"], False, False, False),
        (["ns1", "ns2", "ns1"], False, False, False),
        (["~", "~", "ns1"], True, False, False),
        (["ns1_"], False, False, False),
        (["~", "ns1"], True, False, False),
        (["*"], False, True, False),
        (["."], False, True, True),
        (["somens"], False, True, False),
        ([".", "somens"], False, True, False),
    ],
)
def test_export_to(export_to: list[str], service_entry: bool, dr_selector: bool, ok: bool) -> None:
    r = Reporter()
    validate_export_to(
        r, "exportTo", "ns5", export_to, service_entry=service_entry, dr_with_selector=dr_selector
    )
    assert (not r.has_errors) is ok


@pytest.mark.parametrize(
    ("host", "is_gateway", "ok"),
    [
        ("ns1/foo.com", False, True),
        ("*/foo.com", False, True),
        ("./*", False, True),
        ("~ns1/foo.com", False, True),
        ("foo.com", False, False),
        ("ns1/foo", False, False),
        ("ns1/*foo.com", False, False),
        ("Bad_ns/foo.com", False, False),
        ("foo.com", True, True),
        ("1.2.3.4", True, True),  # gateways may name an IP
        ("ns1/foo.com", True, True),
        ("~/foo.com", True, False),
    ],
)
def test_namespace_slash_hostname(host: str, is_gateway: bool, ok: bool) -> None:
    r = Reporter()
    validate_namespace_slash_hostname(r, "h", host, is_gateway=is_gateway)
    assert (not r.findings) is ok


# --- corpus ------------------------------------------------------------------------------------------------


def test_corpus_virtual_services_that_istio_accepts_load_without_errors(corpus: Path) -> None:
    folders = ("bookinfo-networking", "testdata-config", "validation-webhook-dataset", "samples-misc")
    files = [f for d in folders for f in sorted(glob.glob(str(corpus / d / "**" / "*.yaml"), recursive=True))]
    assert files
    errors = [
        str(i)
        for f in files
        for i in parse_yaml(Path(f).read_text(), file=f).issues
        if i.is_error and i.kind == "VirtualService"
    ]
    assert errors == []


def test_corpus_unreachable_rules_are_reported_like_istioctl(corpus: Path) -> None:
    text = (corpus / "analyzer-testdata" / "virtualservice_dupmatches.yaml").read_text()
    warned = {(i.name, i.path) for i in parse_yaml(text).issues if not i.is_error and "not used" in i.message}
    assert ("duplicate-match", "spec.http[1]") in warned
    assert ("duplicate-tcp-match", "spec.tcp[1]") in warned
    assert ("tls-routing", "spec.tls[1]") in warned
