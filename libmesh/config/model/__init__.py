"""Istio's API messages as frozen dataclasses, one module per proto file (names follow the protos)."""

from __future__ import annotations

from . import (
    destination_rule,
    envoy_filter,
    extensions,
    gateway,
    proxy_config,
    security,
    selector,
    service_entry,
    sidecar,
    telemetry,
    virtual_service,
    workload_entry,
    workload_group,
)
from .destination_rule import *  # noqa: F403
from .envoy_filter import *  # noqa: F403
from .extensions import *  # noqa: F403
from .gateway import *  # noqa: F403
from .proxy_config import *  # noqa: F403
from .security import *  # noqa: F403
from .selector import *  # noqa: F403
from .service_entry import *  # noqa: F403
from .sidecar import *  # noqa: F403
from .telemetry import *  # noqa: F403
from .virtual_service import *  # noqa: F403
from .workload_entry import *  # noqa: F403
from .workload_group import *  # noqa: F403

__all__ = [
    name
    for module in (
        destination_rule,
        envoy_filter,
        extensions,
        gateway,
        proxy_config,
        security,
        selector,
        service_entry,
        sidecar,
        telemetry,
        virtual_service,
        workload_entry,
        workload_group,
    )
    for name in module.__all__
]
