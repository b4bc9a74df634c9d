"""The gRPC adapters' own cost per call, in process: what the mesh channels and server interceptors add to a
call, without the network and without grpc's core.

``python -m benchmarks.grpc_inproc [--n N] [--only client|aio|server|aioserver|real]``. Each row times ``N``
calls (after a warm-up) with ``time.perf_counter`` and reports microseconds per call, median of 5 repeats:

* ``client``: a sync :func:`~libmesh.adapters.grpc.channel` whose per-endpoint channels are replaced by an
  in-process fake that answers at once (so the row is the mesh channel's Python work only);
* ``aio``: the same for :func:`~libmesh.adapters.grpc.aio_channel`;
* ``server`` / ``aioserver``: the wrapped method handler of the server interceptors called directly with a
  fake servicer context, against the bare handler;
* ``real``: a sync mesh channel against a bare ``grpc.server`` in a subprocess, and a plain channel to it.

The policy set is the gRPC benchmark's (``benchmarks.grpc_bench.config_yaml``). This is the harness used to
find and check the adapters' hot-path work (see docs/performance.md); ``grpc_bench`` is the acceptance
measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc

from .grpc_bench import HOST, METHOD, config_yaml
from .grpc_bench import server as bench_server

_REQUEST = b'{"id": 1}'
_REPLY = b'{"id": 1, "name": "book", "stars": 4}'


def _mesh(port: int, name: str = "client") -> Any:
    from libmesh import Mesh, Workload
    from libmesh.config import load_yaml

    return Mesh(load_yaml(config_yaml(port)), workload=Workload(name=name, labels={"app": name}))


def _timed(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the time per call of ``n`` calls of ``fn``, in microseconds."""
    for _ in range(min(n, 2000)):
        fn()
    out = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(out)


async def _atimed(fn: Callable[[], Any], n: int, repeats: int = 5) -> float:
    for _ in range(min(n, 2000)):
        await fn()
    out = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(out)


# --- fakes for grpc's side --------------------------------------------------------------------------------


class _FakeCall:
    """A finished grpc call: the server's peer identity in its trailing metadata, as a mesh server sends."""

    def __init__(self, trailing: tuple[tuple[str, str], ...]) -> None:
        self._trailing = trailing

    def trailing_metadata(self) -> Any:
        return self._trailing

    def initial_metadata(self) -> Any:
        return ()


class _FakeUnary:
    def __init__(self, trailing: tuple[tuple[str, str], ...]) -> None:
        self._call = _FakeCall(trailing)

    def with_call(self, request: bytes, *args: Any, **kwargs: Any) -> tuple[bytes, _FakeCall]:
        return _REPLY, self._call

    def __call__(self, request: bytes, *args: Any, **kwargs: Any) -> bytes:
        return _REPLY


class _FakeChannel:
    def __init__(self, trailing: tuple[tuple[str, str], ...]) -> None:
        self._mc = _FakeUnary(trailing)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._mc

    def close(self) -> None:
        return None


class _FakeAioCall:
    def __init__(self, trailing: Any) -> None:
        self._trailing = trailing

    def __await__(self) -> Any:
        if False:
            yield
        return _REPLY

    async def trailing_metadata(self) -> Any:
        return self._trailing

    async def initial_metadata(self) -> Any:
        return ()

    def cancel(self) -> bool:
        return False


class _FakeAioUnary:
    def __init__(self, trailing: Any) -> None:
        self._trailing = trailing

    def __call__(self, request: bytes, **kwargs: Any) -> _FakeAioCall:
        return _FakeAioCall(self._trailing)


class _FakeAioChannel:
    def __init__(self, trailing: Any) -> None:
        self._mc = _FakeAioUnary(trailing)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._mc

    async def close(self, grace: float | None = None) -> None:
        return None


