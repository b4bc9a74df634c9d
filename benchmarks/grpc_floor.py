"""The floor under the gRPC benchmark: what grpcio itself charges for the least an in-process mesh must do.

``python -m benchmarks.grpc_floor [--quick]``. No libmesh code runs here. Each row is a bare grpcio pair
(the ``grpc_bench`` server and calls, pinned the same way) plus only what any in-process mesh that keeps
Istio's behaviour has to add to a unary call:

- **client** ``trace``: a ``traceparent`` entry with fresh ids on every call (Envoy propagates the trace
  context of every request, sampled or not); ``trace+identity``: also the caller's identity entry (Istio's
  metadata exchange, without which the server cannot label its metrics with the source workload);
  ``least``: those two entries plus the least per-call work of a client mesh: the route looked up in a
  dict, an in-flight count (circuit breaking, least-request balancing) and one locked histogram update.
- **server** ``hooks``: a ``grpc.ServerInterceptor`` (``grpc.aio.ServerInterceptor`` for asyncio) whose
  behaviour reads the two entries, sets a context variable for the servicer (trace continuation) and makes
  one locked histogram update.

Every row is read against the bare pair of the same round, so the ratios say how much of the
``grpc_bench`` bar (mesh p50 <= 1.10 x bare) is spent before a mesh does anything of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextvars
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from . import Result, with_ratios
from .grpc_server import METHOD, serve
from .http_bench import _p, pinned_client, serving

__all__ = ["CLIENTS", "main", "run"]

_REQUEST = b'{"id": 1}'
_IDENTITY = "w=client,ns=default,app=client,cs=client,k=4df42127a3e6"
_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)
_REQUEST_CONTEXT: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar("floor")


class _Histogram:
    """One locked histogram update per call, as a metrics series does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, ms: float) -> None:
        with self.lock:
            self.counts[bisect.bisect_left(_BUCKETS, ms)] += 1
            self.total += ms


def _traceparent() -> str:
    bits = random.getrandbits
    return f"00-{bits(128):032x}-{bits(64):016x}-00"


