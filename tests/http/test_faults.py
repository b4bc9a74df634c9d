"""Acceptance 6: client-side fault injection as Istio does it: an abort or a fixed delay for a percentage of
requests (none without a percentage), flagged FI and DI, never retried."""

from __future__ import annotations

import random

import pytest

from libmesh import Mesh

from .conftest import Serve
from .support import MODES, Mode, Relay, Req, Upstream, call, call_many, make_mesh, service_entry

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _route(fault: str, extra: str = "", match: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - {match}fault: {fault}
    route: [{{destination: {{host: reviews}}}}]{extra}
  - route: [{{destination: {{host: reviews}}}}]
"""


def _mesh(
    serve: Serve,
    upstream: Upstream,
    fault: str,
    extra: str = "",
    match: str = "",
    rand: random.Random | None = None,
) -> Mesh:
    return make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]), _route(fault, extra, match), rand=rand
    )


@pytest.mark.parametrize("mode", MODES)
def test_fifty_percent_abort_lands_within_4_percent_over_2000_requests(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("u")
    mesh = _mesh(
        serve, upstream, "{abort: {httpStatus: 503, percentage: {value: 50}}}", rand=random.Random(2000)
    )
    # Seeded: the mesh draws from a fixed sequence of random numbers, so the share is checked without
    # chance failures (unseeded, +-4 % over 2000 is +-3.6 standard deviations: 1 run in about 2800).
    results = call_many(mesh, mode, [Req(URL)] * 2000)
    aborted = [r for r in results if r.status == 503]
    assert 0.46 <= len(aborted) / 2000 <= 0.54, len(aborted)
    assert {(r.flags, r.body) for r in aborted} == {("FI", b"fault filter abort")}
    assert upstream.count == 2000 - len(aborted)
    assert all(r.status == 200 and r.flags == "-" for r in results if r.status != 503)


@pytest.mark.parametrize("mode", MODES)
def test_grpc_status_abort_answers_plain_http_as_envoy_does(serve: Serve, mode: Mode) -> None:
    # Envoy's fault filter sends a gRPC status only to a gRPC request; a plain HTTP caller gets 200 and the
    # filter's body.
    upstream = Upstream("u")
    mesh = _mesh(serve, upstream, "{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}")
    plain, grpc_like = call_many(
        mesh, mode, [Req(URL), Req(URL, method="POST", headers={"content-type": "application/grpc"})]
    )
    assert (plain.status, plain.body, plain.flags) == (200, b"fault filter abort", "FI")
    assert "grpc-status" not in plain.headers
    assert (grpc_like.status, grpc_like.headers["grpc-status"], grpc_like.flags) == (200, "14", "FI")
    assert grpc_like.headers["content-type"] == "application/grpc"
    assert upstream.count == 0


@pytest.mark.parametrize("mode", MODES)
def test_fixed_delay_adds_the_delay_and_flags_di(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("u")
    mesh = _mesh(serve, upstream, "{delay: {fixedDelay: 200ms, percentage: {value: 100}}}")
    for result in call_many(mesh, mode, [Req(URL)] * 2):
        assert (result.status, result.flags) == (200, "DI")
        assert 0.2 <= result.elapsed <= 0.3, result.elapsed
    assert upstream.count == 2


def test_delay_percentage_delays_about_that_share(serve: Serve) -> None:
    upstream = Upstream("u")
    mesh = _mesh(serve, upstream, "{delay: {fixedDelay: 20ms, percentage: {value: 25}}}")
    results = call_many(mesh, "async", [Req(URL)] * 200, concurrency=20)
    delayed = [r for r in results if r.flags == "DI"]
    assert 25 <= len(delayed) <= 75, len(delayed)
    assert all(r.elapsed >= 0.02 for r in delayed)


@pytest.mark.parametrize("mode", MODES)
def test_fault_without_percentage_injects_nothing(serve: Serve, mode: Mode) -> None:
    """Istio: "If left unspecified, no request will be aborted/delayed"."""
    upstream = Upstream("u")
    mesh = _mesh(serve, upstream, "{delay: {fixedDelay: 1s}, abort: {httpStatus: 500}}")
    results = call_many(mesh, mode, [Req(URL)] * 20)
    assert all((r.status, r.flags) == (200, "-") and r.elapsed < 0.5 for r in results)
    assert upstream.count == 20


@pytest.mark.parametrize("mode", MODES)
def test_delay_then_abort_flags_both(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("u")
    mesh = _mesh(
        serve,
        upstream,
        "{delay: {fixedDelay: 100ms, percentage: {value: 100}}, abort: {httpStatus: 418, percentage: {value: 100}}}",
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (418, "DI,FI")
    assert result.elapsed >= 0.1
    assert upstream.count == 0


@pytest.mark.parametrize("mode", MODES)
def test_fault_delay_is_not_counted_in_the_route_timeout(serve: Serve, mode: Mode) -> None:
    """Envoy's fault filter runs before the router, whose timeout starts after the delay."""
    upstream = Upstream("u")
    mesh = _mesh(
        serve, upstream, "{delay: {fixedDelay: 300ms, percentage: {value: 100}}}", "\n    timeout: 200ms"
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (200, "DI")
    assert result.elapsed >= 0.3


def test_fault_for_one_user_only(serve: Serve) -> None:
    """Istio's bookinfo fault: only requests from end-user jason are delayed."""
    upstream = Upstream("u")
    mesh = _mesh(
        serve,
        upstream,
        "{delay: {fixedDelay: 150ms, percentage: {value: 100}}}",
        match="match: [{headers: {end-user: {exact: jason}}}]\n    ",
    )
    jason, other = call_many(mesh, "sync", [Req(URL, headers={"end-user": "jason"}), Req(URL)])
    assert (jason.flags, other.flags) == ("DI", "-")
    assert jason.elapsed >= 0.15 > other.elapsed


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_abort_injected_one_hop_down_is_not_retried_by_the_caller(
    serve: Serve, mode: Mode, kind: str
) -> None:
    """Istio issue #25160: productpage -> reviews -> ratings with a 50 % abort on reviews' calls to ratings,
    and productpage retrying 5xx three times. reviews passes the 503 on; its mesh marks the answer as the
    result of an injected fault, so productpage does not retry it and the abort keeps its 50 % rate (a
    sidecar mesh would retry it down to 0.5**4, about 6 %)."""
    ratings = Upstream("ratings")
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(serve(ratings), {"app": "ratings"})]),
        _route("{abort: {httpStatus: 503, percentage: {value: 50}}}").replace("reviews", "ratings"),
        app="reviews",
    )
    relay = Relay(reviews_mesh, "http://ratings:9080/", pass_status=True)
    port = serve(relay.asgi() if kind == "asgi" else relay.wsgi(), kind)
    productpage = make_mesh(
        service_entry(HOST, [(port, {"app": "reviews"})]),
        _route_with_retries("{attempts: 3, retryOn: 5xx, backoff: 1ms}"),
    )
    results = call_many(productpage, mode, [Req(URL)] * 300)
    failed = sum(r.status == 503 for r in results)
    assert 0.40 <= failed / 300 <= 0.60, failed
    assert len(relay.calls) == 300  # one call to reviews per request: nothing was retried


def _route_with_retries(retries: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    retries: {retries}
"""
