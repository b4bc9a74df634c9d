"""Istio's rules for the kinds libmesh validates but does not act on: Telemetry, WasmPlugin, EnvoyFilter and
ProxyConfig.

As for the security kinds, a resource must pass both istiod's webhook checks and the CRD's CEL and schema
rules, so both are here. What cannot be checked without Envoy (EnvoyFilter patch values against Envoy's
protos) is approximated: a patch value must be an object and may not name removed v2 xDS types.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ..model.envoy_filter import (
    EnvoyFilterApplyTo,
    EnvoyFilterEnvoyConfigObjectPatch,
    EnvoyFilterPatchContext,
    EnvoyFilterPatchOperation,
    EnvoyFilterSpec,
)
from ..model.extensions import EnvValueSource, WasmPluginSpec
from ..model.proxy_config import ProxyConfigSpec
from ..model.telemetry import MetricsOverridesTagOverrideOperation, ProviderRef, TelemetrySpec, Tracing
from ..resources import EnvoyFilter, ProxyConfig, Telemetry, WasmPlugin
from . import Context, Reporter, checks
from .common import key_path, regex_error, validate_port, validate_selector_labels
from .security import check_dry_run_unsupported, parse_url, validate_policy_selector, validate_policy_targets

__all__ = ["cel_syntax_error"]

# --- Telemetry ------------------------------------------------------------------------------------------

_ONE_MS = datetime.timedelta(milliseconds=1)


@checks(Telemetry)
def _telemetry(tm: Telemetry, r: Reporter, ctx: Context) -> None:
    spec: TelemetrySpec = tm.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, tm.metadata)
    validate_policy_targets(
        s, selector=("selector", spec.selector), target_ref=spec.targetRef, target_refs=spec.targetRefs
    )
    validate_policy_selector(s, "selector", spec.selector)
    if len(spec.tracing) > 1:
        s.warn("tracing", "multiple tracing is not currently supported; only the first entry is used")
    for i, tracing in enumerate(spec.tracing):
        _check_tracing(s.at(f"tracing[{i}]"), tracing)
    for i, metrics in enumerate(spec.metrics):
        at = s.at(f"metrics[{i}]")
        _check_providers(at, metrics.providers)
        interval = metrics.reporting_interval
        if interval is not None and interval < _ONE_MS:
            at.error("reportingInterval", "must be a valid duration greater than 1ms")
        for j, override in enumerate(metrics.overrides):
            o = at.at(f"overrides[{j}]")
            if override.match is not None and override.match.custom_metric == "":
                o.error("match.customMetric", "customMetric may not be empty")
            for name, tag in override.tag_overrides.items():
                t = o.at("tagOverrides").at(key_path(name))
                if name == "":
                    t.warn("", "tagOverrides name may not be empty")
                # An unset operation means UPSERT, as in Istio's webhook.
                if tag.operation in (None, MetricsOverridesTagOverrideOperation.UPSERT):
                    if not tag.value:
                        t.error("value", "value must be set when operation is UPSERT")
                elif tag.value is not None:
                    t.error("value", "value must not be set when operation is REMOVE")
    for i, logging in enumerate(spec.access_logging):
        at = s.at(f"accessLogging[{i}]")
        _check_providers(at, logging.providers)
        expression = logging.filter.expression if logging.filter is not None else None
        if expression is not None and (problem := cel_syntax_error(expression)):
            at.error("filter.expression", f"must be a valid CEL expression: {problem}")


def _check_tracing(r: Reporter, tracing: Tracing) -> None:
    if len(tracing.providers) > 1:
        r.warn("providers", "multiple providers is not currently supported; only the first one is used")
    _check_providers(r, tracing.providers)
    pct = tracing.random_sampling_percentage
    if pct is not None and not 0.0 <= pct <= 100.0:
        r.error(
            "randomSamplingPercentage", f"randomSamplingPercentage must be in range [0.0, 100.0], got {pct:g}"
        )
    for name, tag in tracing.custom_tags.items():
        at = r.at("customTags").at(key_path(name))
        if name == "":
            at.error("", "tag name may not be empty")
        if tag.literal is not None and tag.literal.value == "":
            at.error("literal.value", "literal tag value may not be empty")
        if tag.header is not None and tag.header.name == "":
            at.error("header.name", "header tag name may not be empty")
        if tag.environment is not None and tag.environment.name == "":
            at.error("environment.name", "environment tag name may not be empty")
        if tag.formatter is not None and tag.formatter.value == "":
            at.error("formatter.value", "formatter tag value may not be empty")


def _check_providers(r: Reporter, providers: Sequence[ProviderRef]) -> None:
    for k, provider in enumerate(providers):
        if provider.name == "":
            r.error(f"providers[{k}].name", "providers name may not be empty")


# --- CEL syntax (access-log filters) --------------------------------------------------------------------

_CEL_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
    | (?P<string>[rR]?[bB]?[rR]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                                  |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?[uU]?)
    | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
    | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
# Words CEL reserves; they cannot name a variable or a field.
_CEL_RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop"}
    | {"package", "namespace", "return", "var", "void", "while"}
)
_CEL_RELATIONS = frozenset({"<", "<=", ">=", ">", "==", "!=", "in"})


class _CelError(Exception):
    pass


class _CelParser:
    """A recursive-descent recogniser of CEL's grammar: it only answers whether an expression parses."""

    def __init__(self, text: str) -> None:
        self.tokens = list(self._tokenize(text))
        self.pos = 0

    @staticmethod
    def _tokenize(text: str) -> Iterator[str]:
        pos = 0
        while pos < len(text):
            m = _CEL_TOKEN.match(text, pos)
            if m is None:
                raise _CelError(f"unexpected character {text[pos]!r} at offset {pos}")
            pos = m.end()
            kind = m.lastgroup
            if kind == "space":
                continue
            token = m.group()
            if kind in ("string", "number"):
                yield "<literal>"
            elif kind == "ident":
                yield (
                    "<literal>"
                    if token in ("true", "false", "null")
                    else ("in" if token == "in" else f"#{token}")
                )
            else:
                yield token

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else "<end>"

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if expected is not None and token != expected:
            raise _CelError(f"expected {expected!r} but found {self._show(token)}")
        if token == "<end>":
            raise _CelError("unexpected end of expression")
        self.pos += 1
        return token

    @staticmethod
    def _show(token: str) -> str:
        names = {"<end>": "end of expression", "<literal>": "a literal"}
        return names.get(token) or repr(token.lstrip("#"))

    def parse(self) -> None:
        if not self.tokens:
            raise _CelError("empty expression")
        self.expr()
        if self.peek() != "<end>":
            raise _CelError(f"unexpected {self._show(self.peek())}")

    def expr(self) -> None:
        self.binary(0)
        if self.peek() == "?":
            self.take()
            self.binary(0)
            self.take(":")
            self.expr()

    _LEVELS: tuple[frozenset[str], ...] = (
        frozenset({"||"}),
        frozenset({"&&"}),
        _CEL_RELATIONS,
        frozenset({"+", "-"}),
        frozenset({"*", "/", "%"}),
    )

    def binary(self, level: int) -> None:
        if level == len(self._LEVELS):
            self.unary()
            return
        self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            self.take()
            self.binary(level + 1)

    def unary(self) -> None:
        while self.peek() in ("!", "-"):
            self.take()
        self.member()

    def member(self) -> None:
        # A plain (possibly dotted) name may be followed by "{field: value}" to build a message.
        qualified = self.primary()
        while True:
            token = self.peek()
            if token == ".":
                self.take()
                self.ident()
                if self.peek() == "(":
                    self.call_args()
                    qualified = False
            elif token == "[":
                self.take()
                self.expr()
                self.take("]")
                qualified = False
            elif token == "{" and qualified:
                self.take()
                while self.peek() != "}":
                    self.ident()
                    self.take(":")
                    self.expr()
                    if self.peek() != ",":
                        break
                    self.take()
                self.take("}")
                qualified = False
            else:
                return

    def ident(self) -> None:
        token = self.take()
        if not token.startswith("#"):
            raise _CelError(f"expected a name but found {self._show(token)}")
        if token[1:] in _CEL_RESERVED:
            raise _CelError(f"reserved word {token[1:]!r} cannot be used as a name")

    def call_args(self) -> None:
        self.take("(")
        if self.peek() != ")":
            self.expr_list(")")
        self.take(")")

    def expr_list(self, close: str, *, pairs: bool = False) -> None:
        while True:
            self.expr()
            if pairs:
                self.take(":")
                self.expr()
            if self.peek() != ",":
                return
            self.take()
            if self.peek() == close:  # a trailing comma
                return

    def primary(self) -> bool:
        """Parse a primary expression; True when it is a plain name (which may start a message literal)."""
        token = self.peek()
        if token == "<literal>":
            self.take()
        elif token == "(":
            self.take()
            self.expr()
            self.take(")")
        elif token == "[":
            self.take()
            if self.peek() != "]":
                self.expr_list("]")
            self.take("]")
        elif token == "{":
            self.take()
            if self.peek() != "}":
                self.expr_list("}", pairs=True)
            self.take("}")
        elif token == "." or token.startswith("#"):
            if token == ".":
                self.take()
            self.ident()
            if self.peek() != "(":
                return True
            self.call_args()
        else:
            raise _CelError(f"unexpected {self._show(token)}")
        return False


