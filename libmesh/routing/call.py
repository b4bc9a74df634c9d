"""The neutral call model: what every adapter turns its framework's request into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["Call"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


@dataclass(slots=True, init=False)
class Call:
    """One outbound (or inbound) request as the mesh sees it, independent of the framework.

    ``headers`` keys are lower-case; repeated headers are joined with ``","`` as Envoy matches them.
    ``path`` includes the query string. ``port`` is the port the caller addressed (from the URL, or the
    scheme's default). ``extensions`` carries per-call data between layers without growing this class::

        Call(method="GET", authority="reviews:9080", path="/reviews/1", headers={"end-user": "jason"})
    """

    authority: str
    path: str
    method: str
    scheme: str
    headers: Mapping[str, str]
    port: int | None
    protocol: str
    source_address: str | None
    peer_identity: str | None
    deadline: float | None
    extensions: dict[str, Any]
    _host: str | None = field(repr=False)
    _query: dict[str, str] | None = field(repr=False)
    _path_only: str | None = field(repr=False)

    # Written out (not generated) so that the compiled build compiles it: one Call is made per request.
    def __init__(
        self,
        authority: str,
        path: str = "/",
        method: str = "GET",
        scheme: str = "http",
        headers: Mapping[str, str] | None = None,
        port: int | None = None,
        protocol: str = "http",
        source_address: str | None = None,
        peer_identity: str | None = None,
        deadline: float | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.authority = authority
        self.path = path
        self.method = method
        self.scheme = scheme
        self.headers = {} if headers is None else headers
        self.port = port
        self.protocol = protocol
        self.source_address = source_address
        self.peer_identity = peer_identity
        self.deadline = deadline
        self.extensions = {} if extensions is None else extensions
        self._host = None
        self._query = None
        self._path_only = None

    def set_path(self, path: str) -> None:
        """Replace the path (with its query), forgetting what was parsed from the old one."""
        self.path = path
        self._query = None
        self._path_only = None

    @property
    def host(self) -> str:
        """The authority without its port, lower-cased."""
        if self._host is None:
            self._split_authority()
        assert self._host is not None
        return self._host

    @property
    def target_port(self) -> int:
        """The port the caller addressed: explicit ``port``, else the authority's, else the scheme default."""
        if self.port is None:
            self._split_authority()
        assert self.port is not None
        return self.port

    def _split_authority(self) -> None:
        auth = self.authority
        port: int | None = None
        if auth.startswith("["):  # [v6]:port
            end = auth.find("]")
            host = auth[1:end] if end > 0 else auth
            rest = auth[end + 1 :] if end > 0 else ""
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        else:
            host, sep, p = auth.rpartition(":")
            if sep and p.isdigit() and host:
                port = int(p)
            else:
                host = auth
        self._host = host.lower().rstrip(".")
        if self.port is None:
            self.port = port if port is not None else _DEFAULT_PORTS.get(self.scheme, 80)

    @property
    def path_only(self) -> str:
        """The path without its query string (what Envoy's path matchers see)."""
        p = self._path_only
        if p is None:
            q = self.path.find("?")
            p = self._path_only = self.path if q < 0 else self.path[:q]
        return p

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (first value wins, as Envoy's query matchers see them)."""
        if self._query is None:
            q = self.path.find("?")
            params: dict[str, str] = {}
            if q >= 0:
                for k, v in parse_qsl(self.path[q + 1 :].split("#", 1)[0], keep_blank_values=True):
                    params.setdefault(k, v)
            self._query = params
        return self._query
