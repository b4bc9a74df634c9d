"""Acceptance 7: propagation a sidecar cannot do. The inbound request's trace, x-request-id, baggage and
the headers MeshConfig lists follow the app's outbound calls with no app code, through asyncio tasks and
threads, so header routing works on the second hop."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libmesh.adapters.asgi import MeshMiddleware
from libmesh.telemetry.tracing import Tracer

from .conftest import Serve
from .support import MODES, Mode, Relay, Upstream, call, make_mesh, service_entry, wait_until

URL = "http://reviews:9080/r"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"

PROPAGATE_END_USER = """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  propagateHeaders: [end-user]
"""

RATINGS_BY_USER = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: ratings, subset: v2}}]
  - route: [{destination: {host: ratings, subset: v1}}]
"""


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A private TracerProvider recording every span in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _reviews_entry(port: int) -> str:
    return service_entry("reviews.default.svc.cluster.local", [(port, {"app": "reviews", "version": "v1"})])


def _ratings(serve: Serve) -> tuple[Upstream, Upstream, str]:
    v1, v2 = Upstream("ratings-v1"), Upstream("ratings-v2")
    entry = service_entry(
        "ratings.default.svc.cluster.local",
        [(serve(v1), {"app": "ratings", "version": "v1"}), (serve(v2), {"app": "ratings", "version": "v2"})],
    )
    return v1, v2, entry


def _serve_relay(serve: Serve, relay: Relay, kind: str) -> int:
    return serve(relay.asgi() if kind == "asgi" else relay.wsgi(), kind)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_trace_continues_through_the_outbound_call(
    serve: Serve, spans: tuple[TracerProvider, InMemorySpanExporter], mode: Mode, kind: str
) -> None:
    """productpage (client span) -> reviews (server span, then a client span for its own call) -> ratings
    (server span): one trace, each span the child of the previous one, the app copying nothing. The trace
    comes from the app's own traceparent on its first call."""
    provider, exporter = spans
    ratings_seen = Upstream("ratings")
    ratings_mesh = make_mesh(app="ratings", tracer=Tracer(provider, sampling=100.0))
    ratings_port = serve(MeshMiddleware(ratings_seen.asgi(), mesh=ratings_mesh))
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(ratings_port, {"app": "ratings"})]),
        app="reviews",
        tracer=Tracer(provider, sampling=100.0),
    )
    relay = Relay(reviews_mesh, "http://ratings:9080/ratings/1")
    client_mesh = make_mesh(
        _reviews_entry(_serve_relay(serve, relay, kind)), tracer=Tracer(provider, sampling=100.0)
    )

    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    assert call(client_mesh, mode, URL, headers={"traceparent": traceparent}).status == 200

    # A server span ends once the response is sent, a moment after the caller has it.
    wait_until(lambda: len(exporter.get_finished_spans()) == 4)
    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    client_spans = [s for s in finished if s.kind is SpanKind.CLIENT]
    server_spans = [s for s in finished if s.kind is SpanKind.SERVER]
    productpage_client = next(s for s in client_spans if s.attributes.get("url.full") == f"{URL}")
    reviews_client = next(s for s in client_spans if s is not productpage_client)
    reviews_server = next(s for s in server_spans if s.attributes.get("url.path") == "/r")
    ratings_server = next(s for s in server_spans if s.attributes.get("url.path") == "/ratings/1")
    assert {format(s.context.trace_id, "032x") for s in finished} == {TRACE_ID}
    chain = [productpage_client, reviews_server, reviews_client, ratings_server]
    assert format(productpage_client.parent.span_id, "016x") == PARENT_ID  # type: ignore[union-attr]
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    # On the wire: the second hop got the trace, with reviews' client span as its parent.
    sent = ratings_seen.seen[0].headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{reviews_client.context.span_id:016x}-01"


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_trace_started_by_the_inbound_request_reaches_the_next_hop(
    serve: Serve, spans: tuple[TracerProvider, InMemorySpanExporter], kind: str
) -> None:
    """A caller outside the mesh sends no trace: reviews' server span starts one (100 % sampling) and its
    outbound call carries it."""
    provider, exporter = spans
    ratings_seen = Upstream("ratings")
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(serve(ratings_seen), {"app": "ratings"})]),
        app="reviews",
        tracer=Tracer(provider, sampling=100.0),
    )
    relay = Relay(reviews_mesh, "http://ratings:9080/")
    port = _serve_relay(serve, relay, kind)
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    wait_until(lambda: len(exporter.get_finished_spans()) == 2)
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.parent is None
    (client,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert ratings_seen.seen[0].headers["traceparent"] == (
        f"00-{server.context.trace_id:032x}-{client.context.span_id:016x}-01"
    )


def test_unsampled_trace_stays_unsampled_downstream(
    serve: Serve, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """The caller's sampling decision (flags 00) is kept: nothing is recorded, the trace id still travels."""
    provider, exporter = spans
    ratings_seen = Upstream("ratings")
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(serve(ratings_seen), {"app": "ratings"})]),
        app="reviews",
        tracer=Tracer(provider, sampling=100.0),
    )
    port = _serve_relay(serve, Relay(reviews_mesh, "http://ratings:9080/"), "asgi")
    httpx.get(f"http://127.0.0.1:{port}/", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    time.sleep(0.1)  # a recorded server span would end a moment after the response
    assert exporter.get_finished_spans() == ()
    sent = ratings_seen.seen[0].headers["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-") and sent.endswith("-00")


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_request_id_and_baggage_follow_every_outbound_call(serve: Serve, mode: Mode, kind: str) -> None:
    ratings_seen = Upstream("ratings")
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(serve(ratings_seen), {"app": "ratings"})]),
        app="reviews",
    )
    relay = Relay(reviews_mesh, "http://ratings:9080/", fanout=3)
    client_mesh = make_mesh(_reviews_entry(_serve_relay(serve, relay, kind)))
    headers = {"x-request-id": "req-42", "baggage": "tenant=acme", "x-not-listed": "stays"}
    assert call(client_mesh, mode, URL, headers=headers).status == 200
    assert ratings_seen.count == 3
    for seen in ratings_seen.seen:
        assert seen.headers["x-request-id"] == "req-42"
        assert "tenant=acme" in seen.headers["baggage"]
        assert "x-not-listed" not in seen.headers


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_request_without_id_gets_one_shared_by_its_outbound_calls(serve: Serve, kind: str) -> None:
    ratings_seen = Upstream("ratings")
    reviews_mesh = make_mesh(
        service_entry("ratings.default.svc.cluster.local", [(serve(ratings_seen), {"app": "ratings"})]),
        app="reviews",
    )
    relay = Relay(reviews_mesh, "http://ratings:9080/", fanout=2)
    port = _serve_relay(serve, relay, kind)
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200  # a caller outside the mesh
    ids = {s.headers.get("x-request-id") for s in ratings_seen.seen}
    assert len(ids) == 1 and None not in ids