def cel_syntax_error(expression: str) -> str | None:
    """Why ``expression`` is not syntactically valid CEL, or ``None``. Only the syntax is checked, as Istio's
    webhook does; names and types are resolved by the proxy.

    >>> cel_syntax_error("response.code >= 400"), cel_syntax_error(")++++")
    (None, "unexpected ')'")
    """
    try:
        _CelParser(expression).parse()
    except _CelError as e:
        return str(e)
    except RecursionError:
        return "expression is nested too deeply"
    return None


# --- WasmPlugin -----------------------------------------------------------------------------------------

_WASM_SCHEMES = ("", "file", "http", "https", "oci")
_SHA256_RE = re.compile(r"[a-f0-9]{64}")
_MAX_ENV = 256
_MAX_ENV_NAME = 256
_MAX_ENV_VALUE = 2048
_MAX_PULL_SECRET = 253
_MAX_PLUGIN_NAME = 256


@checks(WasmPlugin)
def _wasm_plugin(wp: WasmPlugin, r: Reporter, ctx: Context) -> None:
    spec: WasmPluginSpec = wp.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, wp.metadata)
    validate_policy_targets(
        s, selector=("selector", spec.selector), target_ref=spec.targetRef, target_refs=spec.targetRefs
    )
    validate_policy_selector(s, "selector", spec.selector)
    if spec.url is not None and (problem := _wasm_url_error(spec.url)):
        s.error("url", problem)
    if spec.sha256:
        if len(spec.sha256) != 64:
            s.error("sha256", "sha256 field must be 64 characters long (should match ^[a-f0-9]{64}$)")
        elif not _SHA256_RE.fullmatch(spec.sha256):
            s.error("sha256", "sha256 field should match ^[a-f0-9]{64}$ (lower-case hex digits)")
    for field, value, limit in (
        ("imagePullSecret", spec.image_pull_secret, _MAX_PULL_SECRET),
        ("pluginName", spec.plugin_name, _MAX_PLUGIN_NAME),
    ):
        if value == "":
            s.error(field, f"{field} must not be empty when set")
        elif value is not None and len(value) > limit:
            s.error(field, f"{field} must be at most {limit} characters long")
    if spec.vm_config is not None:
        _check_vm_env(s.at("vmConfig"), spec)
    for i, selector in enumerate(spec.match):
        seen: set[int] = set()
        for j, port in enumerate(selector.ports):
            at = s.at(f"match[{i}].ports[{j}]")
            validate_port(at, "number", port.number)
            if port.number is not None:
                if port.number in seen:
                    at.error("number", f"Duplicate value: port {port.number} is listed twice")
                seen.add(port.number)


