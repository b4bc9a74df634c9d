"""Istio's metadata exchange over gRPC, with the answer left out when the caller knows it: a mesh server
sends its identity in trailing metadata until the caller says (``k=<token>``) that it heard it lately, and
both ends still label every call with the other's workload. Real grpc servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest

from libmesh.adapters import grpc as mesh_grpc
from libmesh.adapters._grpc_aio import _WireMetadata
from libmesh.adapters._grpc_common import PEER_METADATA
from libmesh.telemetry.exchange import peer_token

from .conftest import Start
from .proto import echo_pb2, echo_pb2_grpc
from .support import MODES, Echo, Mode, make_mesh, metric_value, service_entry, unary_many, wait_until


@pytest.mark.parametrize("server", MODES)
@pytest.mark.parametrize("mode", MODES)
def test_a_known_caller_gets_no_identity_trailer_and_both_ends_label_every_call(
    start: Start, mode: Mode, server: Mode
) -> None:
    echo = Echo()
    server_mesh = make_mesh(app="echo", version="v1")
    upstream = start(echo, server, mesh=server_mesh)
    mesh = make_mesh(service_entry([(upstream.port, {"app": "echo", "version": "v1"})]))
    try:
        outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest(payload=str(i)) for i in range(5)])
        assert [o.code for o in outcomes] == [grpc.StatusCode.OK] * 5
        answered = [PEER_METADATA in o.trailing for o in outcomes]
        assert answered == [True, False, False, False, False]
        server_identity = outcomes[0].trailing[PEER_METADATA]
        sent = [seen[PEER_METADATA] for seen in echo.seen]
        assert sent[0] == mesh.peer_header
        assert sent[1:] == [f"{mesh.peer_header},k={peer_token(server_identity)}"] * 4
        labels = {"destination_workload": "echo-v1", "source_workload": "client-v1"}
        assert metric_value(mesh, "istio_requests_total", reporter="source", **labels) == 5
        wait_until(lambda: metric_value(server_mesh, "istio_requests_total") == 5)
        assert metric_value(server_mesh, "istio_requests_total", reporter="destination", **labels) == 5
    finally:
        mesh.close()
        server_mesh.close()


@pytest.mark.parametrize("server", MODES)
def test_a_caller_outside_the_mesh_gets_the_identity_on_every_call(start: Start, server: Mode) -> None:
    server_mesh = make_mesh(app="echo", version="v1")
    upstream = start(Echo(), server, mesh=server_mesh)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{upstream.port}") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)
            for i in range(3):
                _, call = stub.Unary.with_call(echo_pb2.EchoRequest(payload=str(i)))
                assert dict(call.trailing_metadata())[PEER_METADATA] == server_mesh.peer_header
            # A token that names another identity is no reason to leave it out.
            stale = ((PEER_METADATA, "app=x,k=000000000000"),)
            _, call = stub.Unary.with_call(echo_pb2.EchoRequest(payload="s"), metadata=stale)
            assert dict(call.trailing_metadata())[PEER_METADATA] == server_mesh.peer_header
    finally:
        server_mesh.close()


def test_wire_metadata_is_a_full_metadata_to_any_other_reader() -> None:
    entries = (("a", "1"), ("b", "2"), ("c-bin", b"\x00"))
    wire, plain = _WireMetadata(entries), grpc.aio.Metadata(*entries)
    assert isinstance(wire, grpc.aio.Metadata)
    assert tuple(wire) == tuple(plain) == entries
    assert len(wire) == len(plain) == 3
    assert wire == plain
    assert wire["a"] == "1" and wire.get_all("b") == ["2"] and "b" in wire
    wire.add("a", "4")
    plain.add("a", "4")
    assert tuple(wire) == tuple(plain) and len(wire) == 4
    assert repr(wire).endswith(repr(plain).split("(", 1)[1])


def test_wire_metadata_reaches_the_server_as_sent(start: Start) -> None:
    echo = Echo()
    upstream = start(echo, "aio")

    async def main() -> Any:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{upstream.port}") as ch:
            stub = echo_pb2_grpc.EchoStub(ch)
            md = _WireMetadata((("x-one", "1"), ("x-two", "2"), ("x-three", "3")))
            return await stub.Unary(echo_pb2.EchoRequest(payload="p"), metadata=md)

    reply = asyncio.run(main())
    assert reply.payload == "p"
    assert [echo.seen[0][k] for k in ("x-one", "x-two", "x-three")] == ["1", "2", "3"]


def test_app_metadata_with_a_repeated_name_reaches_the_server_in_grpcs_own_order() -> None:
    """grpc.aio groups repeated metadata names; the mesh channel sends the app's metadata as grpc would."""
    seen: list[list[tuple[str, str]]] = []

    class Recorder(grpc.aio.ServerInterceptor):  # type: ignore[misc]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            seen.append([(k, v) for k, v in details.invocation_metadata if k in ("x-one", "x-two")])
            return await continuation(details)

    sent = (("x-one", "1"), ("x-two", "2"), ("x-one", "3"))

    async def call(channel: Any) -> None:
        try:
            await channel.unary_unary("/echo.Echo/Unary")(b"", metadata=sent)
        except grpc.aio.AioRpcError as e:  # nothing serves the method; the metadata arrived first
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED

    async def main() -> None:
        server = grpc.aio.server(interceptors=[Recorder()])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        mesh = make_mesh(service_entry([(port, {"app": "echo", "version": "v1"})]))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                await call(ch)
            async with mesh_grpc.aio_channel(mesh, "echo:50051") as ch:
                await call(ch)
        finally:
            mesh.close()
            await server.stop(None)

    asyncio.run(main())
    assert seen[0] == [("x-one", "1"), ("x-one", "3"), ("x-two", "2")]
    assert seen[1] == seen[0]
