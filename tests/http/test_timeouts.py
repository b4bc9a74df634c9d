"""Acceptance 3: timeouts. The route timeout covers the whole call, retries included; perTryTimeout bounds
each attempt; the remaining deadline travels to the next hop and caps the nested calls made there."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from libmesh.adapters.httpx import FLAGS_HEADER, AsyncMeshTransport, MeshTransport
from libmesh.telemetry.context import DEADLINE_HEADER

from .conftest import Serve
from .servers import unanswered_port
from .support import (
    MODES,
    Answer,
    Mode,
    Relay,
    Req,
    Upstream,
    always,
    call,
    call_many,
    first,
    make_mesh,
    service_entry,
    slow,
    wait_until,
)

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _route(host: str = "reviews", extra: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  http:
  - route: [{{destination: {{host: {host}}}}}]{extra}
"""


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_200ms_route_timeout_against_a_1s_upstream_is_504_ut_in_200_to_300ms(
    serve: Serve, mode: Mode, kind: str
) -> None:
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream, kind), {"app": "reviews"})]),
        _route(extra="\n    timeout: 200ms"),
    )
    results = call_many(mesh, mode, [Req(URL)] * 2)
    for result in results:
        assert (result.status, result.flags) == (504, "UT")
        assert result.body == b"upstream request timeout"
        assert 0.2 <= result.elapsed <= 0.3, result.elapsed
    assert upstream.count == 2
    # The upstream is told what is left of the 200 ms when the attempt is sent (whole ms, rounded down):
    # at most 200, and no less than 200 minus the time between the call's start and its arrival upstream.
    # (A fixed floor such as 198 fails on a loaded machine, where getting the first attempt out can take
    # a few milliseconds.)
    for result, seen in zip(results, upstream.seen, strict=True):  # sequential calls: same order
        spent_ms = (seen.at - result.started) * 1000
        assert 200 - spent_ms - 1 <= int(seen.headers[DEADLINE_HEADER]) <= 200, (spent_ms, seen.headers)


@pytest.mark.parametrize("mode", MODES)
def test_route_timeout_covers_every_retry(serve: Serve, mode: Mode) -> None:
    """Per try 100 ms, 10 attempts, route timeout 300 ms: the caller waits 300 ms, not a second."""
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra="\n    timeout: 300ms\n    retries: {attempts: 10, perTryTimeout: 100ms, retryOn: 5xx}"),
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (504, "UT")
    assert 0.3 <= result.elapsed <= 0.4, result.elapsed
    assert 2 <= upstream.count <= 3


@pytest.mark.parametrize("mode", MODES)
def test_per_try_timeout_retries_a_slow_attempt(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("sometimes-slow", first(1, Answer(delay=1.0)))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra="\n    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}"),
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (200, "-")
    assert 0.1 <= result.elapsed <= 0.25, result.elapsed
    assert upstream.count == 2


@pytest.mark.parametrize("mode", MODES)
def test_per_try_timeouts_exhausting_the_retries_answer_504_ut(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra="\n    retries: {attempts: 1, perTryTimeout: 100ms, retryOn: 5xx}"),
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (504, "UT,URX")
    assert 0.2 <= result.elapsed <= 0.35, result.elapsed
    assert upstream.count == 2


@pytest.mark.parametrize("mode", MODES)
def test_per_try_timeout_is_not_retried_when_retry_on_excludes_it(serve: Serve, mode: Mode) -> None:
    """A per-try timeout is a local reset of the attempt: only 5xx, gateway-error and reset retry it."""
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra='\n    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: "connect-failure,503"}'),
    )
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (504, "UT")
    assert upstream.count == 1


