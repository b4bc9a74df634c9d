"""What the HTTP adapters cost without the network: ``python -m benchmarks.http_overhead``.

The client rows send through ``MeshTransport`` over an in-process transport that answers at once with a
canned response (bare: the same transport without the mesh); the server rows call the ASGI app directly
with a prepared scope (bare: the Starlette app of ``benchmarks.http_server``; mesh: the same app behind
``MeshMiddleware``). The policy set is the one of ``benchmarks.http_bench``. The difference between a mesh
row and its bare twin is the mesh's own work per request, free of socket and parser noise; the end-to-end
ratios are in ``http_bench``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from . import Result
from .http_bench import HOST, config_yaml

__all__ = ["main", "run"]

_PEER = b"w=client,ns=default,app=client,cs=client"
_TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


class _Canned(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "application/json", "content-length": "2"},
            stream=httpx.ByteStream(b"{}"),
        )


def _clients() -> tuple[Callable[[], None], Callable[[], None]]:
    from libmesh import Mesh, Workload
    from libmesh.adapters.httpx import MeshTransport
    from libmesh.config import load_yaml

    mesh = Mesh(load_yaml(config_yaml(1)), workload=Workload(name="client", labels={"app": "client"}))
    bare_transport, mesh_transport = _Canned(), MeshTransport(mesh, transport=_Canned())
    request = httpx.Client(base_url=f"http://{HOST}").build_request("GET", "/item/1")

    def bare() -> None:
        r = bare_transport.handle_request(request)
        r.read()
        r.close()

    def meshed() -> None:
        r = mesh_transport.handle_request(request)
        r.read()
        r.close()

    return bare, meshed


def _servers() -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from libmesh import Mesh, Workload
    from libmesh.adapters.asgi import MeshMiddleware
    from libmesh.config import load_yaml

    from .http_server import item

    app = Starlette(routes=[Route("/item/{id}", item)])
    mesh = Mesh(load_yaml(config_yaml(1)), workload=Workload(name="bench", labels={"app": "bench"}))
    return app, MeshMiddleware(app, mesh=mesh)


def _scope() -> dict[str, Any]:
    headers = [
        (b"host", HOST.encode()),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
        (b"user-agent", b"python-httpx/0.28.1"),
        (b"x-libmesh-peer", _PEER),
        (b"traceparent", _TRACEPARENT),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/item/1",
        "raw_path": b"/item/1",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }


def _per_call(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _per_request(app: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(_scope(), receive, send)
        return (time.perf_counter() - start) / n

    return asyncio.run(loop())


def run(quick: bool = False) -> list[Result]:
    """Client and server rows, bare and mesh, each mesh row read against its bare twin."""
    rounds, n = (3, 500) if quick else (9, 5000)
    bare_client, mesh_client = _clients()
    bare_app, mesh_app = _servers()
    samples: dict[str, list[float]] = {k: [] for k in ("cb", "cm", "sb", "sm")}
    for fn in (bare_client, mesh_client):
        _per_call(fn, n // 5)
    for _ in range(rounds):
        samples["cb"].append(_per_call(bare_client, n))
        samples["cm"].append(_per_call(mesh_client, n))
        samples["sb"].append(_per_request(bare_app, n))
        samples["sm"].append(_per_request(mesh_app, n))
    rows = [
        ("http.overhead.client.bare", "client, canned transport, bare", "cb", None),
        ("http.overhead.client.mesh", "client, canned transport, mesh", "cm", "http.overhead.client.bare"),
        ("http.overhead.server.bare", "server, ASGI called directly, bare", "sb", None),
        (
            "http.overhead.server.mesh",
            "server, ASGI called directly, mesh",
            "sm",
            "http.overhead.server.bare",
        ),
    ]
    return [
        Result(name, label, statistics.median(samples[key]), max(samples[key]), rounds, n, baseline=base)
        for name, label, key, base in rows
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rows and the mesh's own cost per request on each side."""
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    rows = {r.name: r for r in run(quick)}
    for r in rows.values():
        extra = ""
        if r.baseline:
            extra = f"   mesh adds {(r.median - rows[r.baseline].median) * 1e6:.1f} us"
        print(f"{r.label:40} {r.median * 1e6:8.1f} us{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
