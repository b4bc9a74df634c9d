"""Service discovery: where a host's endpoints are. Backends implement :class:`Registry`."""

from __future__ import annotations

from .endpoint import Endpoint, Registry

__all__ = ["Endpoint", "Registry"]
