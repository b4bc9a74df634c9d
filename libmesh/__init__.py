"""libmesh: an in-process service mesh for Python, configured with Istio YAML."""

from __future__ import annotations

from .errors import ConfigError, ConfigIssue, LibmeshError, Severity
from .mesh import Mesh
from .workload import Workload

__version__ = "0.1.0"

__all__ = ["ConfigError", "ConfigIssue", "LibmeshError", "Mesh", "Severity", "Workload", "__version__"]