def _wasm_url_error(url: str) -> str | None:
    """Why a WasmPlugin ``url`` cannot be fetched, or ``None``. A URL without a scheme is taken as http."""
    if url == "":
        return "url field needs to be set"
    scheme, problem = parse_url(url, request_uri=True)
    if problem:
        # Istio retries with "http://" in front, so that "registry/image:tag" is accepted.
        scheme, problem = parse_url(f"http://{url}", request_uri=True)
        if problem is None:
            problem = parse_url(f"http://{url}")[1]
    elif (strict := parse_url(url)[1]) is not None:
        problem = strict
    if problem:
        return f"invalid url ({problem}): url must have schema one of [http, https, file, oci]"
    if scheme not in _WASM_SCHEMES:
        return f'url must have schema one of [http, https, file, oci], got unsupported scheme "{scheme}"'
    return None


def _check_vm_env(r: Reporter, spec: WasmPluginSpec) -> None:
    assert spec.vm_config is not None
    env = spec.vm_config.env
    if len(env) > _MAX_ENV:
        r.error("env", f"at most {_MAX_ENV} environment variables are allowed, found {len(env)}")
    seen: set[str] = set()
    for i, var in enumerate(env):
        at = r.at(f"env[{i}]")
        if var.name == "":
            at.error("name", "env name must not be empty")
        elif var.name is not None:
            if len(var.name) > _MAX_ENV_NAME:
                at.error("name", f"env name must be at most {_MAX_ENV_NAME} characters long")
            if var.name in seen:
                at.error("name", f'Duplicate value: env "{var.name}" is defined twice')
            seen.add(var.name)
        if var.value is not None:
            if var.value_from is EnvValueSource.HOST:
                at.error("value", "value may only be set when valueFrom is INLINE")
            if len(var.value) > _MAX_ENV_VALUE:
                at.error("value", f"env value must be at most {_MAX_ENV_VALUE} characters long")