def _two_hops(serve: Serve, kind: str, backend: Upstream, *, relay_route: str = "") -> tuple[Relay, str]:
    """ratings (``backend``) <- reviews (a Relay in the mesh, serving with ``kind``) <- the test's client."""
    ratings_host = "ratings.default.svc.cluster.local"
    ratings = service_entry(ratings_host, [(serve(backend), {"app": "ratings"})])
    reviews_mesh = make_mesh(ratings, _route("ratings", relay_route), app="reviews", version="v1")
    relay = Relay(reviews_mesh, "http://ratings:9080/ratings/1")
    port = serve(relay.asgi() if kind == "asgi" else relay.wsgi(), kind)
    return relay, service_entry(HOST, [(port, {"app": "reviews"})])


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_nested_call_carries_the_remaining_deadline(serve: Serve, mode: Mode, kind: str) -> None:
    backend = Upstream("ratings")
    _, entry = _two_hops(serve, kind, backend)
    mesh = make_mesh(entry, _route(extra="\n    timeout: 1s"))
    result = call(mesh, mode, URL)
    assert result.status == 200
    inbound = int(result.json()["inbound"][DEADLINE_HEADER])
    nested = int(backend.seen[0].headers[DEADLINE_HEADER])
    assert 900 <= inbound <= 1000
    assert 0 < nested <= inbound


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_nested_call_times_out_with_the_callers_deadline(serve: Serve, mode: Mode, kind: str) -> None:
    """The caller allows 400 ms; the middle service's own route to its backend allows 5 s. The nested call
    gives up when the caller's deadline passes (504 UT after about 400 ms), not after 5 s."""
    backend = Upstream("ratings", slow(2.0))
    relay, entry = _two_hops(serve, kind, backend, relay_route="\n    timeout: 5s")
    mesh = make_mesh(entry, _route(extra="\n    timeout: 400ms"))
    # Its own answer races the same deadline (a body arriving after it is cut off with ReadTimeout); the
    # nested call is what we check.
    with contextlib.suppress(httpx.ReadTimeout):
        call(mesh, mode, URL)
    wait_until(lambda: len(relay.calls) == 1)
    nested = relay.calls[0]
    assert (nested["status"], nested["flags"]) == (504, "UT")
    # Timed from the relay's receipt of the request, where the inherited deadline starts: the handler's own
    # start comes later, by however long the server took to get there (see tests.http.support._arrival).
    assert 0.3 <= nested["since_arrival"] <= 0.45, nested


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_shorter_nested_route_timeout_wins_over_the_inherited_deadline(serve: Serve, kind: str) -> None:
    backend = Upstream("ratings", slow(2.0))
    relay, entry = _two_hops(serve, kind, backend, relay_route="\n    timeout: 100ms")
    mesh = make_mesh(entry, _route(extra="\n    timeout: 3s"))
    result = call(mesh, "sync", URL)
    assert result.status == 200
    nested = relay.calls[0]
    assert (nested["status"], nested["flags"]) == (504, "UT")
    assert 0.1 <= nested["elapsed"] <= 0.2, nested
    assert int(backend.seen[0].headers[DEADLINE_HEADER]) <= 100


def test_deadline_header_from_an_outside_caller_caps_the_nested_call(serve: Serve) -> None:
    """A caller outside the mesh may send the deadline header itself; the service honours it."""
    backend = Upstream("ratings", slow(2.0))
    relay, _ = _two_hops(serve, "asgi", backend)
    import httpx

    port = serve(relay.asgi())
    response = httpx.get(f"http://127.0.0.1:{port}/", headers={DEADLINE_HEADER: "250"}, timeout=5)
    assert response.status_code == 200
    nested = response.json()["outbound"][0]
    assert (nested["status"], nested["flags"]) == (504, "UT")
    # Timed from the relay's receipt of the request, where the 250 ms start: timed from the handler's start
    # (after the relay's first request builds its httpx client), it came to 180 ms on a loaded machine.
    assert 0.2 <= nested["since_arrival"] <= 0.35, nested


@pytest.mark.parametrize("mode", MODES)
def test_destination_rule_connect_timeout_bounds_connecting(serve: Serve, mode: Mode) -> None:
    """tcp.connectTimeout 100 ms against an endpoint that never accepts: 503 UF after 100 ms, or, with
    connect-failure retries, the next endpoint answers."""
    good = Upstream("good")
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 100ms}}
    loadBalancer: {simple: ROUND_ROBIN}
