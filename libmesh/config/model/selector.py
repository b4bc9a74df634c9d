from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message


__all__ = ["PolicyPortSelector", "PolicyTargetReference", "PolicyWorkloadSelector", "WorkloadMode"]


class WorkloadMode(StrEnum):
    """TODO_DOC type.v1beta1.WorkloadMode"""

    UNDEFINED = "UNDEFINED"
    CLIENT = "CLIENT"
    SERVER = "SERVER"
    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"


@message
class PolicyWorkloadSelector:
    """TODO_DOC type.v1beta1.WorkloadSelector"""

    match_labels: dict[str, str] = fld(factory=dict)


@message
class PolicyPortSelector:
    """TODO_DOC type.v1beta1.PortSelector"""

    number: int | None = fld(proto="uint32", required=True)


@message
class PolicyTargetReference:
    """TODO_DOC type.v1beta1.PolicyTargetReference"""

    group: str | None = None
    kind: str | None = fld(required=True)
    name: str | None = fld(required=True)
    namespace: str | None = None

