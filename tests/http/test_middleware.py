"""The server middleware on real servers: pure ASGI (FastAPI/Starlette ``add_middleware``) and WSGI (Flask),
streaming bodies untouched, websockets and lifespan passed through, the inbound context visible to the app,
and failures recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from libmesh import Mesh
from libmesh.adapters import asgi, wsgi
from libmesh.telemetry import context

from .conftest import Serve
from .support import make_mesh, run, wait_until


def _served(mesh: Mesh, metric: str = "istio_requests_total", **labels: str) -> float:
    text = mesh.metrics_exposition()[0].decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_streaming_response_and_request_bodies_pass_through_and_are_counted(serve: Serve) -> None:
    mesh = make_mesh(app="reviews")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"chunk-{i};".encode()

    async def stream(request: Request) -> StreamingResponse:
        body = await request.body()
        assert body == b"x" * 1000
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/stream", stream, methods=["POST"])])
    app.add_middleware(asgi.MeshMiddleware, mesh=mesh)
    port = serve(app)
    response = httpx.post(f"http://127.0.0.1:{port}/stream", content=b"x" * 1000)
    assert response.text == "".join(f"chunk-{i};" for i in range(5))
    wait_until(lambda: _served(mesh) == 1)
    assert _served(mesh, "istio_response_bytes_sum", response_code="200") == len(response.content)
    assert _served(mesh, "istio_request_bytes_sum", response_code="200") == 1000


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_the_app_sees_the_inbound_context(serve: Serve, kind: str) -> None:
    mesh = make_mesh(
        """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  propagateHeaders: [end-user]
""",
        app="reviews",
    )

    def describe() -> dict[str, object]:
        ctx = context.current()
        assert ctx is not None
        remaining = context.remaining_deadline()
        return {"headers": dict(ctx.headers), "remaining": remaining}

    if kind == "asgi":

        async def handle(request: Request) -> JSONResponse:
            return JSONResponse(describe())

        app = Starlette(routes=[Route("/", handle)])
        app.add_middleware(asgi.MeshMiddleware, mesh=mesh)
        port = serve(app)
    else:
        flask_app = Flask("ctx")
        flask_app.get("/")(describe)
        flask_app.wsgi_app = wsgi.MeshMiddleware(flask_app.wsgi_app, mesh=mesh)  # type: ignore[method-assign]
        port = serve(flask_app, "wsgi")
    headers = {"end-user": "jason", "x-request-id": "r-1", "x-libmesh-deadline-ms": "5000", "x-other": "no"}
    data = httpx.get(f"http://127.0.0.1:{port}/", headers=headers).json()
    assert data["headers"] == {"end-user": "jason", "x-request-id": "r-1"}
    assert 4.0 < data["remaining"] <= 5.0
    # Outside a request there is no context.
    assert context.current() is None


def test_fastapi_app_exception_is_recorded_as_500(serve: Serve) -> None:
    mesh = make_mesh(app="reviews")
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(asgi.MeshMiddleware, mesh=mesh)
    port = serve(app)
    assert httpx.get(f"http://127.0.0.1:{port}/boom").status_code == 500
    wait_until(lambda: _served(mesh, response_code="500") == 1)


def test_flask_app_exception_is_recorded_as_500(serve: Serve) -> None:
    mesh = make_mesh(app="reviews")
    app = Flask("boom")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    app.wsgi_app = wsgi.MeshMiddleware(app.wsgi_app, mesh=mesh)  # type: ignore[method-assign]
    port = serve(app, "wsgi")
    assert httpx.get(f"http://127.0.0.1:{port}/boom").status_code == 500
    wait_until(lambda: _served(mesh, response_code="500") == 1)


def test_websocket_and_lifespan_pass_through_untouched() -> None:
    """Driven with raw ASGI messages (the suite has no websocket client library)."""
    mesh = make_mesh(app="reviews")
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("echo:" + await ws.receive_text())
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo)], lifespan=lifespan)
    app.add_middleware(asgi.MeshMiddleware, mesh=mesh)

    async def exchange(scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in incoming:
            queue.put_nowait(message)
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(dict(message))

        await app(scope, queue.get, send)
        return sent

    lifespan_sent = run(
        exchange(
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
        )
    )
    assert [m["type"] for m in lifespan_sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["startup", "shutdown"]
    ws_scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"reviews")],
        "scheme": "ws",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    ws_sent = run(
        exchange(ws_scope, [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}])
    )
    assert [m["type"] for m in ws_sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert ws_sent[1]["text"] == "echo:hi"
    # Neither the websocket nor the lifespan is an HTTP request: nothing is counted.
    assert _served(mesh) == 0


def test_server_adds_its_identity_for_the_callers_metrics(serve: Serve) -> None:
    mesh = make_mesh(app="reviews", version="v3")
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    port = serve(asgi.MeshMiddleware(app, mesh=mesh))
    peer = httpx.get(f"http://127.0.0.1:{port}/").headers["x-libmesh-peer"]
    assert "w=reviews-v3" in peer and "v=v3" in peer
