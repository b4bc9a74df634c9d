"""Shared pieces of the gRPC data-plane tests: the Echo servicer (sync and asyncio), real grpc servers on
127.0.0.1, mesh configuration, and callers that use libmesh's real mesh channels.

Nothing of libmesh's request path is replaced: servers are real ``grpc.server``/``grpc.aio.server``
instances, clients use the generated stubs on :func:`libmesh.adapters.grpc.channel`/``aio_channel``.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import grpc
import grpc.aio

import libmesh
from libmesh.adapters import grpc as mesh_grpc
from libmesh.config import load_yaml

from .proto import echo_pb2, echo_pb2_grpc

T = TypeVar("T")
Mode = Literal["sync", "aio"]
MODES: tuple[Mode, ...] = ("sync", "aio")
HOST = "echo"
SERVICE = "echo.default.svc.cluster.local"

#: A failure policy: given the 0-based index of the call this server receives, the status code to fail with
#: (``None``: answer normally).
FailPolicy = Callable[[int], int | None]


def never(index: int) -> int | None:
    """Never fail."""
    return None


def always(code: grpc.StatusCode) -> FailPolicy:
    """Always fail with ``code``."""
    return lambda index: code.value[0]


def every_other(code: grpc.StatusCode) -> FailPolicy:
    """A deterministic 50 % failure: the 1st, 3rd, 5th... call fails with ``code``."""
    return lambda index: code.value[0] if index % 2 == 0 else None


@dataclass
class Echo:
    """One upstream's behaviour and what it saw: its version label, a failure policy and the metadata of
    every call it received. ``mesh`` (optional) makes the servers it runs use the mesh's interceptor and lets
    handlers make nested calls through ``nested`` (a mesh channel factory)."""

    version: str = "v1"
    fail: FailPolicy = never
    seen: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arrive(self, context: Any) -> tuple[int, dict[str, str]]:
        md: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if isinstance(value, str):
                md[key] = f"{md[key]},{value}" if key in md else value
        with self.lock:
            index = len(self.seen)
            self.seen.append(md)
        return index, md

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def reply(self, req: Any, md: Mapping[str, str], context: Any, index: int = 0, nested: str = "") -> Any:
        remaining = context.time_remaining()
        return echo_pb2.EchoReply(
            payload=req.payload,
            version=self.version,
            index=index,
            metadata=dict(md),
            time_remaining=-1.0 if remaining is None else remaining,
            nested=nested,
        )


class SyncEcho(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
    """The Echo service on a thread-pool server."""

    def __init__(self, echo: Echo, nested: Callable[[str], Any] | None = None) -> None:
        self.echo = echo
        self.nested = nested

    def _fail(self, req: Any, index: int, context: Any) -> None:
        code = req.fail_code or self.echo.fail(index)
        if code:
            context.abort(_status(code), f"{self.echo.version} fails as asked")

    def Unary(self, req: Any, context: Any) -> Any:
        index, md = self.echo.arrive(context)
        if req.delay:
            time.sleep(req.delay)
        self._fail(req, index, context)
        nested = ""
        if req.nested_target and self.nested is not None:
            stub = echo_pb2_grpc.EchoStub(self.nested(req.nested_target))
            inner = stub.Unary(echo_pb2.EchoRequest(payload="nested", delay=req.delay))
            nested = f"{inner.version}:{inner.time_remaining:.3f}:{inner.metadata.get('x-request-id', '')}"
        return self.echo.reply(req, md, context, nested=nested)

    def ServerStream(self, req: Any, context: Any) -> Any:
        index, md = self.echo.arrive(context)
        count = req.count or 3
        code = req.fail_code or self.echo.fail(index)
        for i in range(count):
            if code and i == req.fail_after:
                context.abort(_status(code), "stream fails as asked")
            if req.delay:
                time.sleep(req.delay)
            yield self.echo.reply(req, md, context, i)
        if code and req.fail_after >= count:
            context.abort(_status(code), "stream fails as asked")

    def ClientStream(self, requests: Any, context: Any) -> Any:
        index, _md = self.echo.arrive(context)
        payloads = [r.payload for r in requests]
        code = self.echo.fail(index)
        if code:
            context.abort(_status(code), "fails as asked")
        return echo_pb2.EchoReply(payload=",".join(payloads), version=self.echo.version, index=len(payloads))

    def Bidi(self, requests: Any, context: Any) -> Any:
        index, _md = self.echo.arrive(context)
        code = self.echo.fail(index)
        if code:
            context.abort(_status(code), "fails as asked")
        for i, r in enumerate(requests):
            yield echo_pb2.EchoReply(payload=r.payload, version=self.echo.version, index=i)


class AioEcho(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
    """The Echo service on an asyncio server."""

    def __init__(self, echo: Echo, nested: Callable[[str], Any] | None = None) -> None:
        self.echo = echo
        self.nested = nested

    async def _fail(self, req: Any, index: int, context: Any) -> None:
        code = req.fail_code or self.echo.fail(index)
        if code:
            await context.abort(_status(code), f"{self.echo.version} fails as asked")

    async def Unary(self, req: Any, context: Any) -> Any:
        index, md = self.echo.arrive(context)
        if req.delay:
            await asyncio.sleep(req.delay)
        await self._fail(req, index, context)
        nested = ""
        if req.nested_target and self.nested is not None:
            stub = echo_pb2_grpc.EchoStub(self.nested(req.nested_target))
            inner = await stub.Unary(echo_pb2.EchoRequest(payload="nested", delay=req.delay))
            nested = f"{inner.version}:{inner.time_remaining:.3f}:{inner.metadata.get('x-request-id', '')}"
        return self.echo.reply(req, md, context, nested=nested)

    async def ServerStream(self, req: Any, context: Any) -> Any:
        index, md = self.echo.arrive(context)
        count = req.count or 3
        code = req.fail_code or self.echo.fail(index)
        for i in range(count):
            if code and i == req.fail_after:
                await context.abort(_status(code), "stream fails as asked")
            if req.delay:
                await asyncio.sleep(req.delay)
            yield self.echo.reply(req, md, context, i)
        if code and req.fail_after >= count:
            await context.abort(_status(code), "stream fails as asked")

    async def ClientStream(self, requests: Any, context: Any) -> Any:
        index, _md = self.echo.arrive(context)
        payloads = [r.payload async for r in requests]
        code = self.echo.fail(index)
        if code:
            await context.abort(_status(code), "fails as asked")
        return echo_pb2.EchoReply(payload=",".join(payloads), version=self.echo.version, index=len(payloads))

    async def Bidi(self, requests: Any, context: Any) -> Any:
        index, _md = self.echo.arrive(context)
        code = self.echo.fail(index)
        if code:
            await context.abort(_status(code), "fails as asked")
        i = 0
        async for r in requests:
            yield echo_pb2.EchoReply(payload=r.payload, version=self.echo.version, index=i)
            i += 1


def _status(code: int) -> grpc.StatusCode:
    return {s.value[0]: s for s in grpc.StatusCode}[code]


# --- servers --------------------------------------------------------------------------------------------


class SyncServer:
    """A real ``grpc.server`` on 127.0.0.1 serving one :class:`Echo` (with the mesh's interceptor when a
    mesh is given)."""

    def __init__(
        self, echo: Echo, mesh: libmesh.Mesh | None = None, extra: Callable[[grpc.Server], None] | None = None
    ) -> None:
        interceptors = [mesh_grpc.ServerInterceptor(mesh)] if mesh is not None else []
        self.server = grpc.server(ThreadPoolExecutor(max_workers=16), interceptors=interceptors)
        nested = (lambda target: mesh_grpc.channel(mesh, target)) if mesh is not None else None
        echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(echo, nested), self.server)
        if extra is not None:
            extra(self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(None)


class AioServer:
    """A real ``grpc.aio.server`` on 127.0.0.1, on its own event loop in a thread."""

    def __init__(self, echo: Echo, mesh: libmesh.Mesh | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="aio-echo")
        self._thread.start()
        self.mesh = mesh
        self._channels: dict[str, Any] = {}
        self.port = asyncio.run_coroutine_threadsafe(self._start(echo, mesh), self.loop).result(10)

    def _nested(self, target: str) -> Any:
        assert self.mesh is not None
        if target not in self._channels:
            self._channels[target] = mesh_grpc.aio_channel(self.mesh, target)
        return self._channels[target]

    async def _start(self, echo: Echo, mesh: libmesh.Mesh | None) -> int:
        interceptors = [mesh_grpc.AioServerInterceptor(mesh)] if mesh is not None else []
        self.server = grpc.aio.server(interceptors=interceptors)
        echo_pb2_grpc.add_EchoServicer_to_server(
            AioEcho(echo, self._nested if mesh is not None else None), self.server
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def stop(self) -> None:
        async def stop() -> None:
            for ch in self._channels.values():
                await ch.close()
            await self.server.stop(None)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


# --- configuration --------------------------------------------------------------------------------------


def service_entry(endpoints: Sequence[tuple[int, Mapping[str, str]]], *, port: int = 50051) -> str:
    """A ServiceEntry for ``echo`` (gRPC on ``port``) with STATIC endpoints on 127.0.0.1."""
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: ServiceEntry",
        "metadata: {name: echo}",
        "spec:",
        f"  hosts: [{SERVICE}]",
        f"  ports: [{{number: {port}, name: grpc, protocol: GRPC}}]",
        "  resolution: STATIC",
        "  endpoints:",
    ]
    for real_port, labels in endpoints:
        label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
        lines.append(f"  - {{address: 127.0.0.1, ports: {{grpc: {real_port}}}, labels: {{{label_text}}}}}")
    return "\n".join(lines)


def subsets(*versions: str, traffic_policy: str = "") -> str:
    """A DestinationRule for ``echo`` with one subset per version label (and an optional trafficPolicy,
    written as YAML at the spec's indentation)."""
    subset_text = ", ".join(f"{{name: {v}, labels: {{version: {v}}}}}" for v in versions)
    policy = textwrap.indent(textwrap.dedent(traffic_policy).strip(), "  ") if traffic_policy else ""
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo}\nspec:\n"
        f"  host: echo\n  subsets: [{subset_text}]\n" + (f"{policy}\n" if policy else "")
    )


