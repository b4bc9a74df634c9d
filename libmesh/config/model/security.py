from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyTargetReference, PolicyWorkloadSelector

__all__ = ["JWTRulePresence", "AuthorizationPolicyAction", "AuthorizationPolicySpec", "ClaimToHeader", "Condition", "ExtensionProvider", "JWTHeader", "JWTRule", "MutualTLSMode", "Operation", "PeerAuthenticationMutualTLS", "PeerAuthenticationSpec", "RequestAuthenticationSpec", "Rule", "RuleFrom", "RuleTo", "Source"]


class AuthorizationPolicyAction(StrEnum):
    """TODO_DOC security.v1beta1.AuthorizationPolicy.Action"""

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class MutualTLSMode(StrEnum):
    """TODO_DOC security.v1beta1.PeerAuthentication.MutualTLS.Mode"""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class JWTRulePresence(StrEnum):
    """TODO_DOC security.v1beta1.JWTRule.presence (istio/istio CRD, newer than istio/api)"""

    OPTIONAL = "OPTIONAL"
    REQUIRED = "REQUIRED"


@message
class AuthorizationPolicySpec:
    """TODO_DOC security.v1beta1.AuthorizationPolicy"""

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    rules: tuple[Rule, ...] = fld(default=())
    action: AuthorizationPolicyAction | None = None
    provider: ExtensionProvider | None = fld(oneof="action_detail")


@message
class ExtensionProvider:
    """TODO_DOC security.v1beta1.AuthorizationPolicy.ExtensionProvider"""

    name: str | None = None


@message
class Rule:
    """TODO_DOC security.v1beta1.Rule"""

    from_: tuple[RuleFrom, ...] = fld(json="from", default=())
    to: tuple[RuleTo, ...] = fld(default=())
    when: tuple[Condition, ...] = fld(default=())


@message
class RuleFrom:
    """TODO_DOC security.v1beta1.Rule.From"""

    source: Source | None = None


@message
class RuleTo:
    """TODO_DOC security.v1beta1.Rule.To"""

    operation: Operation | None = None


@message
class Source:
    """TODO_DOC security.v1beta1.Source"""

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
    """TODO_DOC security.v1beta1.Operation"""

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
    """TODO_DOC security.v1beta1.Condition"""

    key: str | None = fld(required=True)
    values: tuple[str, ...] = fld(default=())
    not_values: tuple[str, ...] = fld(default=())


@message
class PeerAuthenticationSpec:
    """TODO_DOC security.v1beta1.PeerAuthentication"""

    selector: PolicyWorkloadSelector | None = None
    mtls: PeerAuthenticationMutualTLS | None = None
    port_level_mtls: dict[str, PeerAuthenticationMutualTLS] = fld(factory=dict)


@message
class PeerAuthenticationMutualTLS:
    """TODO_DOC security.v1beta1.PeerAuthentication.MutualTLS"""

    mode: MutualTLSMode | None = None


@message
class RequestAuthenticationSpec:
    """TODO_DOC security.v1beta1.RequestAuthentication"""

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    jwt_rules: tuple[JWTRule, ...] = fld(default=())


@message
class JWTRule:
    """TODO_DOC security.v1beta1.JWTRule"""

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
    """TODO_DOC security.v1beta1.JWTHeader"""

    name: str | None = fld(required=True)
    prefix: str | None = None


@message
class ClaimToHeader:
    """TODO_DOC security.v1beta1.ClaimToHeader"""

    header: str | None = fld(required=True)
    claim: str | None = fld(required=True)

