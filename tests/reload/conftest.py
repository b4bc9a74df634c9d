"""Fixtures of the hot-reload tests: the data-plane tests' real servers, and the Consul API under test."""

from __future__ import annotations

from tests.consul.conftest import agent  # noqa: F401 - fixture
from tests.http.conftest import serve, server_pool  # noqa: F401 - fixtures