# --- EnvoyFilter ----------------------------------------------------------------------------------------

_MAX_PROXY_VERSION = 1024
_MAX_WORKLOAD_LABELS = 256
_HCM = "envoy.filters.network.http_connection_manager"
_LISTENER_CLASS = frozenset(
    {
        EnvoyFilterApplyTo.LISTENER,
        EnvoyFilterApplyTo.FILTER_CHAIN,
        EnvoyFilterApplyTo.NETWORK_FILTER,
        EnvoyFilterApplyTo.HTTP_FILTER,
    }
)
_ROUTE_CLASS = frozenset(
    {EnvoyFilterApplyTo.ROUTE_CONFIGURATION, EnvoyFilterApplyTo.VIRTUAL_HOST, EnvoyFilterApplyTo.HTTP_ROUTE}
)
# Old Envoy filter names that still work but have canonical replacements.
_DEPRECATED_FILTER_NAMES = {
    "envoy.buffer": "envoy.filters.http.buffer",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.csrf": "envoy.filters.http.csrf",
    "envoy.http_dynamo_filter": "envoy.filters.http.dynamo",
    "envoy.ext_authz": "envoy.filters.http.ext_authz or envoy.filters.network.ext_authz",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.grpc_http1_bridge": "envoy.filters.http.grpc_http1_bridge",
    "envoy.grpc_json_transcoder": "envoy.filters.http.grpc_json_transcoder",
    "envoy.grpc_web": "envoy.filters.http.grpc_web",
    "envoy.gzip": "envoy.filters.http.gzip",
    "envoy.health_check": "envoy.filters.http.health_check",
    "envoy.ip_tagging": "envoy.filters.http.ip_tagging",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.router": "envoy.filters.http.router",
    "envoy.squash": "envoy.filters.http.squash",
    "envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
    "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
    "envoy.listener.original_src": "envoy.filters.listener.original_src",
    "envoy.listener.proxy_protocol": "envoy.filters.listener.proxy_protocol",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.client_ssl_auth": "envoy.filters.network.client_ssl_auth",
    "envoy.http_connection_manager": _HCM,
    "envoy.mongo_proxy": "envoy.filters.network.mongo_proxy",
    "envoy.ratelimit": "envoy.filters.network.ratelimit",
    "envoy.redis_proxy": "envoy.filters.network.redis_proxy",
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
}
_V2_TYPE = re.compile(r"\.v2(?:alpha\d*)?\.")


