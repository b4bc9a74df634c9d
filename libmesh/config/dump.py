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


class _Dumper(yaml.SafeDumper):
    """Safe dumper that double-quotes strings holding Unicode line breaks, which plain and single-quoted
    scalars would turn into spaces on reload."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


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
    return yaml.dump_all(
        [resource_to_dict(r) for r in items],
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
