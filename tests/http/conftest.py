"""Fixtures of the data-plane tests: real servers on 127.0.0.1, lent to one test at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from .servers import ServerPool
from .support import Upstream

Serve = Callable[..., int]


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    """The running servers of the session (started on demand, stopped at the end)."""
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def serve(server_pool: ServerPool) -> Iterator[Serve]:
    """``serve(app_or_upstream, kind="asgi"|"wsgi") -> port``: a real server on 127.0.0.1 serving the app
    for this test. An :class:`~tests.http.support.Upstream` is served as its Starlette (``asgi``) or Flask
    (``wsgi``) app; any other object must be an app of the given kind."""

    def start(app: Any, kind: Literal["asgi", "wsgi"] = "asgi") -> int:
        if isinstance(app, Upstream):
            app = app.asgi() if kind == "asgi" else app.wsgi()
        return server_pool.serve(app, kind)

    try:
        yield start
    finally:
        server_pool.release_all()
