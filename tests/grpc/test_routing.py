"""Acceptance 1: routing per call on the method path, metadata and authority; weights; subsets; metadata
edits; mirroring. Sync and asyncio clients, against sync and asyncio servers."""

from __future__ import annotations

import random
from collections import Counter

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
    make_mesh,
    service_entry,
    subsets,
    unary,
    unary_many,
    virtual_service,
    wait_until,
)


def _two_versions(start: Start) -> tuple[Echo, Echo, str]:
    v1, v2 = Echo("v1"), Echo("v2")
    s1, s2 = start(v1, "sync"), start(v2, "aio")
    return v1, v2, service_entry([(s1.port, {"version": "v1"}), (s2.port, {"version": "v2"})])


@pytest.mark.parametrize("mode", MODES)
def test_metadata_routes_to_v2_and_the_rest_to_v1(start: Start, mode: Mode) -> None:
    v1, v2, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - match: [{headers: {end-user: {exact: jason}}}]
              route: [{destination: {host: echo, subset: v2}}]
            - route: [{destination: {host: echo, subset: v1}}]
            """
        ),
    )
    req = [echo_pb2.EchoRequest(payload=str(i)) for i in range(20)]
    jason = unary_many(mesh, mode, req, metadata=[("end-user", "jason")])
    others = unary_many(mesh, mode, req, metadata=[("end-user", "mary")])
    assert {o.version for o in jason} == {"v2"}
    assert {o.version for o in others} == {"v1"}
    assert v1.count == 20 and v2.count == 20


@pytest.mark.parametrize("mode", MODES)
def test_weighted_50_50_within_4_percent_over_2000_calls(start: Start, mode: Mode) -> None:
    _, _, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - route:
              - {destination: {host: echo, subset: v1}, weight: 50}
              - {destination: {host: echo, subset: v2}, weight: 50}
            """
        ),
        rand=random.Random(2000),
    )
    # Seeded: the mesh draws from a fixed sequence of random numbers (16 concurrent callers share it, so
    # only their interleaving varies), and the share is checked without chance failures (unseeded, +-4 %
    # over 2000 is +-3.6 standard deviations: 1 run in about 2800).
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest()] * 2000, concurrency=16)
    shares = Counter(o.version for o in outcomes)
    assert sum(shares.values()) == 2000
    assert abs(shares["v1"] / 2000 - 0.5) <= 0.04, shares


@pytest.mark.parametrize("mode", MODES)
def test_uri_matches_the_method_path(start: Start, mode: Mode) -> None:
    _, _, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - match: [{uri: {exact: /libmesh.test.Echo/Unary}}]
              route: [{destination: {host: echo, subset: v2}}]
            - match: [{uri: {prefix: /libmesh.test.Echo/}}]
              route: [{destination: {host: echo, subset: v1}}]
            """
        ),
    )
    assert unary(mesh, mode).version == "v2"


@pytest.mark.parametrize("mode", MODES)
def test_authority_match_and_no_route_is_unimplemented(start: Start, mode: Mode) -> None:
    _, _, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - match: [{authority: {exact: "echo:50051"}, uri: {prefix: /libmesh.test.Echo/Un}}]
              route: [{destination: {host: echo, subset: v2}}]
            """
        ),
    )
    assert unary(mesh, mode).version == "v2"
    # No route matches the other methods: Envoy's 404 NR, which gRPC sees as UNIMPLEMENTED.
    with mesh_grpc.channel(mesh, f"{HOST}:50051") as ch, pytest.raises(grpc.RpcError) as info:
        list(echo_pb2_grpc.EchoStub(ch).ServerStream(echo_pb2.EchoRequest()))
    err = info.value
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    assert dict(err.trailing_metadata())[mesh_grpc.FLAGS_METADATA] == "NR"  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
def test_metadata_edits_on_request_and_response(start: Start, mode: Mode) -> None:
    v1, _, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - headers:
                request: {set: {x-set: "yes"}, add: {x-added: "one"}, remove: [x-secret]}
              route: [{destination: {host: echo, subset: v1}}]
            """
        ),
    )
    out = unary(mesh, mode, metadata=[("x-secret", "s"), ("x-keep", "k")])
    seen = v1.seen[-1]
    assert seen["x-set"] == "yes" and seen["x-added"] == "one" and seen["x-keep"] == "k"
    assert "x-secret" not in seen
    assert out.reply.metadata["x-set"] == "yes"


@pytest.mark.parametrize("mode", MODES)
def test_unary_calls_are_mirrored(start: Start, mode: Mode) -> None:
    v1, v2, se = _two_versions(start)
    mesh = make_mesh(
        se,
        subsets("v1", "v2"),
        virtual_service(
            """
            - route: [{destination: {host: echo, subset: v1}}]
              mirror: {host: echo, subset: v2}
              mirrorPercentage: {value: 100}
            """
        ),
    )
    outcomes = unary_many(mesh, mode, [echo_pb2.EchoRequest(payload=str(i)) for i in range(5)])
    assert {o.version for o in outcomes} == {"v1"}
    wait_until(lambda: v2.count == 5)
    assert v1.count == 5
