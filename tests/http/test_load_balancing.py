"""Load balancing over real endpoints: ROUND_ROBIN, RANDOM, LEAST_REQUEST (the default), endpoint weights,
and consistent hashing on a header, a cookie, a query parameter and the source IP (ring hash and Maglev)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from libmesh import Mesh

from .conftest import Serve
from .support import MODES, Mode, Req, Upstream, call_many, make_mesh, service_entry, slow

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _mesh(serve: Serve, ups: list[Upstream], lb: str | None, weights: list[int] | None = None) -> Mesh:
    entry = service_entry(HOST, [(serve(u), {"app": "reviews"}) for u in ups], weights=weights)
    rule = (
        f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy: {{loadBalancer: {lb}}}
"""
        if lb
        else ""
    )
    return make_mesh(entry, rule)


def _counts(ups: list[Upstream]) -> list[int]:
    return [u.count for u in ups]


@pytest.mark.parametrize("mode", MODES)
def test_round_robin_rotates_strictly(serve: Serve, mode: Mode) -> None:
    ups = [Upstream(f"e{i}") for i in range(3)]
    results = call_many(_mesh(serve, ups, "{simple: ROUND_ROBIN}"), mode, [Req(URL)] * 30)
    assert _counts(ups) == [10, 10, 10]
    order = [r.upstream for r in results]
    assert order[:3] * 10 == order


def test_random_spreads_about_evenly(serve: Serve) -> None:
    ups = [Upstream(f"e{i}") for i in range(3)]
    call_many(_mesh(serve, ups, "{simple: RANDOM}"), "sync", [Req(URL)] * 600)
    assert all(140 <= c <= 260 for c in _counts(ups)), _counts(ups)


def test_endpoint_weights_shape_round_robin(serve: Serve) -> None:
    ups = [Upstream("light"), Upstream("heavy")]
    call_many(_mesh(serve, ups, "{simple: ROUND_ROBIN}", weights=[1, 3]), "sync", [Req(URL)] * 400)
    assert _counts(ups) == [100, 300]


def test_least_request_by_default_avoids_the_busy_endpoint(serve: Serve) -> None:
    """Power of two choices on active requests: with 8 calls in flight, the endpoint that holds each
    request 150 ms gets far fewer of them than the fast ones. Measured shares: 33-46 of 300 for the slow one
    against 123-144 for each fast one; round robin or random would give it about 100, which the bound
    (under half of the least-loaded fast endpoint) rejects with a wide margin on both sides."""
    ups = [Upstream("slow", slow(0.15)), Upstream("fast1"), Upstream("fast2")]
    call_many(_mesh(serve, ups, None), "async", [Req(URL)] * 300, concurrency=8)
    slow_count, *fast = _counts(ups)
    assert slow_count < min(fast) / 2, _counts(ups)


@pytest.mark.parametrize(
    ("hash_policy", "request_for"),
    [
        ("{httpHeaderName: x-user}", lambda k: Req(URL, headers={"x-user": k})),
        ("{httpCookie: {name: session, ttl: 0s}}", lambda k: Req(URL, headers={"cookie": f"session={k}"})),
        ("{httpQueryParameterName: user}", lambda k: Req(f"{URL}?user={k}")),
        ("{httpHeaderName: x-user, maglev: {tableSize: 1009}}", lambda k: Req(URL, headers={"x-user": k})),
        (
            "{httpHeaderName: x-user, ringHash: {minimumRingSize: 256}}",
            lambda k: Req(URL, headers={"x-user": k}),
        ),
    ],
    ids=["header", "cookie", "query", "maglev", "ring-hash"],
)
def test_consistent_hash_sticks_each_key_to_one_endpoint(
    serve: Serve, hash_policy: str, request_for: Callable[[str], Req]
) -> None:
    ups = [Upstream(f"e{i}") for i in range(4)]
    mesh = _mesh(serve, ups, f"{{consistentHash: {hash_policy}}}")
    keys = [f"user-{i}" for i in range(40)]
    reqs = [request_for(k) for k in keys for _ in range(5)]
    results = call_many(mesh, "sync", reqs)
    by_key: dict[str, set[str | None]] = {}
    for key, result in zip([k for k in keys for _ in range(5)], results, strict=True):
        by_key.setdefault(key, set()).add(result.upstream)
    assert all(len(endpoints) == 1 for endpoints in by_key.values())
    spread = Counter(next(iter(e)) for e in by_key.values())
    assert len(spread) >= 3, spread  # 40 keys land on more than one or two endpoints


def test_consistent_hash_on_source_ip_sends_one_client_to_one_endpoint(serve: Serve) -> None:
    ups = [Upstream(f"e{i}") for i in range(3)]
    call_many(_mesh(serve, ups, "{consistentHash: {useSourceIp: true}}"), "sync", [Req(URL)] * 30)
    assert sorted(_counts(ups)) == [0, 0, 30]
