from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .selector import PolicyWorkloadSelector

__all__ = ["ProxyConfigSpec", "ProxyImage"]


@message
class ProxyConfigSpec:
    """TODO_DOC networking.v1beta1.ProxyConfig"""

    selector: PolicyWorkloadSelector | None = None
    concurrency: int | None = fld(proto="int32")
    environment_variables: dict[str, str] = fld(factory=dict)
    image: ProxyImage | None = None


@message
class ProxyImage:
    """TODO_DOC networking.v1beta1.ProxyImage"""

    image_type: str | None = None

