"""Istio's rules for the security.istio.io kinds: PeerAuthentication, AuthorizationPolicy and
RequestAuthentication.

They combine the webhook's checks (istiod) with the CEL and schema rules of the CRDs, since the API server
rejects a resource when either says no. The helpers in ``__all__`` are public because the kinds of
:mod:`.extensions` attach to workloads the same way (:func:`validate_policy_selector`,
:func:`validate_policy_targets`), refuse the same annotation (:func:`check_dry_run_unsupported`) and take URLs
(:func:`parse_url`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..model.security import (
    AuthorizationPolicyAction,
    AuthorizationPolicySpec,
    Condition,
    JWTRule,
    Operation,
    PeerAuthenticationSpec,
    RequestAuthenticationSpec,
    Rule,
    Source,
)
from ..model.selector import PolicyTargetReference, PolicyWorkloadSelector
from ..resources import AuthorizationPolicy, ObjectMeta, PeerAuthentication, RequestAuthentication
from . import Context, Reporter, checks
from .common import ip_subnet_error, key_path, validate_duration

__all__ = ["check_dry_run_unsupported", "parse_url", "validate_policy_selector", "validate_policy_targets"]

# --- attaching a policy: selector, targetRef, targetRefs ------------------------------------------------

_MAX_LABEL_VALUE = 63
_MAX_TARGET_REFS = 16
_TARGET_GROUP_RE = re.compile(r"|[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_TARGET_KIND_RE = re.compile(r"[a-zA-Z](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
# What a policy's targetRef may name; the core group may be written "" or "core".
_ALLOWED_TARGETS = frozenset(
    {
        ("core", "Service"),
        ("networking.istio.io", "ServiceEntry"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
    }
)
_ALLOWED_TARGETS_TEXT = (
    "Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway or "
    "gateway.networking.k8s.io/GatewayClass"
)


def validate_policy_selector(r: Reporter, path: str, selector: PolicyWorkloadSelector | None) -> None:
    """Report a policy's workload ``selector`` Istio refuses: an empty label key, a ``*`` in a key or value,
    a value over 63 characters; warn when it has no labels (it then applies to the whole namespace)."""
    if selector is None:
        return
    at = r.at(f"{path}.matchLabels")
    for key, value in selector.match_labels.items():
        if key == "":
            at.error(key_path(key), "key must not be empty")
        if "*" in key:
            at.error(key_path(key), f'wildcard not allowed in label key match: "{key}"')
        if "*" in value:
            at.error(key_path(key), f'wildcard not allowed in label value match: "{value}"')
        if len(value) > _MAX_LABEL_VALUE:
            at.error(key_path(key), f"label value must be at most {_MAX_LABEL_VALUE} characters")
    if not selector.match_labels:
        r.warn(path, "workload selector specified without labels; it selects every workload in the namespace")


def _validate_target_ref(r: Reporter, ref: PolicyTargetReference, *, check_allowed: bool) -> None:
    if ref.name == "":
        r.error("name", "targetRef name must be set")
    elif ref.name is not None and len(ref.name) > 253:
        r.error("name", "targetRef name must be at most 253 characters")
    if ref.namespace:
        r.error("namespace", "cross namespace referencing is not currently supported; remove the namespace")
    well_formed = True
    group = ref.group or ""
    if len(group) > 253 or not _TARGET_GROUP_RE.fullmatch(group):
        r.error("group", f'invalid group "{group}": should match a lower-case DNS name such as "k8s.io"')
        well_formed = False
    kind = ref.kind
    if kind is not None and (len(kind) > 63 or not _TARGET_KIND_RE.fullmatch(kind)):
        r.error("kind", f'invalid kind "{kind}": should match ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$')
        well_formed = False
    if check_allowed and well_formed and kind is not None and (group or "core", kind) not in _ALLOWED_TARGETS:
        r.error("", f"targetRef must be to one of {_ALLOWED_TARGETS_TEXT}, but was {group}/{kind}")


def validate_policy_targets(
    r: Reporter,
    *,
    selector: tuple[str, Any],
    target_ref: PolicyTargetReference | None = None,
    target_refs: Sequence[PolicyTargetReference] = (),
    check_allowed: bool = True,
) -> None:
    """Report how a policy attaches: at most one of its selector, ``targetRef`` and ``targetRefs``, and each
    reference well formed (a name, no namespace, a valid group and kind; with ``check_allowed``, one of the
    kinds a policy may target).

    ``selector`` is ``(yaml_name, value)``: ``("selector", spec.selector)``, or ``("workloadSelector", ...)``
    for EnvoyFilter. Paths are relative to ``r``, which should be the spec's reporter.
    """
    selector_name, selector_value = selector
    chosen = [
        name
        for name, is_set in (
            (selector_name, selector_value is not None),
            ("targetRef", target_ref is not None),
            ("targetRefs", bool(target_refs)),
        )
        if is_set
    ]
    if len(chosen) > 1:
        r.error(
            chosen[-1],
            f"only one of targetRefs or {selector_name} can be set (found {' and '.join(chosen)})",
        )
    if target_ref is not None:
        _validate_target_ref(r.at("targetRef"), target_ref, check_allowed=check_allowed)
    if len(target_refs) > _MAX_TARGET_REFS:
        r.error("targetRefs", f"at most {_MAX_TARGET_REFS} targetRefs are allowed, found {len(target_refs)}")
    for i, ref in enumerate(target_refs):
        _validate_target_ref(r.at(f"targetRefs[{i}]"), ref, check_allowed=check_allowed)


# --- the istio.io/dry-run annotation --------------------------------------------------------------------

_DRY_RUN = "istio.io/dry-run"
# The spellings Go's strconv.ParseBool accepts, which is what istiod uses to read the annotation.
_GO_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})


def check_dry_run_unsupported(r: Reporter, metadata: ObjectMeta) -> None:
    """Report the ``istio.io/dry-run`` annotation on a kind other than AuthorizationPolicy (the only kind
    Istio can dry-run)."""
    if _DRY_RUN in metadata.annotations:
        r.at("metadata.annotations").error(
            key_path(_DRY_RUN),
            f"unsupported annotation {_DRY_RUN}; only AuthorizationPolicy supports it, please remove it",
        )


def _check_dry_run(r: Reporter, ap: AuthorizationPolicy) -> None:
    value = ap.metadata.annotations.get(_DRY_RUN)
    if value is None:
        return
    at = r.at("metadata.annotations")
    action = ap.spec.action or AuthorizationPolicyAction.ALLOW
    if action not in (AuthorizationPolicyAction.ALLOW, AuthorizationPolicyAction.DENY):
        at.error(
            key_path(_DRY_RUN),
            f"the annotation {_DRY_RUN} currently only supports action ALLOW/DENY, found action {action}",
        )
    elif value not in _GO_BOOLS:
        at.error(key_path(_DRY_RUN), f'annotation {_DRY_RUN} has invalid value "{value}": use true or false')


# --- PeerAuthentication ---------------------------------------------------------------------------------

_PORT_KEY = re.compile(r"[+-]?[0-9]+")


@checks(PeerAuthentication)
def _peer_authentication(pa: PeerAuthentication, r: Reporter, ctx: Context) -> None:
    spec: PeerAuthenticationSpec = pa.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, pa.metadata)
    validate_policy_selector(s, "selector", spec.selector)
    ports = spec.port_level_mtls
    if ports is None:
        return
    if not ports:
        s.error("portLevelMtls", "portLevelMtls should have at least 1 properties (ports) when set")
        return
    if spec.selector is None or not spec.selector.match_labels:
        s.error(
            "portLevelMtls",
            "portLevelMtls requires selector: a mesh- or namespace-wide policy cannot have port level mTLS",
        )
    at = s.at("portLevelMtls")
    for key in ports:
        if not _PORT_KEY.fullmatch(key):
            at.error(key_path(key), f'invalid port "{key}": type conversion error from string to integer')
        elif not 1 <= int(key) <= 65535:
            at.error(key_path(key), f"port must be between 1-65535 (got {key})")


# --- AuthorizationPolicy --------------------------------------------------------------------------------

_MAX_RULES = 512
_MAX_SERVICE_ACCOUNTS = 16
_MAX_SERVICE_ACCOUNT_LENGTH = 320
_MATCH_ONE = "{*}"
_MATCH_ANY = "{**}"
# A literal path-template segment: RFC 3986 pchar characters (a '%' is taken as the start of an escape).
_PATH_LITERAL = re.compile(r"[a-zA-Z0-9\-._~%!$&'()+,;:@=]+")

# Source fields in YAML order: (yaml name, attribute).
_SOURCE_FIELDS = (
    ("principals", "principals"),
    ("notPrincipals", "not_principals"),
    ("requestPrincipals", "request_principals"),
    ("notRequestPrincipals", "not_request_principals"),
    ("namespaces", "namespaces"),
    ("notNamespaces", "not_namespaces"),
    ("serviceAccounts", "service_accounts"),
    ("notServiceAccounts", "not_service_accounts"),
    ("ipBlocks", "ip_blocks"),
    ("notIpBlocks", "not_ip_blocks"),
    ("remoteIpBlocks", "remote_ip_blocks"),
    ("notRemoteIpBlocks", "not_remote_ip_blocks"),
    ("trustDomains", "trust_domains"),
    ("notTrustDomains", "not_trust_domains"),
)
_OPERATION_FIELDS = (
    ("hosts", "hosts"),
    ("notHosts", "not_hosts"),
    ("ports", "ports"),
    ("notPorts", "not_ports"),
    ("methods", "methods"),
    ("notMethods", "not_methods"),
    ("paths", "paths"),
    ("notPaths", "not_paths"),
)
# Source fields whose values are matched against the peer's identity; the CUSTOM action cannot use them.
_IDENTITY_SOURCE_FIELDS = frozenset(
    {
        "principals",
        "notPrincipals",
        "requestPrincipals",
        "notRequestPrincipals",
        "namespaces",
        "notNamespaces",
        "serviceAccounts",
        "notServiceAccounts",
        "trustDomains",
        "notTrustDomains",
    }
)
_IDENTITY_CONDITION_KEYS = frozenset(
    {"source.namespace", "source.serviceAccount", "source.trustDomain", "source.principal"}
)
# Source fields that also apply to plain TCP traffic (the rest need HTTP).
_TCP_SOURCE_FIELDS = frozenset(
    {
        "principals",
        "notPrincipals",
        "namespaces",
        "notNamespaces",
        "serviceAccounts",
        "notServiceAccounts",
        "ipBlocks",
        "notIpBlocks",
        "remoteIpBlocks",
        "notRemoteIpBlocks",
    }
)


@checks(AuthorizationPolicy)
def _authorization_policy(ap: AuthorizationPolicy, r: Reporter, ctx: Context) -> None:
    spec: AuthorizationPolicySpec = ap.spec
    s = r.at("spec")
    _check_dry_run(r, ap)
    validate_policy_targets(
        s, selector=("selector", spec.selector), target_ref=spec.targetRef, target_refs=spec.targetRefs
    )
    validate_policy_selector(s, "selector", spec.selector)
    action = spec.action or AuthorizationPolicyAction.ALLOW
    if action is AuthorizationPolicyAction.CUSTOM:
        if not spec.rules:
            s.error(
                "rules",
                "CUSTOM action without rules is meaningless as it will never be triggered; "
                "add an empty rule {} if you want it to be triggered for every request",
            )
        elif spec.provider is None or not spec.provider.name:
            s.error("provider.name", "provider.name must not be empty for the CUSTOM action")
    elif spec.provider is not None:
        s.error("provider", f"provider must not be set with a non-CUSTOM action, found {action}")
    if action is AuthorizationPolicyAction.DENY and not spec.rules:
        s.error(
            "rules",
            "DENY action without rules is meaningless as it will never be triggered; "
            "add an empty rule {} if you want it to be triggered for every request",
        )
    if len(spec.rules) > _MAX_RULES:
        s.error("rules", f"at most {_MAX_RULES} rules are allowed, found {len(spec.rules)}")
    for i, rule in enumerate(spec.rules):
        _check_rule(s.at(f"rules[{i}]"), rule, action)


def _check_rule(r: Reporter, rule: Rule, action: AuthorizationPolicyAction) -> None:
    custom = action is AuthorizationPolicyAction.CUSTOM
    from_exists = to_exists = tcp_in_from = tcp_in_to = False
    if len(rule.from_) > _MAX_RULES:
        r.error("from", f"at most {_MAX_RULES} from entries are allowed, found {len(rule.from_)}")
    for j, frm in enumerate(rule.from_):
        at = r.at(f"from[{j}]")
        if frm.source is None:
            at.error("source", "source is required in every from entry")
            continue
        from_exists = True
        tcp_in_from |= _check_source(at.at("source"), frm.source, custom)
    for j, to in enumerate(rule.to):
        at = r.at(f"to[{j}]")
        if to.operation is None:
            at.error("operation", "operation is required in every to entry")
            continue
        to_exists = True
        tcp_in_to |= _check_operation(at.at("operation"), to.operation)
    for j, cond in enumerate(rule.when):
        _check_condition(r.at(f"when[{j}]"), cond, custom)
    http_only = (from_exists and not to_exists and not tcp_in_from) or (to_exists and not tcp_in_to)
    if action is AuthorizationPolicyAction.DENY and http_only:
        r.warn(
            "",
            "this DENY rule uses only HTTP attributes, so it will deny all traffic to TCP ports under the "
            "policy's scope; it is recommended to explicitly specify the port",
        )


def _check_source(r: Reporter, src: Source, custom: bool) -> bool:
    """Check one ``from.source``; returns True when it uses a field that also applies to TCP traffic."""
    values = {name: getattr(src, attr) for name, attr in _SOURCE_FIELDS}
    used = [name for name, items in values.items() if items]
    if not used:
        r.error("", "from.source must not be empty: set at least one field")
    if (values["serviceAccounts"] or values["notServiceAccounts"]) and (
        values["principals"] or values["notPrincipals"] or values["namespaces"] or values["notNamespaces"]
    ):
        r.error("", "Cannot set serviceAccounts with namespaces or principals; use separate sources instead")
    for name in used:
        items: Sequence[str] = values[name]
        if custom and name in _IDENTITY_SOURCE_FIELDS:
            r.error(name, f"{name} is currently not supported with the CUSTOM action")
        if name in ("serviceAccounts", "notServiceAccounts"):
            _check_service_accounts(r, name, items)
        elif name in ("trustDomains", "notTrustDomains"):
            _check_wildcard_values(r, name, items, trust_domain=True)
        else:
            _check_not_empty(r, name, items)
            if name.endswith(("ipBlocks", "IpBlocks")):
                _check_ips(r, name, items)
    return any(name in _TCP_SOURCE_FIELDS for name in used)


def _check_operation(r: Reporter, op: Operation) -> bool:
    """Check one ``to.operation``; returns True when it names ports (and so also applies to TCP traffic)."""
    values = {name: getattr(op, attr) for name, attr in _OPERATION_FIELDS}
    used = [name for name, items in values.items() if items]
    if not used:
        r.error("", "to.operation must not be empty: set at least one field")
    for name in used:
        items: Sequence[str] = values[name]
        _check_not_empty(r, name, items)
        if name in ("ports", "notPorts"):
            _check_ports(r, name, items)
        elif name in ("paths", "notPaths"):
            for k, path in enumerate(items):
                if problem := _path_template_error(path):
                    r.error(f"{name}[{k}]", problem)
    return bool(values["ports"] or values["notPorts"])


def _check_not_empty(r: Reporter, name: str, items: Iterable[str]) -> bool:
    ok = True
    for k, item in enumerate(items):
        if item == "":
            r.error(f"{name}[{k}]", f"empty value not allowed, found in {name}")
            ok = False
    return ok


def _check_ips(r: Reporter, name: str, items: Iterable[str]) -> None:
    for k, item in enumerate(items):
        if item and (problem := ip_subnet_error(item)):
            r.error(f"{name}[{k}]", problem)


def _check_ports(r: Reporter, name: str, items: Iterable[str]) -> None:
    for k, item in enumerate(items):
        if item and not (item.isascii() and item.isdigit() and int(item) <= 65535):
            r.error(f"{name}[{k}]", f'bad port "{item}": must be a number in 0..65535')


def _check_service_accounts(r: Reporter, name: str, items: Sequence[str]) -> None:
    if len(items) > _MAX_SERVICE_ACCOUNTS:
        r.error(name, f"may not have more than {_MAX_SERVICE_ACCOUNTS} values, found {len(items)}")
    for k, item in enumerate(items):
        path = f"{name}[{k}]"
        if item == "":
            r.error(path, f"empty value not allowed, found in {name}")
        elif "*" in item:
            r.error(path, f"wildcard not allowed, found in {name}")
        elif len(item) > _MAX_SERVICE_ACCOUNT_LENGTH:
            r.error(path, f"value cannot exceed {_MAX_SERVICE_ACCOUNT_LENGTH} characters")
        elif item.count("/") > 1 or item.startswith("/") or item.endswith("/"):
            r.error(path, f"expected format 'serviceAccount' or 'namespace/serviceAccount', found \"{item}\"")


def _check_wildcard_values(
    r: Reporter, name: str, items: Iterable[str], *, trust_domain: bool = False
) -> None:
    for k, item in enumerate(items):
        path = f"{name}[{k}]"
        stars = item.count("*")
        if item == "":
            r.error(path, f"empty value not allowed, found in {name}")
        elif stars > 1:
            r.error(path, f'at most one wildcard is allowed, found in {name}: "{item}"')
        elif stars == 1 and not (item.startswith("*") or item.endswith("*")):
            r.error(path, f'wildcard is only allowed at the start or end, found in {name}: "{item}"')
        elif trust_domain and "/" in item:
            r.error(path, f"trust domain must not contain '/', found in {name}: \"{item}\"")


def _path_template_error(path: str) -> str | None:
    """Why ``path`` is not a usable path (with ``{*}``/``{**}`` templates), or ``None``."""
    templated = _MATCH_ONE in path or _MATCH_ANY in path
    seen_any = False
    for segment in path.strip("/").split("/"):
        if segment in (_MATCH_ONE, _MATCH_ANY):
            if seen_any:
                return f"invalid or unsupported path {path}: {{**}} must be the last operator"
            seen_any = segment == _MATCH_ANY
            continue
        if "{" in segment or "}" in segment:
            return f"invalid or unsupported path {path}: '{{' or '}}' outside a supported path template"
        if templated and not _PATH_LITERAL.fullmatch(segment):
            return f"invalid or unsupported path {path}: segment {segment!r} is not a valid path literal"
    return None


# Condition keys: exact names, then prefixes whose remainder must be ``[name]``.
_PLAIN_KEYS = frozenset(
    {
        "source.namespace",
        "source.principal",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "connection.sni",
    }
)
_IP_KEYS = frozenset({"source.ip", "remote.ip", "destination.ip"})
_MAP_KEY_PREFIXES = ("request.headers", "request.auth.claims", "experimental.envoy.filters.")
_SUPPORTED_KEYS_TEXT = (
    "request.headers[<name>], source.ip, remote.ip, source.namespace, source.serviceAccount, "
    "source.principal, source.trustDomain, request.auth.principal, request.auth.audiences, "
    "request.auth.presenter, request.auth.claims[<name>], destination.ip, destination.port, connection.sni, "
    "experimental.envoy.filters.*[<name>]"
)


def _check_condition(r: Reporter, cond: Condition, custom: bool) -> None:
    key = cond.key
    if key is None:
        return  # the decoder has already reported the missing key
    if key == "":
        r.error("key", "key must not be empty")
        return
    if not cond.values and not cond.not_values:
        r.error("", f"at least one of values or notValues must be set for key {key}")
        return
    if custom and (key in _IDENTITY_CONDITION_KEYS or key.startswith("request.auth.")):
        r.error("key", f"{key} is currently not supported with the CUSTOM action")
    problem = _key_error(key)
    if problem:
        r.error("key", problem)
        return
    for name, items in (("values", cond.values), ("notValues", cond.not_values)):
        if not _check_not_empty(r, name, items):
            continue
        if key in _IP_KEYS:
            _check_ips(r, name, items)
        elif key == "destination.port":
            _check_ports(r, name, items)
        elif key == "source.serviceAccount":
            _check_service_accounts(r, name, items)
        elif key == "source.trustDomain":
            _check_wildcard_values(r, name, items)


def _key_error(key: str) -> str | None:
    """Why ``key`` is not a condition key Istio supports, or ``None``."""
    if key in _PLAIN_KEYS or key in _IP_KEYS or key in ("source.serviceAccount", "source.trustDomain"):
        return None
    if key == "destination.port":
        return None
    for prefix in _MAP_KEY_PREFIXES:
        if key.startswith(prefix):
            open_at = key.find("[")
            if key.endswith("]") and 0 < open_at < len(key) - 2:
                return None
            return f"bad key ({key}): should have format a[b]"
    if key == "destination.namespace":
        return f"attribute {key} is replaced by the metadata.namespace"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1"
    return f"unknown attribute: {key}; supported keys are {_SUPPORTED_KEYS_TEXT}"


# --- RequestAuthentication ------------------------------------------------------------------------------

_MAX_JWT_RULES = 4096
_MAX_SPACE_DELIMITED_CLAIMS = 64
_MAX_JWKS_URI = 2048
# Istio's conservative header-name set, used for headers it writes claims into.
_CLAIM_HEADER_RE = re.compile(r"[-_A-Za-z0-9]+")
# Members each JWK key type needs, and the members that carry private material.
_JWK_REQUIRED = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x"), "oct": ("k",)}
_JWK_PRIVATE = {"RSA": ("d", "p", "q", "dp", "dq", "qi"), "EC": ("d",), "OKP": ("d",)}


@checks(RequestAuthentication)
def _request_authentication(ra: RequestAuthentication, r: Reporter, ctx: Context) -> None:
    spec: RequestAuthenticationSpec = ra.spec
    s = r.at("spec")
    check_dry_run_unsupported(r, ra.metadata)
    validate_policy_targets(
        s, selector=("selector", spec.selector), target_ref=spec.targetRef, target_refs=spec.targetRefs
    )
    validate_policy_selector(s, "selector", spec.selector)
    if len(spec.jwt_rules) > _MAX_JWT_RULES:
        s.error("jwtRules", f"at most {_MAX_JWT_RULES} jwtRules are allowed, found {len(spec.jwt_rules)}")
    for i, rule in enumerate(spec.jwt_rules):
        _check_jwt_rule(s.at(f"jwtRules[{i}]"), rule)


def _check_jwt_rule(r: Reporter, rule: JWTRule) -> None:
    if rule.issuer == "":
        r.error("issuer", "issuer must not be empty when set")
    elif not rule.issuer and not rule.jwks_uri:
        r.error("", "issuer or jwksUri must be a non-empty string")
    for k, audience in enumerate(rule.audiences):
        if audience == "":
            r.error(f"audiences[{k}]", "audience must be a non-empty string")
    if rule.jwks_uri is not None:
        if problem := _jwks_uri_error(rule.jwks_uri):
            r.error("jwksUri", problem)
        if rule.jwks is not None:
            r.error("jwks", "only one of jwks or jwksUri can be set")
    if rule.jwks:
        _check_jwks(r, rule.jwks)
    for k, header in enumerate(rule.from_headers):
        if header.name == "":
            r.error(f"fromHeaders[{k}].name", "location header name must be a non-empty string")
    for name, items, what in (
        ("fromParams", rule.from_params, "location query parameter"),
        ("fromCookies", rule.from_cookies, "cookie name"),
        ("spaceDelimitedClaims", rule.space_delimited_claims, "claim name"),
    ):
        for k, item in enumerate(items):
            if item == "":
                r.error(f"{name}[{k}]", f"{what} must be a non-empty string")
    if len(rule.space_delimited_claims) > _MAX_SPACE_DELIMITED_CLAIMS:
        r.error("spaceDelimitedClaims", f"at most {_MAX_SPACE_DELIMITED_CLAIMS} claims are allowed")
    for k, pair in enumerate(rule.output_claim_to_headers):
        at = r.at(f"outputClaimToHeaders[{k}]")
        if pair.claim == "":
            at.error("claim", "outputClaimToHeaders claim must be a non-empty string")
        if pair.header == "":
            at.error("header", "outputClaimToHeaders header must be a non-empty string")
        elif pair.header is not None and not _CLAIM_HEADER_RE.fullmatch(pair.header):
            at.error(
                "header",
                f'header "{pair.header}" is not a valid header name: should match ^[-_A-Za-z0-9]+$',
            )
    validate_duration(r, "timeout", rule.timeout)


def _jwks_uri_error(uri: str) -> str | None:
    """Why ``uri`` cannot be fetched as a JWKS document (Istio wants an absolute http(s) URL), or ``None``."""
    if uri == "":
        return "jwksUri must not be empty when set"
    if len(uri) > _MAX_JWKS_URI:
        return f"jwksUri must be at most {_MAX_JWKS_URI} characters"
    scheme, problem = parse_url(uri)
    if problem:
        return f"url must have scheme http:// or https://; {problem}"
    if scheme not in ("http", "https"):
        return f'url must have scheme http:// or https://, got "{uri}"'
    return None


# --- URLs as Go's net/url parses them ---------------------------------------------------------------------

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HEX = frozenset("0123456789abcdefABCDEF")
_USERINFO_CHARS = frozenset("-._:~!$&'()*+,;=%@")
_HOST_CHARS = frozenset("-._~!$&'()*+,;=:[]<>\"")


def _escapes_error(text: str, what: str, *, host: bool = False) -> str | None:
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            esc = text[i + 1 : i + 3]
            if len(esc) < 2 or not set(esc) <= _HEX:
                return f'invalid escape "{text[i : i + 3]}" in {what}'
            if host and int(esc[0], 16) < 8 and esc != "25":
                return f'invalid escape "{esc}" in {what}'
            i += 3
            continue
        if host and c.isascii() and not (c.isalnum() or c in _HOST_CHARS):
            return f"invalid character {c!r} in host name"
        i += 1
    return None


def _authority_error(authority: str) -> str | None:
    userinfo, at, host = authority.rpartition("@")
    if at:
        if not all(ch.isascii() and (ch.isalnum() or ch in _USERINFO_CHARS) for ch in userinfo):
            return "invalid userinfo"
        if problem := _escapes_error(userinfo, "userinfo"):
            return problem
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            return "missing ']' in host"
        port_part = host[close + 1 :]
    else:
        colon = host.rfind(":")
        port_part = host[colon:] if colon >= 0 else ""
    if port_part and not (port_part.startswith(":") and all(ch in "0123456789" for ch in port_part[1:])):
        return f'invalid port "{port_part}" after host'
    return _escapes_error(host, "host", host=True)


def parse_url(raw: str, *, request_uri: bool = False) -> tuple[str, str | None]:
    """Parse ``raw`` the way Go's ``net/url`` does (``url.Parse``, or ``url.ParseRequestURI`` with
    ``request_uri``), which is what Istio and the Kubernetes API server use; returns the lower-cased scheme
    ('' when there is none) and why the URL is malformed (``None`` when it is fine).

    >>> parse_url("https://example.com:8443/jwks"), parse_url("https://a b/")[1]
    (('https', None), "invalid character ' ' in host name")
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        return "", "invalid control character in URL"
    rest = raw
    if not request_uri:
        rest, _, fragment = rest.partition("#")
        if problem := _escapes_error(fragment, "fragment"):
            return "", problem
    if request_uri and rest == "":
        return "", "empty URL"
    if rest == "*":
        return "", None
    scheme = ""
    m = _SCHEME_RE.match(rest)
    if rest.startswith(":"):
        return "", "missing protocol scheme"
    if m and rest[m.end() : m.end() + 1] == ":":
        scheme, rest = m.group().lower(), rest[m.end() + 1 :]
    rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme, None  # an opaque URL such as mailto:x
        if request_uri:
            return "", "invalid URI for request: not an absolute URI or path"
        if ":" in rest.partition("/")[0]:
            return "", "invalid URL: first path segment cannot contain a colon"
    if (scheme or (not request_uri and not rest.startswith("///"))) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if problem := _authority_error(authority):
            return scheme, problem
        rest = slash + path
    return scheme, _escapes_error(rest, "path")


