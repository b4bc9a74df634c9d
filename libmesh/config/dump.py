"""Dumping resources back to YAML, so that load -> dump -> load gives an equal object."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from ._schema import to_dict
from .resources import Resource

__all__ = ["dump_yaml", "resource_to_dict"]


def resource_to_dict(resource: Resource) -> dict[str, Any]:
    """A resource as plain data with Istio's field names; ``apiVersion`` and ``kind`` are always present."""
    data = to_dict(resource)
    out: dict[str, Any] = {
        "apiVersion": resource.api_version or type(resource).default_api_version(),
        "kind": resource.KIND,
    }
    for key in ("metadata", "spec", "status"):
        if key in data:
            out[key] = data[key]
    return out


def dump_yaml(resources: Resource | Iterable[Resource]) -> str:
    """YAML text for one resource or a multi-document stream of several.

    >>> from libmesh.config import VirtualService, ObjectMeta
    >>> print(dump_yaml(VirtualService(metadata=ObjectMeta(name="r"))), end="")
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: r
    spec: {}
    """
    items = [resources] if isinstance(resources, Resource) else list(resources)
    return yaml.safe_dump_all(
        [resource_to_dict(r) for r in items], sort_keys=False, default_flow_style=False, allow_unicode=True
    )
