"""Validation of Telemetry, WasmPlugin, EnvoyFilter and ProxyConfig (validated by libmesh, not enforced).

Cases follow Istio's webhook tests (pkg/config/validation, .../envoyfilter) and the CRDs' CEL rules. Each
table is YAML: ``spec`` is the resource's spec, ``path`` where the error must be reported and ``error`` a
fragment of its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from libmesh.config import ConfigSet, parse_yaml
from libmesh.config.validation.extensions import cel_syntax_error

from .test_validation_security import check_corpus_invalid

_API_VERSIONS = {
    "Telemetry": "telemetry.istio.io/v1",
    "WasmPlugin": "extensions.istio.io/v1alpha1",
    "EnvoyFilter": "networking.istio.io/v1alpha3",
    "ProxyConfig": "networking.istio.io/v1beta1",
}


def _parse(kind: str, spec: Any, annotations: dict[str, str] | None = None) -> ConfigSet:
    meta: dict[str, Any] = {"name": "x", "namespace": "ns"}
    if annotations:
        meta["annotations"] = annotations
    doc = {"apiVersion": _API_VERSIONS[kind], "kind": kind, "metadata": meta, "spec": spec}
    return parse_yaml(yaml.safe_dump(doc))


def _errors(kind: str, spec: Any) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _parse(kind, spec).errors]


def _warnings(kind: str, spec: Any) -> list[tuple[str, str]]:
    # Each of these kinds carries one "not yet enforced by libmesh" notice; it is not under test here.
    return [(i.path, i.message) for i in _parse(kind, spec).warnings if "not yet enforced" not in i.message]


def _cases(text: str) -> list[Any]:
    """A YAML table of cases as pytest params, each named by its ``case`` key."""
    return [pytest.param(c, id=c["case"]) for c in yaml.safe_load(text)]


def _assert_reported(errors: list[tuple[str, str]], path: str, fragment: str) -> None:
    assert any(p == path and fragment in m for p, m in errors), errors


# --- Telemetry ------------------------------------------------------------------------------------------

TELEMETRY_INVALID = _cases(
    """
- case: empty metrics provider name
  spec: {metrics: [{providers: [{name: ""}]}]}
  path: spec.metrics[0].providers[0].name
  error: providers name may not be empty
- case: empty tracing provider name
  spec: {tracing: [{providers: [{name: ""}]}]}
  path: spec.tracing[0].providers[0].name
  error: providers name may not be empty
- case: empty access log provider name
  spec: {accessLogging: [{providers: [{name: envoy}, {name: ""}]}]}
  path: spec.accessLogging[0].providers[1].name
  error: providers name may not be empty
- case: missing provider name
  spec: {metrics: [{providers: [{}]}]}
  path: spec.metrics[0].providers[0].name
  error: Required value
- case: empty custom metric
  spec: {metrics: [{overrides: [{match: {customMetric: ""}}]}]}
  path: spec.metrics[0].overrides[0].match.customMetric
  error: customMetric may not be empty
- case: upsert without value
  spec: {metrics: [{overrides: [{tagOverrides: {my-tag: {operation: UPSERT, value: ""}}}]}]}
  path: spec.metrics[0].overrides[0].tagOverrides.my-tag.value
  error: value must be set when operation is UPSERT
- case: tag override without operation or value
  spec: {metrics: [{overrides: [{tagOverrides: {foo: {}}}]}]}
  path: spec.metrics[0].overrides[0].tagOverrides.foo.value
  error: value must be set when operation is UPSERT
- case: remove with value
  spec: {metrics: [{overrides: [{tagOverrides: {foo: {operation: REMOVE, value: oops}}}]}]}
  path: spec.metrics[0].overrides[0].tagOverrides.foo.value
  error: value must not be set when operation is REMOVE
- case: reporting interval below 1ms
  spec: {metrics: [{reportingInterval: 500us}]}
  path: spec.metrics[0].reportingInterval
  error: 1ms
