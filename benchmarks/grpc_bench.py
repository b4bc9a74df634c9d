"""gRPC data plane, bare against mesh: grpcio unary calls (sync and asyncio) on loopback.

``python -m benchmarks.grpc_bench [--quick]``. As in ``http_bench``, the server runs in its own process (CPU
read from ``/proc``) and each round measures the bare pair (plain channel, server without interceptor) and
the mesh pair (:func:`libmesh.adapters.grpc.channel`/``aio_channel`` + the server interceptor) back to back,
alternating which goes first; the sync client talks to ``grpc.server``, the asyncio client to
``grpc.aio.server``. The mesh pair runs the HTTP benchmark's policy set: a 20-route VirtualService whose last
route matches, a DestinationRule with LEAST_REQUEST + outlierDetection + connectionPool, the default retry
policy, metrics on and tracing at 1 % sampling.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio

from . import Result
from .http_bench import Side, _proc_cpu, pairs, print_pairs, serving
from .http_bench import config_yaml as _http_config

__all__ = ["config_yaml", "main", "run"]

HOST = "bench"
METHOD = "/bench.Echo/Unary"
_REQUEST = b'{"id": 1}'


def config_yaml(port: int) -> str:
    """The HTTP benchmark's config with the service port declared as gRPC."""
    return (
        _http_config(port)
        .replace("name: http, protocol: HTTP", "name: grpc, protocol: GRPC")
        .replace("ports: {http: ", "ports: {grpc: ")
    )


@contextmanager
def server(mesh: bool, aio: bool) -> Iterator[tuple[int, int]]:
    """Start ``benchmarks.grpc_server`` in a subprocess; yields (port, pid)."""
    flags = (["--mesh"] if mesh else []) + (["--aio"] if aio else [])
    with serving("benchmarks.grpc_server", *flags) as running:
        yield running


def _mesh(port: int) -> Any:
    from libmesh import Mesh, Workload
    from libmesh.config import load_yaml

    return Mesh(load_yaml(config_yaml(port)), workload=Workload(name="client", labels={"app": "client"}))


def measure_sync(mesh: bool, n: int, warmup: int) -> Side:
    """``n`` sequential unary calls (after ``warmup``) on a sync channel."""
    with server(mesh, aio=False) as (port, pid):
        if mesh:
            from libmesh.adapters.grpc import channel

            ch: Any = channel(_mesh(port), f"{HOST}:80")
        else:
            ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        with ch:
            call = ch.unary_unary(METHOD, _registered_method=True)
            for _ in range(warmup):
                call(_REQUEST)
            lat = []
            cpu0, srv0 = time.process_time(), _proc_cpu(pid)
            for _ in range(n):
                t0 = time.perf_counter()
                call(_REQUEST)
                lat.append(time.perf_counter() - t0)
            return Side(lat, (time.process_time() - cpu0) / n, (_proc_cpu(pid) - srv0) / n)


def measure_async(mesh: bool, n: int, warmup: int) -> Side:
    """``n`` sequential unary calls (after ``warmup``) on a grpc.aio channel."""

    async def go(port: int, pid: int) -> Side:
        if mesh:
            from libmesh.adapters.grpc import aio_channel

            ch: Any = aio_channel(_mesh(port), f"{HOST}:80")
        else:
            ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        async with ch:
            call = ch.unary_unary(METHOD, _registered_method=True)
            for _ in range(warmup):
                await call(_REQUEST)
            lat = []
            cpu0, srv0 = time.process_time(), _proc_cpu(pid)
            for _ in range(n):
                t0 = time.perf_counter()
                await call(_REQUEST)
                lat.append(time.perf_counter() - t0)
            return Side(lat, (time.process_time() - cpu0) / n, (_proc_cpu(pid) - srv0) / n)

    with server(mesh, aio=True) as (port, pid):
        return asyncio.run(go(port, pid))


def run(quick: bool = False) -> list[Result]:
    """Rows for ``python -m benchmarks.run``: p50/p99 latency and client/server CPU per call, bare and mesh,
    sync and asyncio, each mesh row read against its bare twin from the same rounds."""
    measures = (("sync", measure_sync), ("aio", measure_async))
    return pairs("grpc", measures, title="grpc {kind} unary", short="grpc {kind}", per="call", quick=quick)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table: latency and CPU per call, and the mesh/bare ratios."""
    print_pairs(run("--quick" in (sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