def _check_jwks(r: Reporter, jwks: str) -> None:
    try:
        doc = json.loads(jwks)
    except ValueError as e:
        r.error("jwks", f"jwks parse error: not valid JSON ({e})")
        return
    # A single JWK is accepted as well as a key set.
    keys = doc["keys"] if isinstance(doc, dict) and "keys" in doc else [doc]
    if not isinstance(keys, list):
        r.error("jwks", "jwks parse error: keys must be a list of JSON Web Keys")
        return
    for k, key in enumerate(keys):
        problem = _jwk_error(key)
        if problem:
            r.error("jwks", f"jwks parse error: key at index {k}: {problem}")
        elif _jwk_is_private(key):
            r.warn(
                "jwks",
                f"jwks key at index {k} contains private key material; only public keys are used to verify",
            )


def _jwk_error(key: Any) -> str | None:
    if not isinstance(key, dict):
        return "a JSON Web Key must be an object"
    kty = key.get("kty")
    if not isinstance(kty, str):
        return 'missing "kty"'
    required = _JWK_REQUIRED.get(kty)
    if required is None:
        return f'unsupported key type "{kty}"'
    missing = [m for m in required if not isinstance(key.get(m), str)]
    if missing:
        return f"{kty} key is missing {', '.join(missing)}"
    return None


def _jwk_is_private(key: Mapping[str, Any]) -> bool:
    kty = key.get("kty")
    if kty == "oct":
        return True  # a symmetric key is a shared secret
    return any(m in key for m in _JWK_PRIVATE.get(str(kty), ()))
