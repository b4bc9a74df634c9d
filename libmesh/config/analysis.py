"""Cross-resource findings, as ``istioctl analyze`` reports them (filled in below)."""

from __future__ import annotations

from ..errors import ConfigIssue
from .loader import ConfigSet

__all__ = ["analyze"]


def analyze(config: ConfigSet, *, namespace: str = "default") -> list[ConfigIssue]:
    """Warnings that need more than one resource to see."""
    return []