- case: sampling above 100
  spec: {tracing: [{randomSamplingPercentage: 101}]}
  path: spec.tracing[0].randomSamplingPercentage
  error: randomSamplingPercentage must be in range [0.0, 100.0]
- case: negative sampling
  spec: {tracing: [{randomSamplingPercentage: -1}]}
  path: spec.tracing[0].randomSamplingPercentage
  error: randomSamplingPercentage
- case: empty literal tag
  spec: {tracing: [{customTags: {clusterID: {literal: {value: ""}}}}]}
  path: spec.tracing[0].customTags.clusterID.literal.value
  error: literal tag value may not be empty
- case: empty header tag
  spec: {tracing: [{customTags: {h: {header: {name: ""}}}}]}
  path: spec.tracing[0].customTags.h.header.name
  error: header tag name may not be empty
- case: empty environment tag
  spec: {tracing: [{customTags: {e: {environment: {name: ""}}}}]}
  path: spec.tracing[0].customTags.e.environment.name
  error: environment tag name may not be empty
- case: null custom tag
  spec: {tracing: [{customTags: {clusterID: null}}]}
  path: spec.tracing[0].customTags.clusterID
  error: must be of type object
- case: invalid CEL filter
  spec: {accessLogging: [{filter: {expression: ")++++"}}]}
  path: spec.accessLogging[0].filter.expression
  error: must be a valid CEL expression
- case: targetRef and selector
  spec: {selector: {matchLabels: {app: httpbin}}, targetRef: {kind: Service, name: g}}
  path: spec.targetRef
  error: only one of targetRefs or selector can be set
- case: targetRef without name
  spec: {targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: ""}}
  path: spec.targetRef.name
  error: targetRef name must be set
- case: targetRef namespace
  spec: {targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: foo, namespace: bar}}
  path: spec.targetRef.namespace
  error: cross namespace referencing is not currently supported
- case: targetRef wrong group
  spec: {targetRef: {group: wrong-group, kind: Gateway, name: foo}}
  path: spec.targetRef
  error: targetRef must be to one of
"""
)


@pytest.mark.parametrize("case", TELEMETRY_INVALID)
def test_telemetry_errors(case: dict[str, Any]) -> None:
    _assert_reported(_errors("Telemetry", case["spec"]), case["path"], case["error"])


TELEMETRY_VALID = _cases(
    """
- {case: empty, spec: {}}
- case: good custom tag
  spec: {tracing: [{customTags: {clusterID: {environment: {name: FOO}}}}]}
- case: good tag override
  spec: {metrics: [{overrides: [{tagOverrides: {my-tag: {operation: UPSERT, value: some-cel-expression}}}]}]}
- case: tag override without operation
  spec: {metrics: [{overrides: [{tagOverrides: {request_host: {value: request.host}}}]}]}
- case: remove
  spec: {metrics: [{overrides: [{match: {metric: ALL_METRICS}, tagOverrides: {foo: {operation: REMOVE}}}]}]}
- case: several access loggings
  spec: {accessLogging: [{providers: [{name: envoy}]}, {providers: [{name: otel}, {name: stdout}]}]}
- case: filters
  spec:
    accessLogging:
    - filter: {expression: "response.code >= 400"}
    - filter: {expression: "connection.mtls && request.url_path.contains('v1beta3')"}
    - filter: {expression: response.code}
- case: sampling bounds
  spec: {tracing: [{randomSamplingPercentage: 0}, {randomSamplingPercentage: 100}]}
- case: targetRef
  spec: {targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: foo}}
