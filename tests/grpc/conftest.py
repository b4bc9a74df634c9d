"""Fixtures of the gRPC data-plane tests: real grpc servers on 127.0.0.1, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

import libmesh

from .support import AioServer, Echo, SyncServer

Start = Callable[..., Any]


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(echo, kind="sync"|"aio", mesh=None) -> server``: a real gRPC server on 127.0.0.1 serving
    ``echo`` (behind the mesh's server interceptor when ``mesh`` is given) for this test."""
    servers: list[Any] = []

    def make(echo: Echo, kind: Literal["sync", "aio"] = "sync", mesh: libmesh.Mesh | None = None) -> Any:
        server = SyncServer(echo, mesh) if kind == "sync" else AioServer(echo, mesh)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for s in servers:
            s.stop()
