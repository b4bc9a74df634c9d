"""Istio ``type.v1beta1`` selectors shared by policy kinds: workload labels, ports, target refs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import fld, message

__all__ = ["PolicyPortSelector", "PolicyTargetReference", "PolicyWorkloadSelector", "WorkloadMode"]


class WorkloadMode(StrEnum):
    """Traffic direction a policy targets: CLIENT (outbound), SERVER (inbound) or both.

    Istio ``type.v1beta1.WorkloadMode``. UNDEFINED leaves the meaning to the field that uses it.
    """

    UNDEFINED = "UNDEFINED"
    CLIENT = "CLIENT"
    SERVER = "SERVER"
    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"


@message
class PolicyWorkloadSelector:
    """Selects the workloads a policy applies to by their labels, within the policy's namespace.

    Istio ``type.v1beta1.WorkloadSelector``.
    """

    match_labels: dict[str, str] = fld(factory=dict)


@message
class PolicyPortSelector:
    """A port number used by policies to narrow the traffic they act on.

    Istio ``type.v1beta1.PortSelector``.
    """

    number: int | None = fld(proto="uint32", required=True)


@message
class PolicyTargetReference:
    """The resource a policy attaches to, such as a Gateway or Service (instead of a label selector).

    Istio ``type.v1beta1.PolicyTargetReference``. ``kind`` and ``name`` are required; ``namespace`` defaults
    to the policy's own.
    """

    group: str | None = None
    kind: str | None = fld(required=True)
    name: str | None = fld(required=True)
    namespace: str | None = None
