"""Acceptance 3 and 4: the route timeout is the call's deadline, capped by the caller's and by the inbound
deadline; fault aborts (grpcStatus, httpStatus mapped as Envoy maps it) and delays."""

from __future__ import annotations

import grpc
import pytest

from .conftest import Start
from .proto import echo_pb2
from .support import MODES, Echo, Mode, make_mesh, metric_value, service_entry, unary, virtual_service


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["sync", "aio"])
def test_route_timeout_gives_deadline_exceeded(start: Start, mode: Mode, server: str) -> None:
    s = start(Echo(), server)
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service("- route: [{destination: {host: echo}}]\n  timeout: 200ms"),
    )
    out = unary(mesh, mode, echo_pb2.EchoRequest(delay=1.0))
    assert out.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.2 <= out.elapsed <= 0.3, out.elapsed
    assert metric_value(mesh, "istio_requests_total", grpc_response_status="4", response_flags="UT") == 1


@pytest.mark.parametrize("mode", MODES)
def test_the_callers_shorter_deadline_wins(start: Start, mode: Mode) -> None:
    echo = Echo()
    s = start(echo)
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service("- route: [{destination: {host: echo}}]\n  timeout: 5s"),
    )
    out = unary(mesh, mode, echo_pb2.EchoRequest(), timeout=1.0)
    assert out.code == grpc.StatusCode.OK
    # grpc may round the deadline up a little on the wire; what matters is that it is not the route's 5 s.
    assert 0.0 < out.reply.time_remaining <= 1.05
    out = unary(mesh, mode, echo_pb2.EchoRequest(delay=1.0), timeout=0.15)
    assert out.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert out.elapsed < 0.5


@pytest.mark.parametrize("server", ["sync", "aio"])
def test_a_nested_call_gets_the_shorter_remaining_deadline(start: Start, server: str) -> None:
    # client -> front (mesh server interceptor) -> echo. The front's own outbound call has a 5 s route
    # timeout, but the inbound call has only 2 s left: that is what echo sees.
    back = Echo("back")
    b = start(back, server)
    front_mesh = make_mesh(
        service_entry([(b.port, {})]),
        virtual_service("- route: [{destination: {host: echo}}]\n  timeout: 5s"),
        app="front",
    )
    f = start(Echo("front"), server, mesh=front_mesh)
    client_mesh = make_mesh(service_entry([(f.port, {})]), app="client")
    # 2 s: short against the route's 5 s, long enough for a loaded CI machine to make both hops.
    out = unary(client_mesh, "sync", echo_pb2.EchoRequest(nested_target="echo:50051"), timeout=2.0)
    assert out.code == grpc.StatusCode.OK, out.details
    version, remaining, request_id = out.reply.nested.split(":")
    assert version == "back"
    # Without the inbound deadline the nested call would have had its route timeout, 5 s. (grpc rounds the
    # deadline it puts on the wire up by a few milliseconds.)
    assert 0.0 < float(remaining) <= 2.05
    # The inbound call's x-request-id travelled to the nested call.
    assert request_id and request_id == back.seen[-1]["x-request-id"]


FAULT = """
- route: [{{destination: {{host: echo}}}}]
  retries: {{attempts: 3, retryOn: "unavailable,5xx"}}
  fault: {{abort: {{{abort}, percentage: {{value: 100}}}}}}
"""


@pytest.mark.parametrize("mode", MODES)
def test_fault_abort_grpc_status_never_reaches_the_server_and_is_not_retried(
    start: Start, mode: Mode
) -> None:
    echo = Echo()
    s = start(echo)
    mesh = make_mesh(
        service_entry([(s.port, {})]), virtual_service(FAULT.format(abort="grpcStatus: UNAVAILABLE"))
    )
    out = unary(mesh, mode)
    assert out.code == grpc.StatusCode.UNAVAILABLE
    assert out.flags == "FI"
    assert echo.count == 0
    assert metric_value(mesh, "istio_requests_total", grpc_response_status="14", response_flags="FI") == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (503, grpc.StatusCode.UNAVAILABLE),
        (504, grpc.StatusCode.UNAVAILABLE),
        (429, grpc.StatusCode.UNAVAILABLE),
        (404, grpc.StatusCode.UNIMPLEMENTED),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (400, grpc.StatusCode.INTERNAL),
        (500, grpc.StatusCode.UNKNOWN),
    ],
)
def test_fault_abort_http_status_is_mapped_as_envoy_maps_it(
    start: Start, mode: Mode, http_status: int, code: grpc.StatusCode
) -> None:
    echo = Echo()
    s = start(echo)
    mesh = make_mesh(
        service_entry([(s.port, {})]), virtual_service(FAULT.format(abort=f"httpStatus: {http_status}"))
    )
    out = unary(mesh, mode)
    assert out.code == code
    assert echo.count == 0


@pytest.mark.parametrize("mode", MODES)
def test_fault_delay(start: Start, mode: Mode) -> None:
    s = start(Echo())
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service(
            """
            - route: [{destination: {host: echo}}]
              fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}
            """
        ),
    )
    out = unary(mesh, mode)
    assert out.code == grpc.StatusCode.OK
    assert out.elapsed >= 0.2
    assert metric_value(mesh, "istio_requests_total", grpc_response_status="0", response_flags="DI") == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_delay_longer_than_the_callers_timeout_ends_at_the_callers_deadline(
    start: Start, mode: Mode
) -> None:
    """A 3 s delay fault against a caller with timeout=0.3: the caller gets DEADLINE_EXCEEDED at 0.3 s, as
    its gRPC library would raise it in front of a sidecar holding the call; the server is never reached and
    the call is recorded as the client going away (flags DI,DC)."""
    echo = Echo()
    s = start(echo)
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service(
            """
            - route: [{destination: {host: echo}}]
              fault: {delay: {fixedDelay: 3s, percentage: {value: 100}}}
            """
        ),
    )
    out = unary(mesh, mode, timeout=0.3)
    assert out.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 < out.elapsed < 1.0
    assert echo.count == 0
    assert metric_value(mesh, "istio_requests_total", response_flags="DI,DC") == 1
