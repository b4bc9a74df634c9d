"""Acceptance 6 and 7: all four streaming kinds through the mesh, sync and asyncio, with Istio's metrics
(request_protocol="grpc", grpc_response_status, message counts) recorded on both sides."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from libmesh.adapters import grpc as mesh_grpc
from libmesh.adapters._grpc_common import PEER_METADATA
from libmesh.telemetry.exchange import PEER_TTL
from libmesh.telemetry.metrics import Peer, encode_peer

from .conftest import Start
from .proto import echo_pb2, echo_pb2_grpc
from .support import (
    HOST,
    MODES,
    Echo,
    Mode,
    SyncServer,
    always,
    make_mesh,
    metric_value,
    run,
    service_entry,
    unary_many,
    wait_until,
)

REQ = echo_pb2.EchoRequest


def _all_kinds(mesh: Any, mode: Mode) -> dict[str, Any]:
    msgs = [REQ(payload=p) for p in "abcd"]
    if mode == "sync":
        with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)
            return {
                "unary": stub.Unary(REQ(payload="u")).payload,
                "server": [r.index for r in stub.ServerStream(REQ(count=5))],
                "client": stub.ClientStream(iter(msgs)).payload,
                "bidi": [r.payload for r in stub.Bidi(iter(msgs))],
            }

    async def main() -> dict[str, Any]:
        async with mesh_grpc.aio_channel(mesh, f"{HOST}:50051") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)
            call = stub.Bidi()
            for m in msgs[:2]:
                await call.write(m)
                await call.read()
            for m in msgs[2:]:
                await call.write(m)
            await call.done_writing()
            rest = [r.payload async for r in call]
            return {
                "unary": (await stub.Unary(REQ(payload="u"))).payload,
                "server": [r.index async for r in stub.ServerStream(REQ(count=5))],
                "client": (await stub.ClientStream(iter(msgs))).payload,
                "bidi": [r.payload async for r in stub.Bidi(iter(msgs))],
                "bidi_rw": rest,
            }

    return run(main())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["sync", "aio"])
def test_all_four_kinds_pass_through_the_mesh_with_message_counts(
    start: Start, mode: Mode, server: str
) -> None:
    server_mesh = make_mesh(app="echo")
    s = start(Echo(), server, mesh=server_mesh)
    mesh = make_mesh(service_entry([(s.port, {"app": "echo"})]))
    got = _all_kinds(mesh, mode)
    assert got["unary"] == "u"
    assert got["server"] == [0, 1, 2, 3, 4]
    assert got["client"] == "a,b,c,d"
    assert got["bidi"] == ["a", "b", "c", "d"]
    if mode == "aio":
        assert got["bidi_rw"] == ["c", "d"]
    calls = 5 if mode == "aio" else 4
    # The server records a call as its handler returns, which may be just after the client has its answer.
    wait_until(lambda: metric_value(server_mesh, "istio_requests_total") == calls)
    for side, m in (("source", mesh), ("destination", server_mesh)):
        labels = {
            "reporter": side,
            "request_protocol": "grpc",
            "grpc_response_status": "0",
            "response_code": "200",
        }
        assert metric_value(m, "istio_requests_total", **labels) == calls, side
        # Requests: 1 + 1 + 4 + 4 (+ 4 written); responses: 1 + 5 + 1 + 4 (+ 4 read).
        assert metric_value(m, "istio_request_messages_total", **labels) == (14 if mode == "aio" else 10), (
            side
        )
        assert metric_value(m, "istio_response_messages_total", **labels) == (15 if mode == "aio" else 11), (
            side
        )
    # Sizes: the server counts each message's serialized size, as the client counts what it sends and reads.
    for metric in ("istio_request_bytes_sum", "istio_response_bytes_sum"):
        sent = metric_value(mesh, metric, reporter="source")
        assert sent > 0, metric
        assert metric_value(server_mesh, metric, reporter="destination") == sent, metric
    # The two ends know each other: the client labels the destination workload, the server the source.
    assert metric_value(mesh, "istio_requests_total", destination_workload="echo-v1") == calls
    assert metric_value(server_mesh, "istio_requests_total", source_workload="client-v1") == calls


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["sync", "aio"])
def test_unavailable_is_counted_on_both_sides(start: Start, mode: Mode, server: str) -> None:
    server_mesh = make_mesh(app="echo")
    s = start(Echo(fail=always(grpc.StatusCode.UNAVAILABLE)), server, mesh=server_mesh)
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo}\nspec:\n"
        "  hosts: [echo]\n  http: [{route: [{destination: {host: echo}}], retries: {attempts: 0}}]",
    )
    outcomes = unary_many(mesh, mode, [REQ()] * 3)
    assert {o.code for o in outcomes} == {grpc.StatusCode.UNAVAILABLE}
    wait_until(lambda: metric_value(server_mesh, "istio_requests_total") == 3)
    for side, m in (("source", mesh), ("destination", server_mesh)):
        total = metric_value(
            m, "istio_requests_total", reporter=side, request_protocol="grpc", grpc_response_status="14"
        )
        assert total == 3, side
        assert metric_value(m, "istio_requests_total", reporter=side, grpc_response_status="0") == 0


@pytest.mark.parametrize("server", ["sync", "aio"])
def test_a_servicer_that_sets_a_code_without_raising_is_recorded_with_it(start: Start, server: str) -> None:
    server_mesh = make_mesh(app="echo")
    s = start(Echo(), server, mesh=server_mesh)
    mesh = make_mesh(service_entry([(s.port, {})]))
    # The Echo servicer aborts on fail_code; the count of messages sent is 0 for a failed unary call.
    out = unary_many(mesh, "sync", [REQ(fail_code=grpc.StatusCode.NOT_FOUND.value[0])])[0]
    assert out.code == grpc.StatusCode.NOT_FOUND
    labels = {"reporter": "destination", "grpc_response_status": "5"}
    wait_until(lambda: metric_value(server_mesh, "istio_requests_total") == 1)
    assert metric_value(server_mesh, "istio_requests_total", **labels) == 1
    assert metric_value(server_mesh, "istio_response_messages_total", **labels) == 0


def test_a_plain_unary_call_labels_its_destination_with_the_identity_last_answered() -> None:
    """A unary call whose caller wants only the response is made without grpc's call object, so it cannot
    read the endpoint's identity trailer: it reuses what the endpoint answered within PEER_TTL seconds.
    ``with_call`` always reads it, and so does a plain call once that time has passed."""
    who = [encode_peer(Peer(workload="echo-a", namespace="default", app="echo"))]

    def answer(request: bytes, context: Any) -> bytes:
        context.set_trailing_metadata(((PEER_METADATA, who[0]),))
        return request

    def register(server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(answer)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("peer.Who", {"Am": handler}),))

    server = SyncServer(Echo(), extra=register)
    now = [1000.0]
    mesh = make_mesh(service_entry([(server.port, {"app": "echo"})]), clock=lambda: now[0])
    try:
        with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
            call = ch.unary_unary("/peer.Who/Am")
            assert [call(b"x"), call(b"y")] == [b"x", b"y"]
            who[0] = encode_peer(Peer(workload="echo-b", namespace="default", app="echo"))
            call(b"z")  # within the TTL: still labelled echo-a
            assert metric_value(mesh, "istio_requests_total", destination_workload="echo-a") == 3
            call.with_call(b"w")  # reads the trailer whatever the time
            assert metric_value(mesh, "istio_requests_total", destination_workload="echo-b") == 1
            who[0] = encode_peer(Peer(workload="echo-c", namespace="default", app="echo"))
            now[0] += PEER_TTL + 0.1
            call(b"v")
            call(b"u")
            assert metric_value(mesh, "istio_requests_total", destination_workload="echo-c") == 2
    finally:
        server.stop()
        mesh.close()


async def _echo_bytes(request: bytes, context: Any) -> bytes:
    return request + b"!"


def _raw_handler(behavior: Any) -> grpc.GenericRpcHandler:
    """One unary method served without serializers: raw bytes in and out."""
    return grpc.method_handlers_generic_handler(
        "raw.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(behavior)}
    )


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_raw_bytes_messages_are_counted_by_their_length_on_both_sides(kind: str) -> None:
    server_mesh = make_mesh(app="echo")
    request = b"x" * 40
    meshes: list[Any] = []

    def client(port: int) -> Any:
        mesh = make_mesh(service_entry([(port, {})]))
        meshes.append(mesh)
        return mesh

    if kind == "sync":
        server = grpc.server(ThreadPoolExecutor(2), interceptors=[mesh_grpc.ServerInterceptor(server_mesh)])
        server.add_generic_rpc_handlers((_raw_handler(lambda req, ctx: req + b"!"),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with mesh_grpc.channel(client(port), f"{HOST}:50051") as ch:
                assert ch.unary_unary("/raw.Echo/Unary")(request) == request + b"!"
        finally:
            server.stop(None)
    else:

        async def main() -> None:
            server = grpc.aio.server(interceptors=[mesh_grpc.AioServerInterceptor(server_mesh)])
            server.add_generic_rpc_handlers((_raw_handler(_echo_bytes),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with mesh_grpc.aio_channel(client(port), f"{HOST}:50051") as ch:
                    assert await ch.unary_unary("/raw.Echo/Unary")(request) == request + b"!"
            finally:
                await server.stop(None)

        run(main())
    wait_until(lambda: metric_value(server_mesh, "istio_requests_total") == 1)
    for m, side in ((meshes[0], "source"), (server_mesh, "destination")):
        assert metric_value(m, "istio_request_bytes_sum", reporter=side) == len(request), side
        assert metric_value(m, "istio_response_bytes_sum", reporter=side) == len(request) + 1, side