"""
)


@pytest.mark.parametrize("case", TELEMETRY_VALID)
def test_telemetry_valid(case: dict[str, Any]) -> None:
    assert _errors("Telemetry", case["spec"]) == []


@pytest.mark.parametrize(
    ("spec", "path", "warning"),
    [
        ({"tracing": [{}, {}]}, "spec.tracing", "multiple tracing is not currently supported"),
        (
            {"tracing": [{"providers": [{"name": "a"}, {"name": "b"}]}]},
            "spec.tracing[0].providers",
            "multiple providers is not currently supported",
        ),
        (
            {"metrics": [{"overrides": [{"tagOverrides": {"": {"value": "x"}}}]}]},
            "spec.metrics[0].overrides[0].tagOverrides[]",
            "tagOverrides name may not be empty",
        ),
    ],
)
def test_telemetry_warnings(spec: dict[str, Any], path: str, warning: str) -> None:
    assert _errors("Telemetry", spec) == []
    assert any(p == path and warning in m for p, m in _warnings("Telemetry", spec)), _warnings(
        "Telemetry", spec
    )


@pytest.mark.parametrize(
    "expression",
    [
        "true",
        "response.code >= 400",
        "connection.mtls && request.url_path.contains('v1beta3')",
        "a ? b : c",
        "[1, 2, 3].exists(x, x > 2)",
        "{'a': 1}['a'] == 1",
        'request.headers["x-foo"] == "bar"',
        "!(a || b) && -1 < 0u",
        "size(x) % 2 == 0 || x in [1, 2,]",
        'r"raw\\d" + b"bytes" + """triple "quoted" """',
        "a.b.c(1,)",
        ".absolute.name",
        "google.protobuf.Duration{seconds: 1}",
        "0x1F + 1.5e3  // a comment",
    ],
)
def test_cel_syntax_accepts(expression: str) -> None:
    assert cel_syntax_error(expression) is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        (")++++", "unexpected ')'"),
        ("", "empty expression"),
        ("a &&", "unexpected end of expression"),
        ("(a", "expected ')'"),
        ("a b", "unexpected 'b'"),
        ("x ? y", "expected ':'"),
        ("'unterminated", "unexpected character"),
        ("a[1", "expected ']'"),
        ("{'a' 1}", "expected ':'"),
        ("foo(,)", "unexpected ','"),
        ("a = b", "unexpected character '='"),
        ("x.if", "reserved word"),
    ],
)
def test_cel_syntax_rejects(expression: str, problem: str) -> None:
    error = cel_syntax_error(expression)
    assert error is not None and problem in error


def test_cel_deep_nesting_is_reported_not_raised() -> None:
    assert cel_syntax_error("(" * 5000 + "a" + ")" * 5000) is not None


# --- WasmPlugin -----------------------------------------------------------------------------------------

WASM_INVALID = _cases(
    """
- case: empty url
  spec: {url: ""}
  path: spec.url
  error: url field needs to be set
- case: missing url
  spec: {phase: AUTHN}
  path: spec.url
  error: Required value
- case: ftp scheme
  spec: {url: "ftp://test.com/test"}
  path: spec.url
  error: url must have schema one of [http, https, file, oci]
- case: unknown scheme
  spec: {url: "fake://example.com"}
  path: spec.url
  error: unsupported scheme "fake"
- case: unparsable url
  spec: {url: "#%blah$#@"}
  path: spec.url
  error: url must have schema one of
- case: short sha
  spec: {url: "http://test.com/test", sha256: 01ba47}
  path: spec.sha256
  error: sha256 field must be 64 characters long
- case: sha with an upper-case digit
  spec:
    url: "http://test.com/test"
    sha256: 01Ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b
  path: spec.sha256
  error: should match ^[a-f0-9]{64}$
- case: empty image pull secret
  spec: {url: "http://test", imagePullSecret: ""}
  path: spec.imagePullSecret
  error: must not be empty
- case: empty plugin name
  spec: {url: "http://test", pluginName: ""}
  path: spec.pluginName
  error: must not be empty
- case: empty env name
  spec: {url: test.com/test, vmConfig: {env: [{name: "", valueFrom: HOST}]}}
  path: spec.vmConfig.env[0].name
  error: env name must not be empty
- case: duplicate env
  spec: {url: test.com/test, vmConfig: {env: [{name: ENV1, value: VAL1}, {name: ENV1, value: VAL1}]}}
  path: spec.vmConfig.env[1].name
  error: Duplicate value
