"""The benchmark's server process: a small Starlette app on uvicorn, bare or behind MeshMiddleware.

``python -m benchmarks.http_server [--mesh] --port-file F`` binds 127.0.0.1:0 and writes the port to F.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def item(request: Request) -> JSONResponse:
    """A small JSON answer, like a typical service call."""
    return JSONResponse({"id": request.path_params["id"], "name": "book", "stars": 4})


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", action="store_true")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    app: object = Starlette(routes=[Route("/item/{id}", item)])
    if args.mesh:
        from libmesh import Mesh, Workload
        from libmesh.adapters.asgi import MeshMiddleware
        from libmesh.config import load_yaml

        from .http_bench import config_yaml

        mesh = Mesh(load_yaml(config_yaml(1)), workload=Workload(name="bench", labels={"app": "bench"}))
        app = MeshMiddleware(app, mesh=mesh)  # type: ignore[arg-type]
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    # without it Nagle plus delayed ACKs add 40 ms to every small response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))  # type: ignore[arg-type]
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