"""
    with unanswered_port() as hanging:
        mesh = make_mesh(
            service_entry(HOST, [(hanging, {"app": "reviews"})]),
            rule,
            _route(extra="\n    retries: {attempts: 0}"),
        )
        result = call(mesh, mode, URL)
        assert (result.status, result.flags) == (503, "UF")
        assert 0.1 <= result.elapsed <= 0.3, result.elapsed

        entry = service_entry(HOST, [(hanging, {"app": "reviews"}), (serve(good), {"app": "reviews"})])
        mesh = make_mesh(entry, rule, _route(extra="\n    retries: {attempts: 2, retryOn: connect-failure}"))
        results = call_many(mesh, mode, [Req(URL)] * 2)
    assert [r.status for r in results] == [200] * 2
    assert good.count == 2


def test_the_apps_shorter_httpx_timeout_still_applies_under_a_route_timeout(serve: Serve) -> None:
    """A route timeout only tightens the app's own httpx timeout: 150 ms from the app beats the route's 5 s,
    and the app sees what its client raises behind a sidecar that has not answered: httpx.ReadTimeout."""
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra="\n    timeout: 5s\n    retries: {attempts: 0}"),
    )
    with httpx.Client(transport=MeshTransport(mesh), timeout=0.15) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(URL)
        elapsed = time.monotonic() - started
    assert 0.1 < elapsed < 0.8


@pytest.mark.parametrize("route_timeout", ["", "\n    timeout: 5s"])
def test_the_async_apps_own_httpx_timeout_bounds_the_call(serve: Serve, route_timeout: str) -> None:
    """The asyncio transport leaves a limit that is only the app's own timeout to httpx (no timer of its
    own per attempt) and still ends the call at that timeout, with or without a longer route timeout."""
    upstream = Upstream("slow", slow(1.0))
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra=f"{route_timeout}\n    retries: {{attempts: 0}}"),
    )

    async def go() -> float:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh), timeout=0.15) as client:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get(URL)
            return time.monotonic() - started

    assert 0.1 < asyncio.run(go()) < 0.8


@pytest.mark.parametrize("mode", MODES)
def test_an_injected_delay_ends_at_the_apps_own_timeout(serve: Serve, mode: Mode) -> None:
    """A 3 s delay fault against an app whose client waits 300 ms: the app's timeout fires at 300 ms, as
    it would behind a sidecar holding the request; nothing reaches the upstream, and the call is recorded
    as the caller going away (response code 0, flags DI,DC)."""
    upstream = Upstream("reviews")
    mesh = make_mesh(
        service_entry(HOST, [(serve(upstream), {"app": "reviews"})]),
        _route(extra="\n    fault: {delay: {fixedDelay: 3s, percentage: {value: 100}}}"),
    )
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        if mode == "sync":
            with httpx.Client(transport=MeshTransport(mesh), timeout=0.3) as client:
                client.get(URL)
        else:

            async def go() -> None:
                async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh), timeout=0.3) as client:
                    await client.get(URL)

            asyncio.run(go())
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 1.0
    assert upstream.count == 0
    body, _ = mesh.metrics_exposition()
    assert 'response_code="0"' in body.decode() and 'response_flags="DI,DC"' in body.decode()


def test_a_retry_the_deadline_cuts_off_ends_in_504_ut_at_the_deadline(serve: Serve) -> None:
    """As Envoy: a retriable 503 whose back-off would outlast the route timeout is not returned at once; the
    route timeout fires during the back-off and the caller gets 504 UT at the deadline."""
    failing = Upstream("failing", always(503))
    mesh = make_mesh(
        service_entry(HOST, [(serve(failing), {"app": "reviews"})]),
        _route(extra="\n    timeout: 300ms\n    retries: {attempts: 5, retryOn: 5xx, backoff: 10s}"),
    )
    with httpx.Client(transport=MeshTransport(mesh)) as client:
        started = time.monotonic()
        response = client.get(URL)
        elapsed = time.monotonic() - started
    assert (response.status_code, response.headers[FLAGS_HEADER]) == (504, "UT")
    assert 0.3 <= elapsed <= 0.7, elapsed