def _trace(_: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", _traceparent()),)


def _trace_identity(_: str) -> tuple[tuple[str, str], ...]:
    return (("x-libmesh-peer", _IDENTITY), ("traceparent", _traceparent()))


# --- the server ----------------------------------------------------------------------------------------


def _read(metadata: Sequence[tuple[str, Any]]) -> tuple[str | None, str | None]:
    trace = identity = None
    for key, value in metadata:
        if key == "traceparent":
            trace = value
        elif key == "x-libmesh-peer":
            identity = value
    return trace, identity


class _Hooks(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self.histogram = _Histogram()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        inner, histogram = handler.unary_unary, self.histogram

        def behavior(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            token = _REQUEST_CONTEXT.set(_read(context.invocation_metadata()))
            try:
                return inner(request, context)
            finally:
                _REQUEST_CONTEXT.reset(token)
                histogram.observe((time.perf_counter() - started) * 1000.0)

        return grpc.unary_unary_rpc_method_handler(behavior)


class _AioHooks(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self.histogram = _Histogram()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        inner, histogram = handler.unary_unary, self.histogram

        async def behavior(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            token = _REQUEST_CONTEXT.set(_read(context.invocation_metadata()))
            try:
                return await inner(request, context)
            finally:
                _REQUEST_CONTEXT.reset(token)
                histogram.observe((time.perf_counter() - started) * 1000.0)

        return grpc.unary_unary_rpc_method_handler(behavior)


def _serve(args: argparse.Namespace) -> None:
    hooks: list[Any] = []
    if args.hooks:
        hooks = [_AioHooks() if args.aio else _Hooks()]
    serve(hooks, args.aio, args.port_file)


# --- the clients ---------------------------------------------------------------------------------------

#: Client variants: name -> the metadata each call sends (``None``: none), and whether the call also does
#: the least per-call work of a client mesh.
CLIENTS: dict[str, tuple[Callable[[str], Any] | None, bool]] = {
    "bare": (None, False),
    "trace": (_trace, False),
    "trace+identity": (_trace_identity, False),
    "least": (_trace_identity, True),
}

# (client, server) pairs measured in each round; the first is the baseline of the others.
_PAIRS = (
    ("bare", "bare"),
    ("trace", "bare"),
    ("trace+identity", "bare"),
    ("least", "bare"),
    ("bare", "hooks"),
    ("least", "hooks"),
)


class _Least:
    """The least per-call work of a client mesh around one raw multicallable."""

    def __init__(self, call: Any, metadata: Callable[[str], Any]) -> None:
        self.routes = {METHOD: call}
        self.metadata = metadata
        self.in_flight = 0
        self.histogram = _Histogram()

    def sync(self, request: bytes) -> Any:
        call = self.routes[METHOD]
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return call(request, None, self.metadata(METHOD))
        finally:
            self.in_flight -= 1
            self.histogram.observe((time.perf_counter() - started) * 1000.0)

    async def aio(self, request: bytes) -> Any:
        call = self.routes[METHOD]
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await call(request, metadata=self.metadata(METHOD))
        finally:
            self.in_flight -= 1
            self.histogram.observe((time.perf_counter() - started) * 1000.0)


def _measure_sync(port: int, client: str, n: int, warmup: int) -> list[float]:
    metadata, least = CLIENTS[client]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw: Any = channel.unary_unary(METHOD, _registered_method=True)
        if least:
            assert metadata is not None
            call: Callable[[bytes], Any] = _Least(raw, metadata).sync
        elif metadata is None:
            call = raw
        else:
            with_metadata = metadata

            def call(request: bytes) -> Any:
                return raw(request, None, with_metadata(METHOD))

        for _ in range(warmup):
            call(_REQUEST)
        lat = []
        clock = time.perf_counter
        for _ in range(n):
            t0 = clock()
            call(_REQUEST)
            lat.append(clock() - t0)
        return lat


def _measure_aio(port: int, client: str, n: int, warmup: int) -> list[float]:
    metadata, least = CLIENTS[client]

    async def go() -> list[float]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw: Any = channel.unary_unary(METHOD, _registered_method=True)

            async def call(request: bytes) -> Any:
                if metadata is None:
                    return await raw(request)
                return await raw(request, metadata=metadata(METHOD))

            do = _Least(raw, metadata).aio if least and metadata is not None else call
            for _ in range(warmup):
                await do(_REQUEST)
            lat = []
            clock = time.perf_counter
            for _ in range(n):
                t0 = clock()
                await do(_REQUEST)
                lat.append(clock() - t0)
            return lat

    return asyncio.run(go())


def run(quick: bool = False) -> list[Result]:
    """Rows for ``python -m benchmarks.run``: the p50 of each (client, server) pair, sync and asyncio, each
    read against the bare pair of the same rounds."""
    rounds, n, warmup = (1, 200, 50) if quick else (5, 2000, 200)
    results: list[Result] = []
    for kind, measure in (("sync", _measure_sync), ("aio", _measure_aio)):
        lat: dict[tuple[str, str], list[float]] = {pair: [] for pair in _PAIRS}
        for i in range(rounds):
            for server in ("bare", "hooks") if i % 2 == 0 else ("hooks", "bare"):
                flags = (["--hooks"] if server == "hooks" else []) + (["--aio"] if kind == "aio" else [])
                with serving("benchmarks.grpc_floor", "--serve", *flags) as (port, _pid):
                    for pair in _PAIRS:
                        if pair[1] == server:
                            with pinned_client():
                                lat[pair].append(statistics.median(measure(port, pair[0], n, warmup)))
        base = f"grpc_floor.{kind}.bare.bare"
        for pair in _PAIRS:
            client, server = pair
            name = f"grpc_floor.{kind}.{client}.{server}"
            results.append(
                Result(
                    name,
                    f"grpc {kind}: client {client}, server {server}",
                    statistics.median(lat[pair]),
                    _p(lat[pair], 0.99),
                    len(lat[pair]),
                    baseline=None if name == base else base,
                )
            )
    return with_ratios(results)


def main(argv: Sequence[str] | None = None) -> int:
    """Print each pair's p50 and its ratio to the bare pair (or serve, with ``--serve``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hooks", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--aio", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args)
        return 0
    rows = run(args.quick)
    by_name = {r.name: r for r in rows}
    print(f"{'pair':44} {'p50':>9} {'ratio':>7}")
    for r in rows:
        ratio = f"{r.median / by_name[r.baseline].median:.3f}" if r.baseline else "1.000"
        print(f"{r.label:44} {r.median * 1e6:7.1f}us {ratio:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
