"""Propagation between HTTP and gRPC within one app: an HTTP request served by an ASGI app whose gRPC call
carries its context, and a gRPC call served by a servicer whose HTTP call carries its context."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libmesh.adapters import grpc as mesh_grpc
from libmesh.adapters.asgi import MeshMiddleware
from libmesh.adapters.httpx import MeshTransport

from ..http.servers import ServerPool
from .conftest import Start
from .proto import echo_pb2, echo_pb2_grpc
from .support import Echo, make_mesh, service_entry

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PROPAGATE = """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  propagateHeaders: [end-user]
"""


@pytest.fixture
def pool() -> Iterator[ServerPool]:
    p = ServerPool()
    try:
        yield p
    finally:
        p.close()


def _http_entry(port: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: web}\nspec:\n"
        "  hosts: [web.default.svc.cluster.local]\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        f"  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]"
    )


def test_http_to_grpc(start: Start, pool: ServerPool) -> None:
    echo = Echo("v1")
    s = start(echo, "aio")
    web_mesh = make_mesh(service_entry([(s.port, {})]), PROPAGATE, app="web")

    async def handle(request: Request) -> JSONResponse:
        async with mesh_grpc.aio_channel(web_mesh, "echo:50051") as ch:
            reply = await echo_pb2_grpc.EchoStub(ch).Unary(echo_pb2.EchoRequest(payload="from-http"))
        return JSONResponse({"remaining": reply.time_remaining})

    app = MeshMiddleware(Starlette(routes=[Route("/", handle)]), mesh=web_mesh)
    port = pool.serve(app, "asgi")
    client_mesh = make_mesh(_http_entry(port), app="client")
    with httpx.Client(transport=MeshTransport(client_mesh), timeout=5.0) as client:
        r = client.get(
            "http://web:8080/",
            headers={"traceparent": TRACE, "baggage": "k=v", "x-request-id": "rid-1", "end-user": "jason"},
        )
    assert r.status_code == 200
    seen = echo.seen[-1]
    assert seen["x-request-id"] == "rid-1"
    assert seen["end-user"] == "jason"
    assert seen["baggage"] == "k=v"
    assert seen["traceparent"].split("-")[1] == TRACE.split("-")[1]
    # httpx's 5 s timeout is not a deadline the mesh knows; without a route timeout nothing caps it.
    assert r.json()["remaining"] == -1.0


class _Relay(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
    """A servicer that answers by calling an HTTP service through the mesh."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def Unary(self, req: Any, context: Any) -> Any:
        r = self.client.get("http://web:8080/")
        return echo_pb2.EchoReply(payload=r.text, version="relay")


def test_grpc_to_http(pool: ServerPool) -> None:
    seen: list[dict[str, str]] = []

    async def handle(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"ok": True})

    port = pool.serve(Starlette(routes=[Route("/", handle)]), "asgi")
    relay_mesh = make_mesh(_http_entry(port), PROPAGATE, app="relay")
    server = grpc.server(ThreadPoolExecutor(4), interceptors=[mesh_grpc.ServerInterceptor(relay_mesh)])
    with httpx.Client(transport=MeshTransport(relay_mesh)) as http:
        echo_pb2_grpc.add_EchoServicer_to_server(_Relay(http), server)
        grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            client_mesh = make_mesh(service_entry([(grpc_port, {})]), app="client")
            with mesh_grpc.channel(client_mesh, "echo:50051") as ch:
                reply = echo_pb2_grpc.EchoStub(ch).Unary(
                    echo_pb2.EchoRequest(),
                    metadata=[("traceparent", TRACE), ("x-request-id", "rid-2"), ("end-user", "mary")],
                    timeout=2.0,
                )
        finally:
            server.stop(None)
    assert reply.version == "relay"
    h = seen[-1]
    assert h["x-request-id"] == "rid-2"
    assert h["end-user"] == "mary"
    assert h["traceparent"].split("-")[1] == TRACE.split("-")[1]
    # The inbound gRPC deadline travels on as the remaining milliseconds. gRPC's wire
    # encoding of grpc-timeout may round up (to 10 ms units in this range, plus clock
    # conversion), so the server can see a few ms more than the caller asked for.
    assert 0 < int(h["x-libmesh-deadline-ms"]) <= 2020
