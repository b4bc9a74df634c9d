"""Istio ``security.istio.io`` PeerAuthentication, RequestAuthentication, AuthorizationPolicy."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message
from .selector import PolicyTargetReference, PolicyWorkloadSelector

__all__ = [
    "AuthorizationPolicyAction",
    "AuthorizationPolicySpec",
    "ClaimToHeader",
    "Condition",
    "ExtensionProvider",
    "JWTHeader",
    "JWTRule",
    "JWTRulePresence",
    "MutualTLSMode",
    "Operation",
    "PeerAuthenticationMutualTLS",
    "PeerAuthenticationSpec",
    "RequestAuthenticationSpec",
    "Rule",
    "RuleFrom",
    "RuleTo",
    "Source",
]


class AuthorizationPolicyAction(StrEnum):
    """What an AuthorizationPolicy does with the requests its rules match.

    Istio ``security.v1beta1.AuthorizationPolicy.Action``. ALLOW is the default. CUSTOM and DENY policies are
    checked before ALLOW ones; AUDIT only flags requests for logging.
    """

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class MutualTLSMode(StrEnum):
    """Which inbound connections a workload accepts: plaintext, mutual TLS, or both.

    Istio ``security.v1beta1.PeerAuthentication.MutualTLS.Mode``. UNSET inherits from the enclosing policy
    (PERMISSIVE at the top); STRICT accepts only mTLS.
    """

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class JWTRulePresence(StrEnum):
    """Whether a request must carry the JWT (REQUIRED) or may leave it out (OPTIONAL).

    Istio ``security.v1beta1.JWTRule.presence``. Only in istio/istio's CRD schema; istio/api does not define
    it yet.
    """

    OPTIONAL = "OPTIONAL"
    REQUIRED = "REQUIRED"


@message
class AuthorizationPolicySpec:
    """Spec of an AuthorizationPolicy: access control for requests to the selected workloads.

    Istio ``security.v1beta1.AuthorizationPolicy``. A request matches the policy when any rule matches.
    ``action`` defaults to ALLOW, and an ALLOW policy without rules allows nothing, so
    ``AuthorizationPolicySpec()`` denies every request to its workloads. Without ``selector`` or
    ``targetRefs`` it covers its namespace (the mesh in the root namespace).
    """

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    rules: tuple[Rule, ...] = fld(default=())
    action: AuthorizationPolicyAction | None = None
    provider: ExtensionProvider | None = fld(oneof="action_detail")


@message
class ExtensionProvider:
    """Names the mesh-config extension provider that decides a CUSTOM authorization policy.

    Istio ``security.v1beta1.AuthorizationPolicy.ExtensionProvider``.
    """

    name: str | None = None


@message
class Rule:
    """One authorization rule: sources (``from_``), operations (``to``) and conditions (``when``).

    Istio ``security.v1beta1.Rule``. It matches when some source, some operation and every condition match. A
    missing part matches anything, so an empty ``Rule()`` matches every request.
    """

    from_: tuple[RuleFrom, ...] = fld(json="from", default=())
    to: tuple[RuleTo, ...] = fld(default=())
    when: tuple[Condition, ...] = fld(default=())


@message
class RuleFrom:
    """Wraps one source of an authorization rule (Istio ``security.v1beta1.Rule.From``)."""

    source: Source | None = None


@message
class RuleTo:
    """Wraps one operation of an authorization rule (Istio ``security.v1beta1.Rule.To``)."""

    operation: Operation | None = None


@message
class Source:
    """Caller properties an authorization rule accepts: principals, namespaces, IP blocks and more.

    Istio ``security.v1beta1.Source``. Set fields are ANDed and the values within a field ORed; ``not_*``
    fields exclude. Fields read from the peer certificate (principals, namespaces, service accounts, trust
    domains) need mutual TLS.
    """

    principals: tuple[str, ...] = fld(default=())
    not_principals: tuple[str, ...] = fld(default=())
    request_principals: tuple[str, ...] = fld(default=())
    not_request_principals: tuple[str, ...] = fld(default=())
    namespaces: tuple[str, ...] = fld(default=())
    not_namespaces: tuple[str, ...] = fld(default=())
    service_accounts: tuple[str, ...] = fld(default=())
    not_service_accounts: tuple[str, ...] = fld(default=())
    ip_blocks: tuple[str, ...] = fld(default=())
    not_ip_blocks: tuple[str, ...] = fld(default=())
    remote_ip_blocks: tuple[str, ...] = fld(default=())
    not_remote_ip_blocks: tuple[str, ...] = fld(default=())
    trust_domains: tuple[str, ...] = fld(default=())
    not_trust_domains: tuple[str, ...] = fld(default=())


@message
class Operation:
    """Request properties an authorization rule matches: hosts, ports, methods and paths.

    Istio ``security.v1beta1.Operation``. Set fields are ANDed and the values within a field ORed; hosts,
    methods and paths only apply to HTTP.
    """

    hosts: tuple[str, ...] = fld(default=())
    not_hosts: tuple[str, ...] = fld(default=())
    ports: tuple[str, ...] = fld(default=())
    not_ports: tuple[str, ...] = fld(default=())
    methods: tuple[str, ...] = fld(default=())
    not_methods: tuple[str, ...] = fld(default=())
    paths: tuple[str, ...] = fld(default=())
    not_paths: tuple[str, ...] = fld(default=())


@message
class Condition:
    """An extra attribute test in an authorization rule, e.g. on ``request.headers[x-id]``.

    Istio ``security.v1beta1.Condition``. ``key`` is required, plus at least one of ``values`` and
    ``not_values``.
    """

    key: str | None = fld(required=True)
    values: tuple[str, ...] = fld(default=())
    not_values: tuple[str, ...] = fld(default=())


@message
class PeerAuthenticationSpec:
    """Spec of a PeerAuthentication: the mutual TLS mode the selected workloads accept inbound.

    Istio ``security.v1beta1.PeerAuthentication``. Without ``selector`` it covers its namespace (the mesh in
    the root namespace). An absent ``mtls`` or UNSET mode inherits from the parent; ``port_level_mtls`` is
    keyed by workload port and needs a selector.

    Example: ``PeerAuthenticationSpec(mtls=PeerAuthenticationMutualTLS(mode=MutualTLSMode.STRICT))``
    """

    selector: PolicyWorkloadSelector | None = None
    mtls: PeerAuthenticationMutualTLS | None = None
    port_level_mtls: dict[str, PeerAuthenticationMutualTLS] | None = None


@message
class PeerAuthenticationMutualTLS:
    """The mTLS mode setting of a PeerAuthentication.

    Istio ``security.v1beta1.PeerAuthentication.MutualTLS``.
    """

    mode: MutualTLSMode | None = None


@message
class RequestAuthenticationSpec:
    """Spec of a RequestAuthentication: which JWTs the selected workloads accept.

    Istio ``security.v1beta1.RequestAuthentication``. A request whose token fails every ``jwt_rules`` entry is
    rejected, but a request without a token is let through unauthenticated (pair it with an
    AuthorizationPolicy to demand one). Without ``selector`` or ``targetRefs`` it covers its namespace.
    """

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    jwt_rules: tuple[JWTRule, ...] = fld(default=())


@message
class JWTRule:
    """How to accept one issuer's JWTs: issuer, audiences, signing keys and where the token is found.

    Istio ``security.v1beta1.JWTRule``. With no ``from_*`` location the token is read from
    ``Authorization: Bearer`` and then the ``access_token`` query parameter. Give ``jwks_uri`` or ``jwks``,
    not both (neither means OpenID discovery); the JWKS fetch ``timeout`` defaults to 5s.

    Example: ``JWTRule(issuer="https://issuer.example.com", jwks_uri="https://issuer.example.com/jwks.json")``
    """

    issuer: str | None = None
    audiences: tuple[str, ...] = fld(default=())
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: tuple[JWTHeader, ...] = fld(default=())
    from_params: tuple[str, ...] = fld(default=())
    output_payload_to_header: str | None = None
    from_cookies: tuple[str, ...] = fld(default=())
    forward_original_token: bool | None = None
    output_claim_to_headers: tuple[ClaimToHeader, ...] = fld(default=())
    timeout: Duration | None = None
    space_delimited_claims: tuple[str, ...] = fld(default=())
    presence: JWTRulePresence | None = None


@message
class JWTHeader:
    """A request header to read a JWT from, with the prefix to strip (e.g. ``Bearer``).

    Istio ``security.v1beta1.JWTHeader``.
    """

    name: str | None = fld(required=True)
    prefix: str | None = None


@message
class ClaimToHeader:
    """Copies one claim of a verified JWT into a request header.

    Istio ``security.v1beta1.ClaimToHeader``.
    """

    header: str | None = fld(required=True)
    claim: str | None = fld(required=True)