class _FakeContext:
    """A grpc servicer context as a sync server passes it: metadata the mesh client sends, a deadline."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> Any:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def set_trailing_metadata(self, md: Any) -> None:
        return None

    def set_code(self, code: Any) -> None:
        return None

    def code(self) -> Any:
        return None


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _client_metadata() -> tuple[tuple[str, str], ...]:
    """What a mesh client sends: its peer identity and a trace context."""
    from libmesh.adapters.grpc import PEER_METADATA

    peer = _mesh(1).peer_header
    return (
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
        (PEER_METADATA, peer),
        ("user-agent", "grpc-python/1.0"),
    )


# --- rows -------------------------------------------------------------------------------------------------


def client(n: int) -> float:
    from libmesh.adapters.grpc import PEER_METADATA, channel

    peer = _mesh(1, "bench").peer_header
    ch: Any = channel(_mesh(1), f"{HOST}:80")
    ch._pool._make = lambda address, authority: _FakeChannel(((PEER_METADATA, peer),))
    call = ch.unary_unary(METHOD, _registered_method=True)
    return _timed(lambda: call(_REQUEST), n)


def aio_client(n: int) -> float:
    from libmesh.adapters.grpc import PEER_METADATA, aio_channel

    peer = _mesh(1, "bench").peer_header

    async def go() -> float:
        ch: Any = aio_channel(_mesh(1), f"{HOST}:80")
        ch._pool._make = lambda address, authority: _FakeAioChannel(((PEER_METADATA, peer),))
        call = ch.unary_unary(METHOD, _registered_method=True)
        return await _atimed(lambda: call(_REQUEST), n)

    return asyncio.run(go())


def server(n: int) -> tuple[float, float]:
    """Per call, as grpc's server does it: find the handler (through the interceptor for the mesh), run it."""
    from libmesh.adapters.grpc import ServerInterceptor

    bare: Any = grpc.unary_unary_rpc_method_handler(lambda req, ctx: _REPLY)
    interceptor = ServerInterceptor(_mesh(1, "bench"))
    md = _client_metadata()
    details = _Details(METHOD)

    def find(d: Any) -> Any:
        return bare

    def bare_call() -> Any:
        return find(details).unary_unary(_REQUEST, _FakeContext(md))

    def mesh_call() -> Any:
        handler: Any = interceptor.intercept_service(find, details)
        return handler.unary_unary(_REQUEST, _FakeContext(md))

    return _timed(bare_call, n), _timed(mesh_call, n)


def aio_server(n: int) -> tuple[float, float]:
    """The asyncio twin of :func:`server`."""
    from libmesh.adapters.grpc import AioServerInterceptor

    async def unary(req: bytes, ctx: Any) -> bytes:
        return _REPLY

    bare: Any = grpc.unary_unary_rpc_method_handler(unary)
    interceptor = AioServerInterceptor(_mesh(1, "bench"))
    md = _client_metadata()
    details = _Details(METHOD)

    async def find(d: Any) -> Any:
        return bare

    async def bare_call() -> Any:
        return await (await find(details)).unary_unary(_REQUEST, _FakeContext(md))

    async def mesh_call() -> Any:
        handler: Any = await interceptor.intercept_service(find, details)
        return await handler.unary_unary(_REQUEST, _FakeContext(md))

    async def go() -> tuple[float, float]:
        return await _atimed(bare_call, n), await _atimed(mesh_call, n)

    return asyncio.run(go())


def real(n: int) -> tuple[float, float]:
    from libmesh.adapters.grpc import channel

    with bench_server(False, aio=False) as (port, _pid):
        bare_ch: Any = grpc.insecure_channel(f"127.0.0.1:{port}")
        mesh_ch: Any = channel(_mesh(port), f"{HOST}:80")
        bc = bare_ch.unary_unary(METHOD, _registered_method=True)
        mc = mesh_ch.unary_unary(METHOD, _registered_method=True)
        b1 = _timed(lambda: bc(_REQUEST), n)
        m1 = _timed(lambda: mc(_REQUEST), n)
        b2 = _timed(lambda: bc(_REQUEST), n)
        m2 = _timed(lambda: mc(_REQUEST), n)
        bare_ch.close()
        mesh_ch.close()
    return (b1 + b2) / 2, (m1 + m2) / 2


def main() -> int:
    """Print microseconds per call for each row."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else {"client", "aio", "server", "aioserver", "real"}
    if "client" in only:
        print(f"sync client, mesh over a fake channel: {client(args.n):7.2f} us")
    if "aio" in only:
        print(f"aio client, mesh over a fake channel:  {aio_client(args.n):7.2f} us")
    if "server" in only:
        b, m = server(args.n)
        print(f"sync server handler: bare {b:7.2f} us, mesh {m:7.2f} us, added {m - b:7.2f} us")
    if "aioserver" in only:
        b, m = aio_server(args.n)
        print(f"aio server handler:  bare {b:7.2f} us, mesh {m:7.2f} us, added {m - b:7.2f} us")
    if "real" in only:
        b, m = real(min(args.n, 5000))
        print(f"sync client vs real bare server: bare {b:7.2f} us, mesh {m:7.2f} us, added {m - b:7.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
