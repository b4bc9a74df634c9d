"""The Istio config plane: typed resources, the loader, validation and YAML dumping.

>>> from libmesh.config import load_yaml
>>> cfg = load_yaml('''
... apiVersion: networking.istio.io/v1
... kind: VirtualService
... metadata: {name: reviews}
... spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}
... ''')
>>> cfg.resources[0].spec.http[0].route[0].destination.subset
'v1'
"""

from __future__ import annotations

from . import model, resources
from ._schema import Duration, format_duration, parse_duration, to_dict
from .dump import dump_yaml, resource_to_dict
from .loader import ConfigSet, Document, load_paths, load_resources, load_yaml, parse_paths, parse_yaml
from .model import *  # noqa: F403
from .resources import *  # noqa: F403
from .support import Support

__all__ = [
    "ConfigSet",
    "Document",
    "Duration",
    "Support",
    "dump_yaml",
    "format_duration",
    "load_paths",
    "load_resources",
    "load_yaml",
    "parse_duration",
    "parse_paths",
    "parse_yaml",
    "resource_to_dict",
    "to_dict",
    *model.__all__,
    *resources.__all__,
]
