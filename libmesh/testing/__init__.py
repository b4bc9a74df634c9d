"""Test helpers that ship with libmesh: stand-ins for the infrastructure a mesh talks to.

:class:`ConsulServer` is an in-process Consul HTTP API (the subset libmesh uses) for tests and demos where
no Consul agent binary is available::

    from libmesh.testing import ConsulServer

    with ConsulServer() as consul_server:
        client = consul.Consul(host="127.0.0.1", port=consul_server.port)
"""

from __future__ import annotations

from .consul import ConsulServer

__all__ = ["ConsulServer"]