@pytest.mark.parametrize("fanout", [1, 3])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_mesh_config_header_reaches_the_second_hop_where_it_routes(
    serve: Serve, mode: Mode, kind: str, fanout: int
) -> None:
    """productpage -> reviews -> ratings: the client sends end-user only to reviews; reviews' code copies
    nothing, yet its calls to ratings carry end-user and jason reaches ratings v2 (Istio issue #1380)."""
    v1, v2, ratings_entry = _ratings(serve)
    reviews_mesh = make_mesh(ratings_entry, RATINGS_BY_USER, PROPAGATE_END_USER, app="reviews")
    relay = Relay(reviews_mesh, "http://ratings:9080/ratings/1", fanout=fanout)
    client_mesh = make_mesh(_reviews_entry(_serve_relay(serve, relay, kind)))

    jason = call(client_mesh, mode, URL, headers={"end-user": "jason"})
    assert [o["body"]["upstream"] for o in jason.json()["outbound"]] == ["ratings-v2"] * fanout
    assert {s.headers["end-user"] for s in v2.seen} == {"jason"}
    anonymous = call(client_mesh, mode, URL)
    assert [o["body"]["upstream"] for o in anonymous.json()["outbound"]] == ["ratings-v1"] * fanout
    assert all("end-user" not in s.headers for s in v1.seen)


def test_header_not_listed_in_mesh_config_is_not_propagated(serve: Serve) -> None:
    v1, v2, ratings_entry = _ratings(serve)
    reviews_mesh = make_mesh(ratings_entry, RATINGS_BY_USER, app="reviews")  # no propagateHeaders
    relay = Relay(reviews_mesh, "http://ratings:9080/ratings/1")
    client_mesh = make_mesh(_reviews_entry(_serve_relay(serve, relay, "asgi")))
    result = call(client_mesh, "sync", URL, headers={"end-user": "jason"})
    assert [o["body"]["upstream"] for o in result.json()["outbound"]] == ["ratings-v1"]
    assert v2.count == 0 and "end-user" not in v1.seen[0].headers
