"""The gRPC benchmark's server process: a unary echo method on grpc.server or grpc.aio.server, bare or with
libmesh's server interceptor.

``python -m benchmarks.grpc_server [--mesh] [--aio] --port-file F`` binds 127.0.0.1:0 and writes the port to F.
Messages are raw bytes (no protobuf), so both pairs spend the same on serialisation: nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

METHOD = "/bench.Echo/Unary"
_REPLY = b'{"id": 1, "name": "book", "stars": 4}'


def _interceptors(mesh: bool, aio: bool) -> list[Any]:
    if not mesh:
        return []
    from libmesh import Mesh, Workload
    from libmesh.adapters.grpc import AioServerInterceptor, ServerInterceptor
    from libmesh.config import load_yaml

    from .grpc_bench import config_yaml

    m = Mesh(load_yaml(config_yaml(1)), workload=Workload(name="bench", labels={"app": "bench"}))
    return [AioServerInterceptor(m) if aio else ServerInterceptor(m)]


def serve(interceptors: list[Any], aio: bool, port_file: str) -> None:
    """Serve the echo method on ``grpc.server`` (or ``grpc.aio.server``) with ``interceptors``, bound to
    127.0.0.1:0, the port written to ``port_file``, until terminated."""
    if aio:
        asyncio.run(_aio(interceptors, port_file))
        return
    server = grpc.server(ThreadPoolExecutor(4), interceptors=interceptors)
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(lambda req, ctx: _REPLY)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


async def _aio(interceptors: list[Any], port_file: str) -> None:
    async def unary(req: bytes, ctx: Any) -> bytes:
        return _REPLY

    server = grpc.aio.server(interceptors=interceptors)
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    Path(port_file).write_text(str(port))
    await server.wait_for_termination()


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", action="store_true")
    parser.add_argument("--aio", action="store_true")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    serve(_interceptors(args.mesh, args.aio), args.aio, args.port_file)


if __name__ == "__main__":
    main()
