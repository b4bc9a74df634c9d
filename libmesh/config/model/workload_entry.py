"""Istio ``networking.istio.io`` WorkloadEntry message: a single non-Kubernetes workload."""

from __future__ import annotations

from typing import Any  # noqa: F401

from .._schema import fld, message

__all__ = ["WorkloadEntrySpec"]


@message
class WorkloadEntrySpec:
    """Spec of a WorkloadEntry, also used for ServiceEntry endpoints: one workload such as a VM.

    Istio ``networking.v1alpha3.WorkloadEntry``. ``address`` is an IP, a DNS name (DNS resolution only) or a
    ``unix://`` path; without it ``network`` is required. ``ports`` maps service port names to endpoint ports
    and wins over ``target_port``; ``weight`` is relative to the other endpoints.

    Example: ``WorkloadEntrySpec(address="10.0.0.7", labels={"app": "billing"}, ports={"http": 8080})``
    """

    address: str | None = None
    ports: dict[str, int] = fld(proto="uint32", factory=dict)
    labels: dict[str, str] = fld(factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: int | None = fld(proto="uint32")
    service_account: str | None = None
