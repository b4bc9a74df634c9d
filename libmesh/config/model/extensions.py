"""Istio ``extensions.istio.io`` WasmPlugin messages."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .._schema import fld, message
from .selector import PolicyPortSelector, PolicyTargetReference, PolicyWorkloadSelector, WorkloadMode

__all__ = [
    "EnvValueSource",
    "EnvVar",
    "FailStrategy",
    "PluginPhase",
    "PluginType",
    "PullPolicy",
    "VmConfig",
    "WasmPluginSpec",
    "WasmPluginTrafficSelector",
]


class PluginType(StrEnum):
    """Whether a Wasm plugin runs as an HTTP (L7, the default) or a network (L4) filter.

    Istio ``extensions.v1alpha1.PluginType``.
    """

    UNSPECIFIED_PLUGIN_TYPE = "UNSPECIFIED_PLUGIN_TYPE"
    HTTP = "HTTP"
    NETWORK = "NETWORK"


class PluginPhase(StrEnum):
    """Where a Wasm plugin is inserted: before the authn, authz or stats filters, or where Istio chooses.

    Istio ``extensions.v1alpha1.PluginPhase``. UNSPECIFIED_PHASE usually means near the end of the chain, just
    before the router.
    """

    UNSPECIFIED_PHASE = "UNSPECIFIED_PHASE"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


class PullPolicy(StrEnum):
    """When a Wasm module is fetched again: IfNotPresent or Always.

    Istio ``extensions.v1alpha1.PullPolicy``. Unspecified means IfNotPresent, except for OCI images tagged
    ``latest``, which default to Always.
    """

    UNSPECIFIED_POLICY = "UNSPECIFIED_POLICY"
    IfNotPresent = "IfNotPresent"
    Always = "Always"


class EnvValueSource(StrEnum):
    """Where a Wasm VM environment variable gets its value: inline, or the proxy's host environment.

    Istio ``extensions.v1alpha1.EnvValueSource``.
    """

    INLINE = "INLINE"
    HOST = "HOST"


class FailStrategy(StrEnum):
    """What a fatal Wasm plugin error does to traffic (Istio ``extensions.v1alpha1.FailStrategy``).

    FAIL_CLOSE (the default) fails requests with 5xx, FAIL_OPEN skips the plugin, FAIL_RELOAD starts a new
    plugin instance after a runtime error.
    """

    FAIL_CLOSE = "FAIL_CLOSE"
    FAIL_OPEN = "FAIL_OPEN"
    FAIL_RELOAD = "FAIL_RELOAD"


@message
class WasmPluginSpec:
    """Spec of a WasmPlugin: a WebAssembly extension loaded into the selected proxies.

    Istio ``extensions.v1alpha1.WasmPlugin``. ``url`` is required (``oci://`` is assumed without a scheme).
    Plugins in the same ``phase`` run by descending ``priority``.
    """

    selector: PolicyWorkloadSelector | None = None
    targetRef: PolicyTargetReference | None = None
    targetRefs: tuple[PolicyTargetReference, ...] = fld(default=())
    url: str | None = fld(required=True)
    sha256: str | None = None
    image_pull_policy: PullPolicy | None = None
    image_pull_secret: str | None = None
    verification_key: str | None = None
    plugin_config: Any | None = None
    plugin_name: str | None = None
    phase: PluginPhase | None = None
    priority: int | None = fld(proto="int32")
    fail_strategy: FailStrategy | None = None
    vm_config: VmConfig | None = None
    match: tuple[WasmPluginTrafficSelector, ...] = fld(default=())
    type: PluginType | None = None


@message
class WasmPluginTrafficSelector:
    """Traffic a Wasm plugin applies to: direction (default both) and destination ports (default any).

    Istio ``extensions.v1alpha1.WasmPlugin.TrafficSelector``.
    """

    mode: WorkloadMode | None = None
    ports: tuple[PolicyPortSelector, ...] = fld(default=())


@message
class VmConfig:
    """Settings of the Wasm VM running a plugin: its environment variables.

    Istio ``extensions.v1alpha1.VmConfig``.
    """

    env: tuple[EnvVar, ...] = fld(default=())


@message
class EnvVar:
    """One environment variable for a Wasm VM: a literal value or one taken from the proxy's environment.

    Istio ``extensions.v1alpha1.EnvVar``.
    """

    name: str | None = fld(required=True)
    value_from: EnvValueSource | None = None
    value: str | None = None
