from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message


__all__ = ["WorkloadEntrySpec"]


@message
class WorkloadEntrySpec:
    """TODO_DOC networking.v1alpha3.WorkloadEntry"""

    address: str | None = None
    ports: dict[str, int] = fld(proto="uint32", factory=dict)
    labels: dict[str, str] = fld(factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: int | None = fld(proto="uint32")
    service_account: str | None = None