@checks(EnvoyFilter)
def _envoy_filter(ef: EnvoyFilter, r: Reporter, ctx: Context) -> None:
    spec: EnvoyFilterSpec = ef.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, ef.metadata)
    validate_policy_targets(
        s,
        selector=("workloadSelector", spec.workload_selector),
        target_refs=spec.targetRefs,
        check_allowed=False,
    )
    if spec.workload_selector is not None:
        labels = spec.workload_selector.labels
        validate_selector_labels(s, "workloadSelector.labels", labels)
        if len(labels) > _MAX_WORKLOAD_LABELS:
            s.error("workloadSelector.labels", f"at most {_MAX_WORKLOAD_LABELS} labels are allowed")
        for key, value in labels.items():
            if len(value) > 63:
                s.at("workloadSelector.labels").error(
                    key_path(key), "label value must be at most 63 characters"
                )
    for i, patch in enumerate(spec.config_patches):
        _check_config_patch(s.at(f"configPatches[{i}]"), patch)


def _check_config_patch(r: Reporter, cp: EnvoyFilterEnvoyConfigObjectPatch) -> None:
    match = cp.match
    if match is not None:
        waypoint_context = match.context is EnvoyFilterPatchContext.WAYPOINT
        if waypoint_context != (match.waypoint is not None):
            r.error(
                "match",
                "only support waypointMatch when context is WAYPOINT "
                + (
                    "(add a waypoint match)"
                    if waypoint_context
                    else "(set context: WAYPOINT or remove waypoint)"
                ),
            )
        if match.waypoint is not None and match.waypoint.port_number is not None:
            validate_port(r.at("match.waypoint"), "portNumber", match.waypoint.port_number)
        if waypoint_context:
            return  # Istio does not check waypoint patches further yet
    if cp.apply_to in (None, EnvoyFilterApplyTo.INVALID):
        r.error("applyTo", "Envoy filter: missing applyTo")
        return
    patch = cp.patch
    if patch is None:
        r.error("patch", "Envoy filter: missing patch")
        return
    if patch.operation in (None, EnvoyFilterPatchOperation.INVALID):
        r.error("patch.operation", "Envoy filter: missing patch operation")
        return
    if patch.operation is not EnvoyFilterPatchOperation.REMOVE and patch.value is None:
        r.error("patch.value", "Envoy filter: missing patch value for non-remove operation")
        return
    if match is not None and match.proxy is not None and match.proxy.proxy_version:
        version = match.proxy.proxy_version
        if len(version) > _MAX_PROXY_VERSION:
            r.warn(
                "match.proxy.proxyVersion",
                f"Envoy filter: proxyVersion match exceeds {_MAX_PROXY_VERSION} characters; ignored",
            )
        elif problem := regex_error(version):
            r.error("match.proxy.proxyVersion", f"Envoy filter: invalid regex for proxy version: {problem}")
            return
    if match is not None and not _check_match_kind(r, cp):
        return
    if patch.value is not None:
        _check_patch_value(r.at("patch.value"), patch.value)


