"""Acceptance 4: circuit breaking from a DestinationRule connectionPool. Requests beyond the limits get an
immediate 503 with response flag UO; retries beyond maxRetries or the retry budget are not made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from libmesh import Mesh
from libmesh.adapters.httpx import AsyncMeshTransport, MeshTransport

from .conftest import Serve
from .support import (
    MODES,
    Answer,
    Mode,
    Req,
    Result,
    Upstream,
    call,
    call_many,
    first,
    make_mesh,
    run,
    service_entry,
    slow,
)

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _rules(traffic_policy: str, retries: str = "{attempts: 0}") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy: {traffic_policy}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    retries: {retries}
"""


def _burst_async(mesh: Mesh, n: int) -> list[Result]:
    async def main() -> list[Result]:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:

            async def one() -> Result:
                start = time.monotonic()
                r = await client.get(URL)
                return Result(r.status_code, r.headers, r.content, time.monotonic() - start)

            return list(await asyncio.gather(*(one() for _ in range(n))))

    return run(main())


def _burst_threads(mesh: Mesh, n: int) -> list[Result]:
    with httpx.Client(transport=MeshTransport(mesh)) as client, ThreadPoolExecutor(n) as pool:

        def one(_: int) -> Result:
            start = time.monotonic()
            r = client.get(URL)
            return Result(r.status_code, r.headers, r.content, time.monotonic() - start)

        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("burst", [_burst_async, _burst_threads], ids=["asyncio", "threads"])
def test_http2_max_requests_1_with_10_concurrent_slow_requests(
    serve: Serve, burst: Callable[[Mesh, int], list[Result]]
) -> None:
    upstream = Upstream("slow", slow(0.3))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _rules("{connectionPool: {http: {http2MaxRequests: 1}}}"),
    )
    results = burst(mesh, 10)
    overflowed = [r for r in results if r.status == 503]
    assert len(overflowed) == 9
    assert {r.flags for r in overflowed} == {"UO"}
    assert all(r.elapsed < 0.15 for r in overflowed), [r.elapsed for r in overflowed]
    assert [r.status for r in results if r.status != 503] == [200]
    assert upstream.count == 1
    # The slot is given back when the call ends.
    assert call(mesh, "sync", URL).status == 200


@pytest.mark.parametrize("mode", MODES)
def test_max_connections_plus_pending_requests_bound_the_calls_in_flight(serve: Serve, mode: Mode) -> None:
    """tcp.maxConnections 2 and http1MaxPendingRequests 1: three calls may be in flight, the rest overflow."""
    upstream = Upstream("slow", slow(0.3))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _rules("{connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 1}}}"),
    )
    results = call_many(mesh, mode, [Req(URL)] * 10, concurrency=10)
    assert sorted(r.status for r in results) == [200] * 3 + [503] * 7
    assert {r.flags for r in results if r.status == 503} == {"UO"}
    assert upstream.count == 3


def test_limits_are_per_destination(serve: Serve) -> None:
    """The limit of one service does not throttle another."""
    upstream, other = Upstream("slow", slow(0.3)), Upstream("other", slow(0.3))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        service_entry("ratings.default.svc.cluster.local", [(serve(other), {"app": "ratings"})]),
        _rules("{connectionPool: {http: {http2MaxRequests: 1}}}"),
    )
    reqs = [Req(URL), Req(URL), Req("http://ratings:9080/"), Req("http://ratings:9080/")]
    results = call_many(mesh, "async", reqs, concurrency=4)
    assert [r.status for r in results] == [200, 503, 200, 200]


@pytest.mark.parametrize(
    "policy",
    [
        "{connectionPool: {http: {maxRetries: 1}}}",
        "{retryBudget: {percent: 0, minRetryConcurrency: 1}}",
    ],
    ids=["maxRetries", "retryBudget"],
)
def test_concurrent_retries_are_capped(serve: Serve, policy: str) -> None:
    """Five calls fail together; only one retry may be in flight at a time, so one call retries (up to
    URX) and the four refused a retry keep their 503 with UO, as Envoy flags a retry overflow."""
    upstream = Upstream("down", slow(0.1, 503))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _rules(policy, "{attempts: 3, retryOn: 5xx}"),
    )
    results = call_many(mesh, "async", [Req(URL)] * 5, concurrency=5)
    assert all(r.status == 503 for r in results)
    assert sorted(r.flags for r in results) == ["UO", "UO", "UO", "UO", "URX"]
    assert upstream.count == 5 + 3


def test_retry_budget_scales_with_requests_in_flight(serve: Serve) -> None:
    """retryBudget 50 % with a floor of 1: with 6 calls in flight, 3 retries may run at once."""
    upstream = Upstream("down", slow(0.2, 503))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _rules(
            "{retryBudget: {percent: 50, minRetryConcurrency: 1}}",
            "{attempts: 1, retryOn: 5xx, backoff: 1ms}",
        ),
    )
    results = call_many(mesh, "async", [Req(URL)] * 6, concurrency=6)
    # Without the budget all six would retry; with it, two or three do and the rest are refused (UO).
    assert 6 + 1 <= upstream.count <= 6 + 3
    assert sum(r.flags == "UO" for r in results) == 12 - upstream.count
    assert sum(r.flags == "URX" for r in results) == upstream.count - 6


def test_a_cancelled_call_gives_its_slot_back_and_is_recorded_dc(serve: Serve) -> None:
    """The app gives up on a call (asyncio.wait_for): the request slot and the endpoint's active count are
    released, so the next call is not refused, and the call is recorded once as a downstream disconnect."""
    upstream = Upstream("u", first(1, Answer(delay=1.0)))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _rules("{connectionPool: {http: {http2MaxRequests: 1}}}"),
    )

    async def main() -> int:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(URL), 0.1)
            return (await client.get(URL)).status_code

    assert run(main()) == 200
    (cluster,) = mesh.clusters().values()
    stats = cluster.stats()
    assert (stats.active_requests, stats.active_by_endpoint) == (0, {})
    text = mesh.metrics_exposition()[0].decode()
    assert 'response_code="0"' in text and 'response_flags="DC"' in text
