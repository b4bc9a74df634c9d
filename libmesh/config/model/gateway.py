"""Istio ``networking.istio.io`` Gateway messages: edge proxy servers, ports and server-side TLS."""

from __future__ import annotations

from enum import StrEnum
from typing import Any  # noqa: F401

from .._schema import fld, message

__all__ = [
    "GatewaySpec",
    "Port",
    "Server",
    "ServerTLSMode",
    "ServerTLSSettings",
    "TLSCertificate",
    "TLSProtocol",
]


class ServerTLSMode(StrEnum):
    """How a gateway server handles TLS: pass it through, terminate it, or require client certificates.

    Istio ``networking.v1alpha3.ServerTLSSettings.TLSmode``. AUTO_PASSTHROUGH routes by SNI without a
    VirtualService; OPTIONAL_MUTUAL asks for but does not require a client certificate.
    """

    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class TLSProtocol(StrEnum):
    """TLS protocol versions for a gateway server's bounds (TLS_AUTO lets the proxy choose).

    Istio ``networking.v1alpha3.ServerTLSSettings.TLSProtocol``.
    """

    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


@message
class GatewaySpec:
    """Spec of a Gateway: the ports and hosts an edge proxy (ingress or egress) exposes.

    Istio ``networking.v1alpha3.Gateway``. ``selector`` picks the gateway proxies by label.
    """

    servers: tuple[Server, ...] = fld(default=())
    selector: dict[str, str] = fld(factory=dict)


@message
class Server:
    """One listener of a Gateway: a port, the hosts served on it and optional TLS.

    Istio ``networking.v1alpha3.Server``.
    """

    port: Port | None = fld(required=True)
    bind: str | None = None
    hosts: tuple[str, ...] = fld(required=True, default=())
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


@message
class Port:
    """A port of a Gateway server: number, protocol and name (Istio ``networking.v1alpha3.Port``)."""

    number: int | None = fld(proto="uint32", required=True)
    protocol: str | None = fld(required=True)
    name: str | None = fld(required=True)
    target_port: int | None = fld(proto="uint32", deprecated=True)


@message
class ServerTLSSettings:
    """Server-side TLS of a Gateway server or sidecar ingress listener.

    Istio ``networking.v1alpha3.ServerTLSSettings``. ``min_protocol_version`` defaults to TLS 1.2;
    ``https_redirect`` tells plain-HTTP clients to come back over HTTPS.
    """

    https_redirect: bool | None = None
    mode: ServerTLSMode | None = None
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: tuple[str, ...] = fld(default=())
    ca_cert_credential_name: str | None = None
    tls_certificates: tuple[TLSCertificate, ...] = fld(default=())
    subject_alt_names: tuple[str, ...] = fld(default=())
    verify_certificate_spki: tuple[str, ...] = fld(default=())
    verify_certificate_hash: tuple[str, ...] = fld(default=())
    min_protocol_version: TLSProtocol | None = None
    max_protocol_version: TLSProtocol | None = None
    cipher_suites: tuple[str, ...] = fld(default=())
    ecdh_curves: str | None = None
    insecure_skip_verify: bool | None = None


@message
class TLSCertificate:
    """One certificate, key and CA set a gateway server can present (e.g. an RSA and an ECDSA one).

    Istio ``networking.v1alpha3.ServerTLSSettings.TLSCertificate``.
    """

    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
