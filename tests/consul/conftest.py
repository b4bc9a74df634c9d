"""Fixtures of the Consul tests: a Consul HTTP API to talk to, and names no other test uses.

Every test runs against a fresh :class:`libmesh.testing.ConsulServer`, or, when
``LIBMESH_TEST_CONSUL_HTTP_ADDR`` is set (``127.0.0.1:8500``, as ``consul agent -dev`` listens), against that
real agent. Tests that must stop or reconfigure the server ask for ``own_server`` and are skipped, with that
reason, against a real agent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import consul
import pytest

from libmesh.testing import ConsulServer

ENV = "LIBMESH_TEST_CONSUL_HTTP_ADDR"


@dataclass(frozen=True)
class Agent:
    """Where the Consul HTTP API under test listens, and whether it is libmesh's ConsulServer."""

    host: str
    port: int
    server: ConsulServer | None

    @property
    def http_addr(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self) -> consul.Consul:
        return consul.Consul(host=self.host, port=self.port)


def _parse(addr: str) -> tuple[str, int]:
    addr = addr.split("://", 1)[-1].rstrip("/")
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{ENV} must be host:port (e.g. 127.0.0.1:8500), not {addr!r}")
    return host, int(port)


@pytest.fixture
def agent() -> Iterator[Agent]:
    """The Consul API of this test: the real agent named by ``LIBMESH_TEST_CONSUL_HTTP_ADDR``, else a fresh
    ConsulServer."""
    real = os.environ.get(ENV)
    if real:
        host, port = _parse(real)
        yield Agent(host, port, None)
        return
    with ConsulServer() as server:
        yield Agent("127.0.0.1", server.port, server)


@pytest.fixture
def own_server(agent: Agent) -> ConsulServer:
    """The ConsulServer behind ``agent``; skips against a real agent (the test stops or tunes the server)."""
    if agent.server is None:
        pytest.skip(f"needs libmesh's ConsulServer (stops or reconfigures it); {ENV} points at a real agent")
    return agent.server


@pytest.fixture
def names(agent: Agent) -> Iterator[str]:
    """A prefix unique to this test for service names and KV keys; what the test leaves is removed after it
    (so a shared real agent stays clean)."""
    prefix = f"lm{uuid.uuid4().hex[:8]}"
    yield prefix
    if agent.server is not None and not agent.server.running:
        return
    c = agent.client()
    try:
        for sid, svc in c.agent.services().items():
            if svc["Service"].startswith(prefix):
                c.agent.service.deregister(sid)
        c.kv.delete(prefix, recurse=True)
    except Exception:  # best effort: a test may have left the agent down
        pass