def virtual_service(http: str) -> str:
    """A VirtualService for ``echo`` with the given ``http`` routes (YAML list items, dedented)."""
    body = textwrap.indent(textwrap.dedent(http).strip(), "  ")
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo}\nspec:\n"
        f"  hosts: [echo]\n  http:\n{body}\n"
    )


def make_mesh(*docs: str, app: str = "client", version: str = "v1", **kwargs: Any) -> libmesh.Mesh:
    """A mesh for workload ``{app}-{version}`` in ``default`` from YAML documents."""
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in docs if d.strip())
    workload = libmesh.Workload(
        name=f"{app}-{version}", namespace="default", labels={"app": app, "version": version}
    )
    return libmesh.Mesh(load_yaml(text), workload=workload, **kwargs)


# --- callers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The result of one call as the app saw it: the reply (or ``None``), the status and its details, the
    trailing metadata and the elapsed seconds."""

    reply: Any
    code: grpc.StatusCode
    details: str
    trailing: dict[str, str]
    elapsed: float

    @property
    def version(self) -> str | None:
        return self.reply.version if self.reply is not None else None

    @property
    def flags(self) -> str:
        return self.trailing.get(mesh_grpc.FLAGS_METADATA, "-")


def _trailing(md: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in md or ():
        key, value = item[0], item[1]
        if isinstance(value, str):
            out[key] = value
    return out


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop."""
    return asyncio.run(coro)