def _check_match_kind(r: Reporter, cp: EnvoyFilterEnvoyConfigObjectPatch) -> bool:
    """Check that ``applyTo`` and the match's object type agree; False when the patch cannot be used."""
    match = cp.match
    assert match is not None
    has_object = any(x is not None for x in (match.listener, match.route_configuration, match.cluster))
    if not has_object:
        return True
    if cp.apply_to in _LISTENER_CLASS:
        if match.listener is None:
            r.error(
                "match", "Envoy filter: applyTo for listener class objects cannot have non listener match"
            )
            return False
        chain = match.listener.filter_chain
        flt = chain.filter if chain is not None else None
        if flt is None:
            return True
        at = r.at("match.listener.filterChain.filter")
        if cp.apply_to in (EnvoyFilterApplyTo.LISTENER, EnvoyFilterApplyTo.FILTER_CHAIN):
            at.warn("", f"Envoy filter: filter match has no effect when used with {cp.apply_to}")
        if not flt.name:
            at.error("name", "Envoy filter: filter match has no name to match on")
            return False
        if flt.sub_filter is not None:
            if cp.apply_to is not EnvoyFilterApplyTo.HTTP_FILTER:
                at.error(
                    "subFilter", "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only"
                )
                return False
            if flt.name not in (_HCM, "envoy.http_connection_manager"):
                at.error("subFilter", f"Envoy filter: subfilter match requires filter match with {_HCM}")
                return False
            if not flt.sub_filter.name:
                at.error("subFilter.name", "Envoy filter: subfilter match has no name to match on")
                return False
        for path, name in (
            ("name", flt.name),
            ("subFilter.name", flt.sub_filter.name if flt.sub_filter else None),
        ):
            if name in _DEPRECATED_FILTER_NAMES:
                at.warn(
                    path,
                    f'using deprecated filter name "{name}"; use "{_DEPRECATED_FILTER_NAMES[name]}" instead',
                )
    elif cp.apply_to in _ROUTE_CLASS:
        if match.route_configuration is None:
            r.error(
                "match",
                "Envoy filter: applyTo for http route class objects cannot have non route configuration "
                "match",
            )
    elif cp.apply_to is EnvoyFilterApplyTo.CLUSTER and match.cluster is None:
        r.error("match", "Envoy filter: applyTo for cluster class objects cannot have non cluster match")
    return True


def _check_patch_value(r: Reporter, value: Any) -> None:
    if not isinstance(value, dict):
        r.error("", "Envoy filter: patch value must be an object (an Envoy config fragment)")
        return
    for path, type_url in _type_urls(value, ""):
        if _V2_TYPE.search(type_url) and "envoy." in type_url:
            r.at(path).error(
                "",
                f"referenced type unknown (hint: try using the v3 XDS API): {type_url}",
            )


def _type_urls(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``@type`` string inside a patch value, with its path relative to the value."""
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "@type" and isinstance(item, str):
                yield sub, item
            else:
                yield from _type_urls(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _type_urls(item, f"{path}[{i}]")


# --- ProxyConfig ----------------------------------------------------------------------------------------

_MAX_ENV_VAR_VALUE = 2048


@checks(ProxyConfig)
def _proxy_config(pc: ProxyConfig, r: Reporter, ctx: Context) -> None:
    spec: ProxyConfigSpec = pc.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, pc.metadata)
    validate_policy_selector(s, "selector", spec.selector)
    if spec.concurrency is not None and spec.concurrency < 0:
        s.error("concurrency", "concurrency should be greater than or equal to 0 (0 means one per CPU)")
    for name, value in spec.environment_variables.items():
        if len(value) > _MAX_ENV_VAR_VALUE:
            s.at("environmentVariables").error(
                key_path(name), f"value must be at most {_MAX_ENV_VAR_VALUE} characters long"
            )
