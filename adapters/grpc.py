"""grpcio channels and server interceptors that run every call through the mesh, sync and asyncio.

Client: a channel to the logical service; generated stubs work on it unchanged::

    mesh = libmesh.Mesh.from_paths("mesh/", workload=libmesh.Workload(name="productpage", ...))
    stub = ratings_pb2_grpc.RatingsStub(libmesh.adapters.grpc.channel(mesh, "ratings:9080"))
    stub.Get(ratings_pb2.GetRequest(id=1), timeout=2.0)

    async with libmesh.adapters.grpc.aio_channel(mesh, "ratings:9080") as ch:
        await ratings_pb2_grpc.RatingsStub(ch).Get(ratings_pb2.GetRequest(id=1))

For each call the mesh picks the route from the method path ``/package.Service/Method`` (VirtualService
``uri`` matches), the metadata (``headers`` matches) and the authority; then the destination, the subset
and the endpoint, and applies the route timeout (as the call's deadline), retries (Istio's gRPC
``retryOn`` values), fault injection, circuit breaking, outlier detection, load balancing, mirroring (unary
calls), metadata edits, propagation and telemetry. It keeps one real channel per endpoint and closes those
idle for the DestinationRule's ``http.idleTimeout`` (Envoy's 1 h by default).

Server: an interceptor records each served call (``reporter="destination"``) and makes the inbound context
(trace, ``baggage``, ``x-request-id``, propagated headers, deadline) current while the servicer runs, so
its own calls through mesh channels or httpx transports carry it::

    server = grpc.server(ThreadPoolExecutor(8), interceptors=[libmesh.adapters.grpc.ServerInterceptor(mesh)])
    server = grpc.aio.server(interceptors=[libmesh.adapters.grpc.AioServerInterceptor(mesh)])

Health: wrap the registry in :class:`HealthCheckedRegistry` to check endpoints with the standard gRPC
health service; a NOT_SERVING endpoint gets no new calls.

See docs/grpc.md for the status mappings and what differs between sync and asyncio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from libmesh.mesh import Mesh

from ._grpc_aio import AioMeshChannel
from ._grpc_common import FLAGS_METADATA, PEER_METADATA, MeshRpcError
from ._grpc_health import HealthCheckedRegistry
from ._grpc_server import AioServerInterceptor, ServerInterceptor
from ._grpc_sync import MeshChannel

__all__ = [
    "FLAGS_METADATA",
    "PEER_METADATA",
    "AioMeshChannel",
    "AioServerInterceptor",
    "HealthCheckedRegistry",
    "MeshChannel",
    "MeshRpcError",
    "ServerInterceptor",
    "aio_channel",
    "channel",
    "register_server",
]


def channel(
    mesh: Mesh,
    target: str,
    *,
    options: Sequence[tuple[str, Any]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    compression: grpc.Compression | None = None,
) -> MeshChannel:
    """A sync :class:`grpc.Channel` to the logical service ``target`` (``"ratings:9080"``) through ``mesh``.

    ``options`` (grpc channel arguments) and ``credentials`` (``grpc.secure_channel`` instead of
    ``grpc.insecure_channel``) apply to every per-endpoint channel::

        stub = EchoStub(channel(mesh, "echo:50051"))
    """
    return MeshChannel(mesh, target, options=options, credentials=credentials, compression=compression)


def aio_channel(
    mesh: Mesh,
    target: str,
    *,
    options: Sequence[tuple[str, Any]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    compression: grpc.Compression | None = None,
) -> AioMeshChannel:
    """A :class:`grpc.aio.Channel` to the logical service ``target`` through ``mesh`` (see :func:`channel`).
    Calls start when first awaited, read, iterated or written to::

        async with aio_channel(mesh, "echo:50051") as ch:
            reply = await EchoStub(ch).Unary(request)
    """
    return AioMeshChannel(mesh, target, options=options, credentials=credentials, compression=compression)


def register_server(server: Any, mesh: Mesh) -> Any:
    """Register the workload in Consul now, as ``mesh.registration`` describes it (opt-in: nothing happens
    without one), and have ``server.stop()`` deregister it before stopping; works for ``grpc.server`` and
    ``grpc.aio.server``. Returns the registration handle (``None`` without a registration)::

        server.start()
        libmesh.adapters.grpc.register_server(server, mesh)
    """
    registration = mesh.registration
    if registration is None:
        return None
    from libmesh.discovery.consul import register_workload

    handle = register_workload(registration, at_exit=True)
    stop = server.stop

    if isinstance(server, grpc.aio.Server):

        async def aio_stop(grace: float | None) -> None:
            handle.close()
            await stop(grace)

        server.stop = aio_stop  # type: ignore[method-assign]
    else:

        def sync_stop(grace: float | None) -> Any:
            handle.close()
            return stop(grace)

        server.stop = sync_stop
    return handle
