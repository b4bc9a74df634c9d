"""Acceptance 2: Istio's gRPC retryOn values, retried only before the first response message; request
streams that cannot be replayed are never retried."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest

from libmesh.adapters import grpc as mesh_grpc

from .conftest import Start
from .proto import echo_pb2, echo_pb2_grpc
from .support import (
    HOST,
    MODES,
    Echo,
    Mode,
    always,
    every_other,
    make_mesh,
    metric_value,
    run,
    service_entry,
    unary_many,
    virtual_service,
)

RETRY_3 = """
- route: [{destination: {host: echo}}]
  retries: {attempts: 3, retryOn: unavailable}
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["sync", "aio"])
def test_unavailable_from_a_half_failing_server_is_retried(start: Start, mode: Mode, server: str) -> None:
    echo = Echo("v1", fail=every_other(grpc.StatusCode.UNAVAILABLE))
    s = start(echo, server)
    mesh = make_mesh(service_entry([(s.port, {"version": "v1"})]), virtual_service(RETRY_3))
    # Sequential calls: the server's every-other failure then hits each call at most once.
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 100)
    ok = sum(o.code == grpc.StatusCode.OK for o in outcomes)
    assert ok / 100 >= 0.99
    assert echo.count == 200  # every call: one failure, one retry
    assert metric_value(mesh, "istio_requests_total", reporter="source", grpc_response_status="0") == ok


@pytest.mark.parametrize("mode", MODES)
def test_a_status_not_in_retry_on_is_not_retried(start: Start, mode: Mode) -> None:
    echo = Echo("v1", fail=always(grpc.StatusCode.NOT_FOUND))
    s = start(echo)
    mesh = make_mesh(service_entry([(s.port, {})]), virtual_service(RETRY_3))
    out = unary_many(mesh, mode, [echo_pb2.EchoRequest()])[0]
    assert out.code == grpc.StatusCode.NOT_FOUND
    assert echo.count == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_connection_is_a_connect_failure_and_retried(start: Start, mode: Mode) -> None:
    good = Echo("v1")
    s = start(good)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    mesh = make_mesh(
        service_entry([(dead, {}), (s.port, {})]),
        virtual_service(
            """
            - route: [{destination: {host: echo}}]
              retries: {attempts: 3, retryOn: connect-failure}
            """
        ),
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: echo}
        spec: {host: echo, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
        """,
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 6)
    assert all(o.code == grpc.StatusCode.OK for o in outcomes)
    assert good.count == 6


def _stream(mesh: Any, mode: Mode, req: Any) -> tuple[list[int], grpc.StatusCode]:
    if mode == "sync":
        with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
            got: list[int] = []
            try:
                for r in echo_pb2_grpc.EchoStub(ch).ServerStream(req):
                    got.append(r.index)
            except grpc.RpcError as e:
                return got, e.code()  # type: ignore[attr-defined]
            return got, grpc.StatusCode.OK

    async def main() -> tuple[list[int], grpc.StatusCode]:
        async with mesh_grpc.aio_channel(mesh, f"{HOST}:50051") as ch:
            got: list[int] = []
            try:
                async for r in echo_pb2_grpc.EchoStub(ch).ServerStream(req):
                    got.append(r.index)
            except grpc.aio.AioRpcError as e:
                return got, e.code()
            return got, grpc.StatusCode.OK

    return run(main())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["sync", "aio"])
def test_a_stream_that_already_sent_a_message_is_not_retried(start: Start, mode: Mode, server: str) -> None:
    echo = Echo("v1")
    s = start(echo, server)
    mesh = make_mesh(service_entry([(s.port, {})]), virtual_service(RETRY_3))
    got, code = _stream(mesh, mode, echo_pb2.EchoRequest(count=3, fail_code=14, fail_after=1))
    assert (got, code) == ([0], grpc.StatusCode.UNAVAILABLE)
    assert echo.count == 1
    assert metric_value(mesh, "istio_response_messages_total", grpc_response_status="14") == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_failing_before_its_first_message_is_retried(start: Start, mode: Mode) -> None:
    echo = Echo("v1", fail=lambda i: 14 if i == 0 else None)
    s = start(echo)
    mesh = make_mesh(service_entry([(s.port, {})]), virtual_service(RETRY_3))
    got, code = _stream(mesh, mode, echo_pb2.EchoRequest(count=3))
    assert (got, code) == ([0, 1, 2], grpc.StatusCode.OK)
    assert echo.count == 2


def _client_stream(mesh: Any, mode: Mode, requests: Any) -> grpc.StatusCode:
    if mode == "sync":
        with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
            try:
                echo_pb2_grpc.EchoStub(ch).ClientStream(requests)
            except grpc.RpcError as e:
                return e.code()  # type: ignore[attr-defined, no-any-return]
            return grpc.StatusCode.OK

    async def main() -> grpc.StatusCode:
        async with mesh_grpc.aio_channel(mesh, f"{HOST}:50051") as ch:
            try:
                await echo_pb2_grpc.EchoStub(ch).ClientStream(requests)
            except grpc.aio.AioRpcError as e:
                return e.code()
            return grpc.StatusCode.OK

    return run(main())


@pytest.mark.parametrize("mode", MODES)
def test_a_request_stream_is_retried_only_when_it_can_be_replayed(start: Start, mode: Mode) -> None:
    echo = Echo("v1", fail=lambda i: 14 if i < 2 else None)
    s = start(echo)
    mesh = make_mesh(service_entry([(s.port, {})]), virtual_service(RETRY_3))
    messages = [echo_pb2.EchoRequest(payload=p) for p in "abc"]
    # A generator is sent once: the failure stands.
    assert _client_stream(mesh, mode, (m for m in messages)) == grpc.StatusCode.UNAVAILABLE
    assert echo.count == 1
    # A list can be sent again.
    assert _client_stream(mesh, mode, messages) == grpc.StatusCode.OK
    assert echo.count == 3