- case: host env with value
  spec: {url: "http://test", vmConfig: {env: [{name: test, valueFrom: HOST, value: value}]}}
  path: spec.vmConfig.env[0].value
  error: value may only be set when valueFrom is INLINE
- case: port 0
  spec: {url: "http://test", match: [{ports: [{number: 0}]}]}
  path: spec.match[0].ports[0].number
  error: port must be between 1-65535
- case: port too high
  spec: {url: "http://test", match: [{mode: SERVER, ports: [{number: 65536}]}]}
  path: spec.match[0].ports[0].number
  error: port must be between 1-65535
- case: duplicate port
  spec: {url: "http://test", match: [{ports: [{number: 80}, {number: 80}]}]}
  path: spec.match[0].ports[1].number
  error: Duplicate value
- case: missing port number
  spec: {url: "http://test", match: [{ports: [{}]}]}
  path: spec.match[0].ports[0].number
  error: Required value
- case: targetRef namespace
  spec: {url: "http://test", targetRef: {kind: Service, name: foo, namespace: bar}}
  path: spec.targetRef.namespace
  error: cross namespace referencing is not currently supported
- case: targetRef wrong kind
  spec: {url: "http://test", targetRef: {group: gateway.networking.k8s.io, kind: wrong-kind, name: foo}}
  path: spec.targetRef
  error: targetRef must be to one of
- case: targetRef and selector
  spec: {url: "http://test", selector: {matchLabels: {app: a}}, targetRef: {kind: Service, name: foo}}
  path: spec.targetRef
  error: only one of targetRefs or selector can be set
- case: wildcard label value
  spec: {url: "http://test", selector: {matchLabels: {istio: bar*}}}
  path: spec.selector.matchLabels.istio
  error: wildcard not allowed in label value match
"""
)


@pytest.mark.parametrize("case", WASM_INVALID)
def test_wasm_plugin_errors(case: dict[str, Any]) -> None:
    _assert_reported(_errors("WasmPlugin", case["spec"]), case["path"], case["error"])


WASM_VALID = _cases(
    """
- {case: http, spec: {url: "http://test.com/test"}}
- case: http with sha
  spec:
    url: "http://test.com/test"
    sha256: 01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b
- {case: oci, spec: {url: "oci://test.com/test"}}
- {case: no scheme, spec: {url: test.com/test}}
- {case: image with tag, spec: {url: "ghcr.io/org/plugin:1.0"}}
- {case: file, spec: {url: "file:///opt/filters/openid.wasm", sha256: ""}}
- case: env
  spec:
    url: "http://test"
    vmConfig: {env: [{name: a, valueFrom: HOST}, {name: b, valueFrom: INLINE, value: x}, {name: c, value: y}]}
- case: targetRef to a service
  spec: {url: "http://test.com/test", targetRef: {group: "", kind: Service, name: foo}}
- case: ports
  spec: {url: "http://test", match: [{ports: [{number: 80}, {number: 443}]}, {ports: [{number: 80}]}]}
"""
)


@pytest.mark.parametrize("case", WASM_VALID)
def test_wasm_plugin_valid(case: dict[str, Any]) -> None:
    assert _errors("WasmPlugin", case["spec"]) == []


# --- EnvoyFilter ----------------------------------------------------------------------------------------

ENVOY_FILTER_INVALID = _cases(
    r"""
- case: missing applyTo
  spec: {configPatches: [{patch: {operation: ADD, value: {name: x}}}]}
  path: spec.configPatches[0].applyTo
  error: "Envoy filter: missing applyTo"
- case: applyTo INVALID
  spec: {configPatches: [{applyTo: INVALID, patch: {operation: ADD, value: {name: x}}}]}
  path: spec.configPatches[0].applyTo
  error: "Envoy filter: missing applyTo"
- case: missing patch
  spec: {configPatches: [{applyTo: LISTENER}]}
  path: spec.configPatches[0].patch
  error: "Envoy filter: missing patch"
