"""ratings: stars per reviewer, over gRPC (a ``grpc.aio`` server with libmesh's server interceptor).

Its ``/metrics`` and status endpoint are on a small HTTP server beside it, on loopback (``--http-port``).

``python -m examples.bookinfo_py.ratings --config DIR [--port 9085] [--http-port 9086]``
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

import grpc.aio
import uvicorn

import libmesh
from libmesh.adapters.grpc import AioServerInterceptor, register_server

from .proto import ratings_pb2, ratings_pb2_grpc
from .runtime import start, with_admin
from .topology import Ports

__all__ = ["Ratings", "main"]

STARS = {"Reviewer1": 5, "Reviewer2": 4}


class Ratings(ratings_pb2_grpc.RatingsServicer):  # type: ignore[misc,name-defined]
    """The ratings servicer: the same stars for every product, as Istio's ratings answers."""

    async def GetRatings(self, request: Any, context: Any) -> Any:
        return ratings_pb2.RatingsReply(product_id=request.product_id, ratings=STARS)


async def serve(mesh: libmesh.Mesh, port: int, http_port: int) -> None:
    """Serve gRPC on ``port`` and ``/metrics`` + status on ``http_port``, both on 127.0.0.1."""
    server = grpc.aio.server(interceptors=[AioServerInterceptor(mesh)])
    ratings_pb2_grpc.add_RatingsServicer_to_server(Ratings(), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"ratings: cannot listen on 127.0.0.1:{port}")
    await server.start()
    register_server(server, mesh)  # in Consul, when the mesh has a registration (--consul)
    web = with_admin(mesh)
    http = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=http_port, log_level="warning"))
    try:
        await http.serve()  # returns on SIGINT/SIGTERM
    finally:
        await server.stop(grace=1.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve ratings until interrupted."""
    ports = Ports()
    service = start("ratings", argv, default_port=ports.ratings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(service.mesh, service.port, service.options.http_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
