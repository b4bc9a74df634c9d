"""Istio ``networking.istio.io`` ProxyConfig messages (``v1beta1``): per-workload proxy settings."""

from __future__ import annotations

from typing import Any  # noqa: F401

from .._schema import fld, message
from .selector import PolicyWorkloadSelector

__all__ = ["ProxyConfigSpec", "ProxyImage"]


@message
class ProxyConfigSpec:
    """Spec of a ProxyConfig: per-workload proxy settings such as concurrency and environment.

    Istio ``networking.v1beta1.ProxyConfig``.
    """

    selector: PolicyWorkloadSelector | None = None
    concurrency: int | None = fld(proto="int32")
    environment_variables: dict[str, str] = fld(factory=dict)
    image: ProxyImage | None = None


@message
class ProxyImage:
    """Which proxy image variant to run: default, debug or distroless.

    Istio ``networking.v1beta1.ProxyImage``.
    """

    image_type: str | None = None