- case: missing patch operation
  spec: {configPatches: [{applyTo: LISTENER, patch: {}}]}
  path: spec.configPatches[0].patch.operation
  error: "Envoy filter: missing patch operation"
- case: missing patch value
  spec: {configPatches: [{applyTo: LISTENER, patch: {operation: ADD}}]}
  path: spec.configPatches[0].patch.value
  error: missing patch value for non-remove operation
- case: proxy version regex
  spec:
    configPatches:
    - {applyTo: LISTENER, match: {proxy: {proxyVersion: "%#@~++==`24c234`"}}, patch: {operation: REMOVE}}
  path: spec.configPatches[0].match.proxy.proxyVersion
  error: invalid regex for proxy version
- case: listener with a cluster match
  spec: {configPatches: [{applyTo: LISTENER, match: {cluster: {}}, patch: {operation: REMOVE}}]}
  path: spec.configPatches[0].match
  error: applyTo for listener class objects cannot have non listener match
- case: filter match without name
  spec:
    configPatches:
    - applyTo: NETWORK_FILTER
      match: {listener: {filterChain: {sni: "124", filter: {}}}}
      patch: {operation: REMOVE}
  path: spec.configPatches[0].match.listener.filterChain.filter.name
  error: filter match has no name to match on
- case: sub filter with a network filter
  spec:
    configPatches:
    - applyTo: NETWORK_FILTER
      match: {listener: {filterChain: {filter: {name: random, subFilter: {}}}}}
      patch: {operation: REMOVE}
  path: spec.configPatches[0].match.listener.filterChain.filter.subFilter
  error: subfilter match can be used with applyTo HTTP_FILTER only
- case: sub filter outside the HTTP connection manager
  spec:
    configPatches:
    - applyTo: HTTP_FILTER
      match: {listener: {filterChain: {filter: {name: random, subFilter: {}}}}}
      patch: {operation: REMOVE}
  path: spec.configPatches[0].match.listener.filterChain.filter.subFilter
  error: subfilter match requires filter match with envoy.filters.network.http_connection_manager
- case: sub filter without name
  spec:
    configPatches:
    - applyTo: HTTP_FILTER
      match:
        listener:
          filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {}}}
      patch: {operation: REMOVE}
  path: spec.configPatches[0].match.listener.filterChain.filter.subFilter.name
  error: subfilter match has no name to match on
- case: virtual host with a cluster match
  spec: {configPatches: [{applyTo: VIRTUAL_HOST, match: {cluster: {}}, patch: {operation: REMOVE}}]}
  path: spec.configPatches[0].match
  error: applyTo for http route class objects cannot have non route configuration match
- case: cluster with a listener match
  spec: {configPatches: [{applyTo: CLUSTER, match: {listener: {}}, patch: {operation: REMOVE}}]}
  path: spec.configPatches[0].match
  error: applyTo for cluster class objects cannot have non cluster match
- case: v2 type
  spec:
    configPatches:
    - applyTo: NETWORK_FILTER
      match: {listener: {filterChain: {name: envoy.tcp_proxy}}}
      patch:
        operation: INSERT_FIRST
        value:
          typed_config: {"@type": type.googleapis.com/envoy.config.filter.network.ext_authz.v2.ExtAuthz}
  path: spec.configPatches[0].patch.value.typed_config.@type
  error: "referenced type unknown (hint: try using the v3 XDS API)"
- case: value not an object
  spec: {configPatches: [{applyTo: CLUSTER, patch: {operation: ADD, value: lua_cluster}}]}
  path: spec.configPatches[0].patch.value
  error: patch value must be an object
- case: waypoint match without waypoint context
  spec:
    configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        waypoint: {filter: {name: envoy.filters.network.http_connection_manager}}
      patch: {operation: REMOVE}
  path: spec.configPatches[0].match
  error: only support waypointMatch when context is WAYPOINT
