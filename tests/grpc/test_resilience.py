"""Acceptance 5 and the per-endpoint channels: outlier detection on gRPC statuses, circuit breaking (UO),
load balancing across endpoint channels, idle channels closed, and active health checking with the
standard gRPC health service."""

from __future__ import annotations

import time
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

import libmesh
from libmesh.adapters import grpc as mesh_grpc
from libmesh.config import load_yaml
from libmesh.discovery.static import StaticRegistry

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
    service_entry,
    unary_many,
    virtual_service,
)

NO_RETRY = "- route: [{destination: {host: echo}}]\n  retries: {attempts: 0}"


def _rule(policy: str) -> str:
    return f"""
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {{name: echo}}
    spec:
      host: echo
      trafficPolicy: {policy}
    """


@pytest.mark.parametrize("mode", MODES)
def test_outlier_detection_ejects_a_server_that_always_answers_unavailable(start: Start, mode: Mode) -> None:
    bad, good = Echo("bad", fail=always(grpc.StatusCode.UNAVAILABLE)), Echo("good")
    b, g = start(bad), start(good, "aio")
    mesh = make_mesh(
        service_entry([(b.port, {}), (g.port, {})]),
        virtual_service(NO_RETRY),
        _rule(
            "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 3, "
            "interval: 10s, baseEjectionTime: 60s, maxEjectionPercent: 100}}"
        ),
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 40)
    failures = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    assert len(failures) == 3  # the three that ejected it
    assert bad.count == 3 and good.count == 37
    assert {o.code for o in failures} == {grpc.StatusCode.UNAVAILABLE}


@pytest.mark.parametrize("mode", MODES)
def test_a_status_mapping_below_500_does_not_eject(start: Start, mode: Mode) -> None:
    missing = Echo("missing", fail=always(grpc.StatusCode.NOT_FOUND))
    s = start(missing)
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service(NO_RETRY),
        _rule(
            "{outlierDetection: {consecutive5xxErrors: 2, interval: 10s, baseEjectionTime: 60s, maxEjectionPercent: 100}}"
        ),
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 6)
    assert {o.code for o in outcomes} == {grpc.StatusCode.NOT_FOUND}  # NOT_FOUND is a 404: never ejected
    assert missing.count == 6


@pytest.mark.parametrize("mode", MODES)
def test_circuit_breaking_overflow_is_unavailable_with_flag_uo(start: Start, mode: Mode) -> None:
    echo = Echo()
    s = start(echo, "aio")
    mesh = make_mesh(
        service_entry([(s.port, {})]),
        virtual_service(NO_RETRY),
        _rule("{connectionPool: {http: {http2MaxRequests: 1}}}"),
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest(delay=0.3)] * 4, concurrency=4)
    overflow = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    assert overflow, "no call overflowed"
    assert {o.code for o in overflow} == {grpc.StatusCode.UNAVAILABLE}
    assert {o.flags for o in overflow} == {"UO"}
    assert echo.count == 4 - len(overflow)
    assert metric_value(mesh, "istio_requests_total", grpc_response_status="14", response_flags="UO") == len(
        overflow
    )


@pytest.mark.parametrize("mode", MODES)
def test_round_robin_across_one_channel_per_endpoint(start: Start, mode: Mode) -> None:
    echoes = [Echo(f"e{i}") for i in range(3)]
    servers = [start(e, "sync" if i % 2 else "aio") for i, e in enumerate(echoes)]
    mesh = make_mesh(
        service_entry([(s.port, {}) for s in servers]),
        virtual_service(NO_RETRY),
        _rule("{loadBalancer: {simple: ROUND_ROBIN}}"),
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 30)
    assert Counter(o.version for o in outcomes) == {"e0": 10, "e1": 10, "e2": 10}


def test_each_endpoint_gets_one_channel_and_idle_ones_are_closed(start: Start) -> None:
    a, b = start(Echo("a")), start(Echo("b"))
    mesh = make_mesh(
        service_entry([(a.port, {}), (b.port, {})]),
        virtual_service(NO_RETRY),
        _rule("{loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {http: {idleTimeout: 0.2s}}}"),
    )
    with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch:
        stub = echo_pb2_grpc.EchoStub(ch)
        for _ in range(6):
            stub.Unary(echo_pb2.EchoRequest())
        assert sorted(p for _, p, _ in ch.endpoints()) == sorted([a.port, b.port])
        assert {auth for _, _, auth in ch.endpoints()} == {"echo:50051"}
        assert ch.close_idle() == 0
        time.sleep(0.3)
        assert ch.close_idle() == 2
        assert ch.endpoints() == []
        assert stub.Unary(echo_pb2.EchoRequest()).version in {"a", "b"}  # reopened on demand
        assert len(ch.endpoints()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_not_serving_endpoint_gets_no_new_calls(mode: Mode) -> None:
    statuses: list[health.HealthServicer] = []

    def with_health(server: grpc.Server) -> None:
        servicer = health.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        statuses.append(servicer)

    up, down = Echo("up"), Echo("down")
    servers = [SyncServer(up, extra=with_health), SyncServer(down, extra=with_health)]
    try:
        config = load_yaml(
            service_entry([(s.port, {}) for s in servers]) + "\n---\n" + virtual_service(NO_RETRY)
        )
        registry = mesh_grpc.HealthCheckedRegistry(
            StaticRegistry.from_config(config), interval=None, timeout=1.0
        )
        mesh = libmesh.Mesh(config, registry=registry, workload=libmesh.Workload(name="client"))
        first = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 10)
        assert {o.version for o in first} == {"up", "down"}
        assert registry.check_now() == frozenset()
        statuses[1].set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert registry.check_now() == {f"127.0.0.1:{servers[1].port}"}
        before = down.count
        later = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 10)
        assert {o.version for o in later} == {"up"}
        assert down.count == before
        statuses[1].set("", health_pb2.HealthCheckResponse.SERVING)
        assert registry.check_now() == frozenset()
        again = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 10)
        assert "down" in {o.version for o in again}
        registry.close()
    finally:
        for s in servers:
            s.stop()