def unary_many(
    mesh: libmesh.Mesh,
    mode: Mode,
    requests: Sequence[Any],
    *,
    metadata: Sequence[tuple[str, str]] | None = None,
    timeout: float | None = None,
    concurrency: int = 1,
) -> list[Outcome]:
    """Make the unary ``requests`` through a mesh channel to ``echo:50051`` and return their outcomes."""
    if mode == "sync":
        with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)

            def one(req: Any) -> Outcome:
                t0 = time.monotonic()
                try:
                    reply, call = stub.Unary.with_call(req, metadata=metadata, timeout=timeout)
                    return Outcome(
                        reply,
                        call.code(),
                        call.details() or "",
                        _trailing(call.trailing_metadata()),
                        time.monotonic() - t0,
                    )
                except grpc.RpcError as e:
                    err: Any = e
                    return Outcome(
                        None,
                        err.code(),
                        err.details() or "",
                        _trailing(err.trailing_metadata()),
                        time.monotonic() - t0,
                    )

            if concurrency == 1:
                return [one(r) for r in requests]
            with ThreadPoolExecutor(concurrency) as pool:
                return list(pool.map(one, requests))

    async def main() -> list[Outcome]:
        async with mesh_grpc.aio_channel(mesh, f"{HOST}:50051") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)
            sem = asyncio.Semaphore(concurrency)

            async def one(req: Any) -> Outcome:
                async with sem:
                    t0 = time.monotonic()
                    call = stub.Unary(req, metadata=metadata, timeout=timeout)
                    try:
                        reply = await call
                    except grpc.aio.AioRpcError as e:
                        return Outcome(
                            None,
                            e.code(),
                            e.details() or "",
                            _trailing(e.trailing_metadata()),
                            time.monotonic() - t0,
                        )
                    return Outcome(
                        reply,
                        await call.code(),
                        await call.details() or "",
                        _trailing(await call.trailing_metadata()),
                        time.monotonic() - t0,
                    )

            return list(await asyncio.gather(*(one(r) for r in requests)))

    return run(main())


def unary(mesh: libmesh.Mesh, mode: Mode, req: Any = None, **kwargs: Any) -> Outcome:
    """One unary call (see :func:`unary_many`)."""
    return unary_many(mesh, mode, [req if req is not None else echo_pb2.EchoRequest(payload="hi")], **kwargs)[
        0
    ]


def metric_value(mesh: libmesh.Mesh, name: str, **labels: str) -> float:
    """The sum of ``name`` samples (from the mesh's Prometheus registry) whose labels include ``labels``."""
    assert mesh.metrics is not None
    total = 0.0
    for family in mesh.metrics.registry.collect():
        for sample in family.samples:
            if sample.name != name:
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``condition`` until it holds (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