- case: waypoint context with a listener match
  spec:
    configPatches:
    - {applyTo: HTTP_FILTER, match: {context: WAYPOINT, listener: {filterChain: {filter: {name: x}}}}}
  path: spec.configPatches[0].match
  error: only support waypointMatch when context is WAYPOINT
- case: waypoint port
  spec: {configPatches: [{applyTo: HTTP_FILTER, match: {context: WAYPOINT, waypoint: {portNumber: 65536}}}]}
  path: spec.configPatches[0].match.waypoint.portNumber
  error: port must be between 1-65535
- case: workloadSelector and targetRefs
  spec:
    workloadSelector: {labels: {app: a}}
    targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}]
  path: spec.targetRefs
  error: only one of targetRefs or workloadSelector can be set
- case: wildcard workload selector
  spec: {workloadSelector: {labels: {app: a*}}}
  path: spec.workloadSelector.labels.app
  error: wildcard is not supported in selector
- case: targetRefs namespace
  spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g, namespace: other}]}
  path: spec.targetRefs[0].namespace
  error: cross namespace referencing is not currently supported
"""
)


@pytest.mark.parametrize("case", ENVOY_FILTER_INVALID)
def test_envoy_filter_errors(case: dict[str, Any]) -> None:
    _assert_reported(_errors("EnvoyFilter", case["spec"]), case["path"], case["error"])


ENVOY_FILTER_VALID = _cases(
    r"""
- {case: empty, spec: {}}
- case: happy config
  spec:
    configPatches:
    - {applyTo: CLUSTER, match: {cluster: {}}, patch: {operation: ADD, value: {lb_policy: RING_HASH}}}
    - applyTo: NETWORK_FILTER
      match: {listener: {filterChain: {name: envoy.tcp_proxy}}}
      patch:
        operation: INSERT_BEFORE
        value:
          typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz}
- case: valid proxy version regex
  spec:
    configPatches:
    - {applyTo: LISTENER, match: {proxy: {proxyVersion: 'release-1\.2-23434'}}, patch: {operation: REMOVE}}
- case: duration in a value
  spec: {configPatches: [{applyTo: CLUSTER, patch: {operation: ADD, value: {dns_refresh_rate: 500ms}}}]}
- case: waypoint
  spec:
    configPatches:
    - applyTo: HTTP_FILTER
      match: {context: WAYPOINT, waypoint: {portNumber: 8080, filter: {name: a, subFilter: {name: b}}}}
      patch: {operation: REMOVE}
- case: targetRefs to a non-policy kind
  spec:
    targetRefs: [{group: gateway.networking.k8s.io, kind: GatewayClass, name: istio}]
    configPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]
"""
)


@pytest.mark.parametrize("case", ENVOY_FILTER_VALID)
def test_envoy_filter_valid(case: dict[str, Any]) -> None:
    assert _errors("EnvoyFilter", case["spec"]) == []


ENVOY_FILTER_WARNINGS = _cases(
    """
- case: selector without labels
  spec: {workloadSelector: {}}
  path: spec.workloadSelector.labels
  warning: workload selector specified without labels
- case: deprecated filter name
  spec:
    configPatches:
    - applyTo: HTTP_FILTER
      match: {listener: {filterChain: {filter: {name: envoy.http_connection_manager}}}}
      patch: {operation: INSERT_FIRST, value: {}}
  path: spec.configPatches[0].match.listener.filterChain.filter.name
  warning: using deprecated filter name
- case: filter match on a listener
  spec:
    configPatches:
    - {applyTo: LISTENER, match: {listener: {filterChain: {filter: {name: x}}}}, patch: {operation: REMOVE}}
  path: spec.configPatches[0].match.listener.filterChain.filter
  warning: filter match has no effect when used with LISTENER
