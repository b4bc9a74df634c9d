from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyPortSelector, PolicyTargetReference, PolicyWorkloadSelector, WorkloadMode

__all__ = ["EnvValueSource", "EnvVar", "FailStrategy", "PluginPhase", "PluginType", "PullPolicy", "VmConfig", "WasmPluginSpec", "WasmPluginTrafficSelector"]


class PluginType(StrEnum):
    """TODO_DOC extensions.v1alpha1.PluginType"""

    UNSPECIFIED_PLUGIN_TYPE = "UNSPECIFIED_PLUGIN_TYPE"
    HTTP = "HTTP"
    NETWORK = "NETWORK"


class PluginPhase(StrEnum):
    """TODO_DOC extensions.v1alpha1.PluginPhase"""

    UNSPECIFIED_PHASE = "UNSPECIFIED_PHASE"
    AUTHN = "AUTHN"
    AUTHZ = "AUTHZ"
    STATS = "STATS"


class PullPolicy(StrEnum):
    """TODO_DOC extensions.v1alpha1.PullPolicy"""

    UNSPECIFIED_POLICY = "UNSPECIFIED_POLICY"
    IfNotPresent = "IfNotPresent"
    Always = "Always"


class EnvValueSource(StrEnum):
    """TODO_DOC extensions.v1alpha1.EnvValueSource"""

    INLINE = "INLINE"
    HOST = "HOST"


class FailStrategy(StrEnum):
    """TODO_DOC extensions.v1alpha1.FailStrategy"""

    FAIL_CLOSE = "FAIL_CLOSE"
    FAIL_OPEN = "FAIL_OPEN"
    FAIL_RELOAD = "FAIL_RELOAD"


@message
class WasmPluginSpec:
    """TODO_DOC extensions.v1alpha1.WasmPlugin"""

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
    """TODO_DOC extensions.v1alpha1.WasmPlugin.TrafficSelector"""

    mode: WorkloadMode | None = None
    ports: tuple[PolicyPortSelector, ...] = fld(default=())


@message
class VmConfig:
    """TODO_DOC extensions.v1alpha1.VmConfig"""

    env: tuple[EnvVar, ...] = fld(default=())


@message
class EnvVar:
    """TODO_DOC extensions.v1alpha1.EnvVar"""

    name: str | None = fld(required=True)
    value_from: EnvValueSource | None = None
    value: str | None = None

