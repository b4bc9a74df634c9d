"""Kubernetes-style resources: ``apiVersion``, ``kind``, ``metadata`` and a typed ``spec``.

Each class here is one Istio kind (or libmesh's own ``MeshConfig``). They are frozen dataclasses, built in Python
or loaded from YAML, and dumped back with :func:`libmesh.config.dump_yaml`::

    vs = VirtualService(
        metadata=ObjectMeta(name="reviews", namespace="default"),
        spec=VirtualServiceSpec(
            hosts=("reviews",),
            http=(HTTPRoute(route=(HTTPRouteDestination(destination=Destination(host="reviews", subset="v1")),)),),
        ),
    )
"""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum
from typing import Any, ClassVar

from ._schema import Duration, fld, message
from .model.destination_rule import DestinationRuleSpec
from .model.envoy_filter import EnvoyFilterSpec
from .model.extensions import WasmPluginSpec
from .model.gateway import GatewaySpec
from .model.proxy_config import ProxyConfigSpec
from .model.security import AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec
from .model.service_entry import ServiceEntrySpec
from .model.sidecar import SidecarSpec
from .model.telemetry import TelemetrySpec
from .model.virtual_service import HTTPRetry, VirtualServiceSpec
from .model.workload_entry import WorkloadEntrySpec
from .model.workload_group import WorkloadGroupSpec

__all__ = [
    "RESOURCE_KINDS",
    "AccessLogFormat",
    "AccessLogSettings",
    "AuthorizationPolicy",
    "DestinationRule",
    "EnvoyFilter",
    "Gateway",
    "MeshConfig",
    "MeshConfigSpec",
    "ObjectMeta",
    "OutboundMode",
    "OutboundTrafficPolicySettings",
    "PathNormalizationSettings",
    "PathNormalizationType",
    "PeerAuthentication",
    "ProxyConfig",
    "RequestAuthentication",
    "Resource",
    "RetryBudgetSettings",
    "ServiceEntry",
    "Sidecar",
    "Telemetry",
    "TelemetrySettings",
    "TracingSettings",
    "VirtualService",
    "WasmPlugin",
    "WorkloadEntry",
    "WorkloadGroup",
]


@message
class ObjectMeta:
    """Kubernetes object metadata. libmesh uses ``name``, ``namespace``, ``labels`` and ``annotations``; the
    other standard fields are accepted so that YAML exported from a cluster loads unchanged."""

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = fld(factory=dict)
    annotations: dict[str, str] = fld(factory=dict)
    generate_name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    deletion_grace_period_seconds: int | None = None
    self_link: str | None = None
    finalizers: tuple[str, ...] = fld(default=())
    owner_references: tuple[Any, ...] = fld(default=())
    managed_fields: tuple[Any, ...] = fld(default=())


@message
class Resource:
    """Fields common to every resource. Subclasses add ``spec`` and set ``KIND``, ``GROUP`` and ``VERSIONS``."""

    KIND: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""
    VERSIONS: ClassVar[tuple[str, ...]] = ()
    SPEC_REQUIRED: ClassVar[bool] = False
    #: True for kinds whose semantics libmesh implements (others are validated, then reported as not enforced).
    ENFORCED: ClassVar[bool] = True

    api_version: str | None = fld(json="apiVersion")
    kind: str | None = None
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    status: Any = None

    def __post_init__(self) -> None:
        # Objects built in Python equal the same resource loaded from YAML, which always names both.
        if self.kind is None:
            object.__setattr__(self, "kind", self.KIND)
        if self.api_version is None and self.VERSIONS:
            object.__setattr__(self, "api_version", self.default_api_version())

    @property
    def name(self) -> str:
        """``metadata.name`` ('' when unset)."""
        return self.metadata.name or ""

    @property
    def namespace(self) -> str | None:
        """``metadata.namespace`` as written (``None`` when unset; the loader's default applies then)."""
        return self.metadata.namespace

    @classmethod
    def default_api_version(cls) -> str:
        """The newest ``apiVersion`` of this kind, used when dumping an object built without one."""
        return f"{cls.GROUP}/{cls.VERSIONS[0]}" if cls.GROUP else cls.VERSIONS[0]


_NET = "networking.istio.io"
_SEC = "security.istio.io"


@message
class VirtualService(Resource):
    """Istio ``VirtualService``: HTTP/TCP/TLS routing rules for a set of hosts."""

    KIND = "VirtualService"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    spec: VirtualServiceSpec = field(default_factory=VirtualServiceSpec)


