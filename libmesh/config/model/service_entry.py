from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import Duration, fld, message

from .sidecar import WorkloadSelector
from .workload_entry import WorkloadEntrySpec

__all__ = ["ServiceEntryAddress", "ServiceEntryLocation", "ServiceEntryResolution", "ServiceEntrySpec", "ServicePort"]


class ServiceEntryLocation(StrEnum):
    """TODO_DOC networking.v1alpha3.ServiceEntry.Location"""

    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class ServiceEntryResolution(StrEnum):
    """TODO_DOC networking.v1alpha3.ServiceEntry.Resolution"""

    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


@message
class ServiceEntrySpec:
    """TODO_DOC networking.v1alpha3.ServiceEntry"""

    hosts: tuple[str, ...] = fld(required=True, default=())
    addresses: tuple[str, ...] = fld(default=())
    ports: tuple[ServicePort, ...] = fld(default=())
    location: ServiceEntryLocation | None = None
    resolution: ServiceEntryResolution | None = None
    endpoints: tuple[WorkloadEntrySpec, ...] = fld(default=())
    workload_selector: WorkloadSelector | None = None
    export_to: tuple[str, ...] = fld(default=())
    subject_alt_names: tuple[str, ...] = fld(default=())


@message
class ServicePort:
    """TODO_DOC networking.v1alpha3.ServicePort"""

    number: int | None = fld(proto="uint32", required=True)
    protocol: str | None = None
    name: str | None = fld(required=True)
    target_port: int | None = fld(proto="uint32")


@message
class ServiceEntryAddress:
    """TODO_DOC networking.v1alpha3.ServiceEntryAddress"""

    value: str | None = None
    host: str | None = None