"""
)


@pytest.mark.parametrize("case", ENVOY_FILTER_WARNINGS)
def test_envoy_filter_warnings(case: dict[str, Any]) -> None:
    assert _errors("EnvoyFilter", case["spec"]) == []
    warnings = _warnings("EnvoyFilter", case["spec"])
    assert any(p == case["path"] and case["warning"] in m for p, m in warnings), warnings


def test_envoy_filter_long_proxy_version_is_ignored_with_a_warning() -> None:
    patch = {
        "applyTo": "LISTENER",
        "match": {"proxy": {"proxyVersion": "a{100}" * 200}},
        "patch": {"operation": "REMOVE"},
    }
    spec = {"configPatches": [patch]}
    assert _errors("EnvoyFilter", spec) == []
    assert any("exceeds 1024 characters" in m for _, m in _warnings("EnvoyFilter", spec))


# --- ProxyConfig ----------------------------------------------------------------------------------------

PROXY_CONFIG_INVALID = _cases(
    """
- case: negative concurrency
  spec: {concurrency: -1}
  path: spec.concurrency
  error: should be greater than or equal to 0
- case: empty selector key
  spec: {selector: {matchLabels: {"": bar}}}
  path: spec.selector.matchLabels[]
  error: key must not be empty
- case: wildcard selector key
  spec: {selector: {matchLabels: {"a*": bar}}}
  path: spec.selector.matchLabels[a*]
  error: wildcard not allowed in label key match
"""
)


@pytest.mark.parametrize("case", PROXY_CONFIG_INVALID)
def test_proxy_config_errors(case: dict[str, Any]) -> None:
    _assert_reported(_errors("ProxyConfig", case["spec"]), case["path"], case["error"])


def test_proxy_config_environment_value_length() -> None:
    errors = _errors("ProxyConfig", {"environmentVariables": {"FOO": "x" * 2049}})
    _assert_reported(errors, "spec.environmentVariables.FOO", "at most 2048")


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"concurrency": 0},
        {"concurrency": 2, "image": {"imageType": "distroless"}, "environmentVariables": {"FOO": "bar"}},
        {"selector": {"matchLabels": {}}},
    ],
)
def test_proxy_config_valid(spec: dict[str, Any]) -> None:
    assert _errors("ProxyConfig", spec) == []


@pytest.mark.parametrize("kind", ["Telemetry", "ProxyConfig", "EnvoyFilter"])
def test_dry_run_annotation_is_only_for_authorization_policy(kind: str) -> None:
    errors = [(i.path, i.message) for i in _parse(kind, {}, {"istio.io/dry-run": "true"}).errors]
    _assert_reported(errors, "metadata.annotations[istio.io/dry-run]", "unsupported annotation")


# --- the Istio corpus -----------------------------------------------------------------------------------

_NAMES = ["telemetry", "wasm", "envoyfilter", "proxyconfig"]


@pytest.mark.parametrize("folder", ["istio-api", "istio-istio"])
@pytest.mark.parametrize("name", _NAMES)
def test_corpus_invalid(corpus: Path, folder: str, name: str) -> None:
    check_corpus_invalid(corpus / "validation-crd-testdata" / folder / f"{name}-invalid.yaml", name)


@pytest.mark.parametrize("folder", ["istio-api", "istio-istio"])
@pytest.mark.parametrize("name", _NAMES)
def test_corpus_valid(corpus: Path, folder: str, name: str) -> None:
    path = corpus / "validation-crd-testdata" / folder / f"{name}-valid.yaml"
    assert parse_yaml(path.read_text(), file=str(path)).errors == ()


def test_corpus_webhook_dataset_loads(corpus: Path) -> None:
    """The webhook test dataset's Telemetry/WasmPlugin/EnvoyFilter/ProxyConfig documents are all valid."""
    kinds = ("kind: Telemetry", "kind: WasmPlugin", "kind: EnvoyFilter", "kind: ProxyConfig")
    paths = [
        p
        for p in sorted((corpus / "validation-webhook-dataset").glob("*.yaml"))
        if any(k in p.read_text() for k in kinds)
    ]
    assert paths
    for p in paths:
        assert parse_yaml(p.read_text(), file=str(p)).errors == (), p