@message
class DestinationRule(Resource):
    """Istio ``DestinationRule``: subsets and traffic policy (LB, pools, outlier detection, TLS) for a host."""

    KIND = "DestinationRule"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    spec: DestinationRuleSpec = field(default_factory=DestinationRuleSpec)


@message
class ServiceEntry(Resource):
    """Istio ``ServiceEntry``: adds a service (hosts, ports, endpoints) to the mesh's registry."""

    KIND = "ServiceEntry"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    SPEC_REQUIRED = True
    spec: ServiceEntrySpec = field(default_factory=ServiceEntrySpec)


@message
class WorkloadEntry(Resource):
    """Istio ``WorkloadEntry``: one non-Kubernetes workload (address, labels, ports)."""

    KIND = "WorkloadEntry"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    SPEC_REQUIRED = True
    spec: WorkloadEntrySpec = field(default_factory=WorkloadEntrySpec)


@message
class WorkloadGroup(Resource):
    """Istio ``WorkloadGroup``: a template for WorkloadEntries. Validated; not enforced by libmesh."""

    KIND = "WorkloadGroup"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    SPEC_REQUIRED = True
    ENFORCED = False
    spec: WorkloadGroupSpec = field(default_factory=WorkloadGroupSpec)


@message
class Gateway(Resource):
    """Istio ``Gateway``: listeners of an edge proxy. Validated; gateways arrive with the sidecar mode."""

    KIND = "Gateway"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    spec: GatewaySpec = field(default_factory=GatewaySpec)


@message
class Sidecar(Resource):
    """Istio ``Sidecar``: scoping of a sidecar's config. Validated; not enforced by libmesh."""

    KIND = "Sidecar"
    GROUP = _NET
    VERSIONS = ("v1", "v1beta1", "v1alpha3")
    ENFORCED = False
    spec: SidecarSpec = field(default_factory=SidecarSpec)


@message
class EnvoyFilter(Resource):
    """Istio ``EnvoyFilter``: patches to Envoy config. Validated; it has no meaning without Envoy."""

    KIND = "EnvoyFilter"
    GROUP = _NET
    VERSIONS = ("v1alpha3",)
    ENFORCED = False
    spec: EnvoyFilterSpec = field(default_factory=EnvoyFilterSpec)


@message
class ProxyConfig(Resource):
    """Istio ``ProxyConfig``: per-proxy settings. Validated; not enforced by libmesh."""

    KIND = "ProxyConfig"
    GROUP = _NET
    VERSIONS = ("v1beta1",)
    ENFORCED = False
    spec: ProxyConfigSpec = field(default_factory=ProxyConfigSpec)


@message
class PeerAuthentication(Resource):
    """Istio ``PeerAuthentication``: which mTLS mode a workload accepts."""

    KIND = "PeerAuthentication"
    GROUP = _SEC
    VERSIONS = ("v1", "v1beta1")
    spec: PeerAuthenticationSpec = field(default_factory=PeerAuthenticationSpec)


@message
class AuthorizationPolicy(Resource):
    """Istio ``AuthorizationPolicy``: ALLOW/DENY/AUDIT/CUSTOM rules on requests to a workload."""

    KIND = "AuthorizationPolicy"
    GROUP = _SEC
    VERSIONS = ("v1", "v1beta1")
    spec: AuthorizationPolicySpec = field(default_factory=AuthorizationPolicySpec)


@message
class RequestAuthentication(Resource):
    """Istio ``RequestAuthentication``: which JWTs a workload accepts."""

    KIND = "RequestAuthentication"
    GROUP = _SEC
    VERSIONS = ("v1", "v1beta1")
    spec: RequestAuthenticationSpec = field(default_factory=RequestAuthenticationSpec)


@message
class Telemetry(Resource):
    """Istio ``Telemetry``: metrics/tracing/logging overrides. Validated; libmesh takes these from MeshConfig."""

    KIND = "Telemetry"
    GROUP = "telemetry.istio.io"
    VERSIONS = ("v1", "v1alpha1")
    ENFORCED = False
    spec: TelemetrySpec = field(default_factory=TelemetrySpec)


@message
class WasmPlugin(Resource):
    """Istio ``WasmPlugin``: an Envoy Wasm extension. Validated; it has no meaning without Envoy."""

    KIND = "WasmPlugin"
    GROUP = "extensions.istio.io"
    VERSIONS = ("v1alpha1",)
    SPEC_REQUIRED = True
    ENFORCED = False
    spec: WasmPluginSpec = field(default_factory=WasmPluginSpec)


# --- libmesh's own mesh-wide settings --------------------------------------------------------------------


class OutboundMode(StrEnum):
    """What happens to a call for a host the registry does not know (Istio's ``outboundTrafficPolicy``)."""

    ALLOW_ANY = "ALLOW_ANY"
    REGISTRY_ONLY = "REGISTRY_ONLY"


@message
class OutboundTrafficPolicySettings:
    """``outboundTrafficPolicy.mode``: ``ALLOW_ANY`` (pass through, Istio's default) or ``REGISTRY_ONLY``."""

    mode: OutboundMode | None = None


class PathNormalizationType(StrEnum):
    """How request paths are normalized before routing (Istio's ``ProxyPathNormalization``; see
    :mod:`libmesh.routing.paths`). ``DEFAULT`` is ``BASE``."""

    DEFAULT = "DEFAULT"
    NONE = "NONE"
    BASE = "BASE"
    MERGE_SLASHES = "MERGE_SLASHES"
    DECODE_AND_MERGE_SLASHES = "DECODE_AND_MERGE_SLASHES"


@message
class PathNormalizationSettings:
    """``pathNormalization.normalization``: Istio's MeshConfig field of the same shape."""

    normalization: PathNormalizationType | None = None


@message
class RetryBudgetSettings:
    """A request-rate retry budget (Finagle's model): retries may add ``percent`` of the requests seen over
    ``ttl``, plus ``min_retries_per_second``, so that retries cannot multiply an outage."""

    percent: float | None = None
    min_retries_per_second: float | None = None
    ttl: Duration | None = None


class AccessLogFormat(StrEnum):
    """Access log line format: Envoy's default text format or one JSON object per line."""

    TEXT = "TEXT"
    JSON = "JSON"


@message
class AccessLogSettings:
    """Access log switch and format."""

    enabled: bool | None = None
    format: AccessLogFormat | None = None


@message
class TracingSettings:
    """Tracing switch and sampling percentage (0-100)."""

    enabled: bool | None = None
    sampling: float | None = None


@message
class TelemetrySettings:
    """Telemetry switches: Prometheus metrics, tracing and access logs."""

    metrics: bool | None = None
    tracing: TracingSettings | None = None
    access_log: AccessLogSettings | None = None


@message
class MeshConfigSpec:
    """libmesh's mesh-wide settings (the subset of Istio's MeshConfig an in-process mesh needs)."""

    trust_domain: str | None = None
    cluster_domain_suffix: str | None = None
    default_namespace: str | None = None
    outbound_traffic_policy: OutboundTrafficPolicySettings | None = None
    path_normalization: PathNormalizationSettings | None = None
    default_http_retry_policy: HTTPRetry | None = None
    retry_budget: RetryBudgetSettings | None = None
    propagate_headers: tuple[str, ...] = fld(default=())
    telemetry: TelemetrySettings | None = None


@message
class MeshConfig(Resource):
    """libmesh's ``MeshConfig`` kind (``apiVersion: libmesh.io/v1alpha1``)::

    apiVersion: libmesh.io/v1alpha1
    kind: MeshConfig
    metadata: {name: mesh}
    spec:
      trustDomain: cluster.local
      outboundTrafficPolicy: {mode: REGISTRY_ONLY}
      pathNormalization: {normalization: MERGE_SLASHES}
      propagateHeaders: [end-user]
    """

    KIND = "MeshConfig"
    GROUP = "libmesh.io"
    VERSIONS = ("v1alpha1",)
    spec: MeshConfigSpec = field(default_factory=MeshConfigSpec)


#: ``kind`` -> resource class, for every kind libmesh reads.
RESOURCE_KINDS: dict[str, type[Resource]] = {
    cls.KIND: cls
    for cls in (
        VirtualService,
        DestinationRule,
        ServiceEntry,
        WorkloadEntry,
        WorkloadGroup,
        Gateway,
        Sidecar,
        EnvoyFilter,
        ProxyConfig,
        PeerAuthentication,
        AuthorizationPolicy,
        RequestAuthentication,
        Telemetry,
        WasmPlugin,
        MeshConfig,
    )
}
