"""OpenTelemetry spans: kinds, HTTP attributes, W3C propagation across an inject/extract hop, sampling."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from libmesh.config import TracingSettings
from libmesh.telemetry.tracing import DEFAULT_SAMPLING_PERCENT, Tracer, w3c_propagator

SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


def test_server_span_has_http_attributes(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100, attributes={"istio.canonical_service": "reviews"})
    span = tracer.start_server_span(
        {"user-agent": "curl/8", "x-request-id": "req-1"},
        method="GET",
        path="/reviews/1?page=2",
        host="reviews",
        port=9080,
        client_address="10.0.0.1",
        protocol_version="1.1",
    )
    assert span.sampled
    span.finish(200)
    s = only(exporter)
    assert s.kind is SpanKind.SERVER
    assert s.name == "GET"
    assert s.parent is None
    assert dict(s.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/reviews/1",
        "url.query": "page=2",
        "url.scheme": "http",
        "server.address": "reviews",
        "server.port": 9080,
        "client.address": "10.0.0.1",
        "network.protocol.version": "1.1",
        "user_agent.original": "curl/8",
        "guid:x-request-id": "req-1",
        "istio.canonical_service": "reviews",
        "http.response.status_code": 200,
    }
    assert s.status.status_code is StatusCode.UNSET


def test_route_names_the_server_span(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    tracer.start_server_span({}, method="POST", path="/items/7", route="/items/{id}").finish(201)
    s = only(exporter)
    assert s.name == "POST /items/{id}"
    assert (s.attributes or {})["http.route"] == "/items/{id}"


def test_trace_continues_across_inject_and_extract(exporter: InMemorySpanExporter) -> None:
    # Service A handles a request and calls service B; B's server span must be the child of A's client span.
    tracer_a = Tracer(provider(exporter), sampling=100)
    tracer_b = Tracer(provider(exporter), sampling=0)  # B follows A's decision, whatever its own rate
    inbound = tracer_a.start_server_span({}, method="GET", path="/productpage")
    client = tracer_a.start_client_span(
        method="GET", url="http://reviews:9080/reviews/1", parent=inbound.context
    )
    wire: dict[str, str] = {}
    tracer_a.inject(client, wire)
    assert wire["traceparent"].endswith("-01")
    server_b = tracer_b.start_server_span(wire, method="GET", path="/reviews/1")
    server_b.finish(200)
    client.finish(200)
    inbound.finish(200)
    b_server, a_client, a_server = exporter.get_finished_spans()  # in the order they ended
    assert (a_server.kind, a_client.kind, b_server.kind) == (
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    )
    assert a_server.parent is None
    assert a_client.parent is not None and b_server.parent is not None
    assert a_client.parent.span_id == a_server.context.span_id
    assert b_server.parent.span_id == a_client.context.span_id
    assert b_server.parent.is_remote
    assert a_server.context.trace_id == a_client.context.trace_id == b_server.context.trace_id


def test_client_span_defaults_to_the_current_context(exporter: InMemorySpanExporter) -> None:
    from opentelemetry import context as otel_context

    tracer = Tracer(provider(exporter), sampling=100)
    server = tracer.start_server_span({}, method="GET", path="/")
    token = otel_context.attach(server.context)
    try:
        client = tracer.start_client_span(method="GET", url="http://ratings/", resend_count=2)
    finally:
        otel_context.detach(token)
    client.finish(200)
    server.finish(200)
    c = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert c.parent is not None and c.parent.span_id == server.span.get_span_context().span_id
    assert (c.attributes or {})["http.request.resend_count"] == 2
    assert (c.attributes or {})["url.full"] == "http://ratings/"


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("client", 200, False),
        ("client", 404, True),
        ("server", 404, False),
        ("server", 503, True),
        ("client", None, True),
    ],
)
def test_error_status_follows_http_conventions(
    exporter: InMemorySpanExporter, kind: str, status: int | None, error: bool
) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    if kind == "client":
        span = tracer.start_client_span(method="GET", url="http://x/", parent=Context())
    else:
        span = tracer.start_server_span({}, method="GET", path="/")
    span.finish(status, response_flags="UF" if status is None else "-")
    s = only(exporter)
    assert (s.status.status_code is StatusCode.ERROR) is error
    attrs = dict(s.attributes or {})
    if error:
        assert attrs["error.type"] == (str(status) if status is not None else "UF")
    else:
        assert "error.type" not in attrs


def test_exception_is_recorded(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    span = tracer.start_client_span(method="GET", url="http://x/", parent=Context())
    span.finish(None, response_flags="UT", error=TimeoutError("slow"), upstream_cluster="outbound|80||x")
    s = only(exporter)
    attrs = dict(s.attributes or {})
    assert attrs["error.type"] == "TimeoutError"
    assert attrs["response_flags"] == "UT"
    assert attrs["upstream_cluster"] == "outbound|80||x"
    assert [e.name for e in s.events] == ["exception"]


def test_unsampled_trace_is_propagated_but_not_recorded(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=0)
    span = tracer.start_server_span({}, method="GET", path="/")
    assert not span.sampled
    wire: dict[str, str] = {}
    tracer.inject(span, wire)
    version, trace_id, span_id, flags = wire["traceparent"].split("-")
    assert (version, flags) == ("00", "00")
    assert trace_id == span.trace_id and int(trace_id, 16) != 0 and int(span_id, 16) != 0
    span.finish(500)
    assert exporter.get_finished_spans() == ()


def test_unsampled_parent_is_followed(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    span = tracer.start_server_span({"traceparent": UNSAMPLED_PARENT}, method="GET", path="/")
    assert not span.sampled
    assert span.trace_id == "0af7651916cd43dd8448eb211c80319c"
    wire: dict[str, str] = {}
    tracer.inject(span, wire)
    assert wire["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert wire["traceparent"].split("-")[2] != "b7ad6b7169203331"  # a new span id for this hop
    span.finish(200)
    assert exporter.get_finished_spans() == ()


def test_sampled_parent_is_followed(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=0)
    tracer.start_server_span({"traceparent": SAMPLED_PARENT}, method="GET", path="/").finish(200)
    s = only(exporter)
    assert s.parent is not None and format(s.parent.span_id, "016x") == "b7ad6b7169203331"


def test_sampling_percentage_applies_to_new_traces() -> None:
    tracer = Tracer(NoOpTracerProvider(), sampling=25)
    sampled = sum(tracer.start_server_span({}, method="GET", path="/").sampled for _ in range(4000))
    assert 850 <= sampled <= 1150


def test_custom_sampler_replaces_the_decision(exporter: InMemorySpanExporter) -> None:
    off = Tracer(provider(exporter), sampling=100, sampler=ALWAYS_OFF)
    off.start_server_span({"traceparent": SAMPLED_PARENT}, method="GET", path="/").finish(200)
    assert exporter.get_finished_spans() == ()
    on = Tracer(provider(exporter), sampling=0, sampler=ALWAYS_ON)
    on.start_server_span({}, method="GET", path="/").finish(200)
    assert len(exporter.get_finished_spans()) == 1


def test_without_an_sdk_the_trace_still_travels() -> None:
    tracer = Tracer(NoOpTracerProvider(), sampling=100)
    span = tracer.start_server_span({"traceparent": SAMPLED_PARENT}, method="GET", path="/")
    assert not span.span.is_recording()
    wire: dict[str, str] = {}
    tracer.inject(tracer.start_client_span(method="GET", url="http://x/", parent=span.context), wire)
    _, trace_id, span_id, flags = wire["traceparent"].split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert span_id != "b7ad6b7169203331"
    assert flags == "01"  # the caller's decision is passed on, so a downstream SDK records the trace
    root = tracer.start_server_span({}, method="GET", path="/")
    assert root.sampled and int(root.trace_id, 16) != 0


def test_tracestate_and_baggage_travel(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    inbound = {
        "traceparent": SAMPLED_PARENT,
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "baggage": "user=jason,tenant=acme",
    }
    server = tracer.start_server_span(inbound, method="GET", path="/")
    assert baggage.get_all(server.context) == {"user": "jason", "tenant": "acme"}
    client = tracer.start_client_span(method="GET", url="http://x/", parent=server.context)
    wire = {"traceparent": "stale", "baggage": "stale=1"}
    tracer.inject(client, wire)
    assert wire["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert wire["baggage"] == "user=jason,tenant=acme"
    assert wire["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


@pytest.mark.parametrize(
    "traceparent",
    [
        SAMPLED_PARENT,
        UNSAMPLED_PARENT,
        " " + SAMPLED_PARENT + " ",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future-fields",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "garbage",
        "",
    ],
)
def test_extract_agrees_with_opentelemetrys_propagator(traceparent: str) -> None:
    ours = trace.get_current_span(Tracer(NoOpTracerProvider()).extract({"traceparent": traceparent}))
    theirs = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
    a, b = ours.get_span_context(), theirs.get_span_context()
    assert (a.is_valid, a.trace_id, a.span_id, a.trace_flags.sampled, a.is_remote) == (
        b.is_valid,
        b.trace_id,
        b.span_id,
        b.trace_flags.sampled,
        b.is_remote,
    )


def test_inject_agrees_with_opentelemetrys_propagator(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100)
    inbound = {"traceparent": SAMPLED_PARENT, "tracestate": "a=1", "baggage": "k=v"}
    span = tracer.start_server_span(inbound, method="GET", path="/")
    ours: dict[str, str] = {}
    theirs: dict[str, str] = {}
    tracer.inject(span, ours)
    w3c_propagator().inject(theirs, context=span.context)
    assert ours == theirs


def test_custom_propagator_is_used(exporter: InMemorySpanExporter) -> None:
    tracer = Tracer(provider(exporter), sampling=100, propagator=TraceContextTextMapPropagator())
    span = tracer.start_server_span({"traceparent": SAMPLED_PARENT, "baggage": "k=v"}, method="GET", path="/")
    assert baggage.get_all(span.context) == {}  # trace context only: baggage is not read
    wire: dict[str, str] = {}
    tracer.inject(span, wire)
    assert set(wire) == {"traceparent"}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, DEFAULT_SAMPLING_PERCENT),
        (TracingSettings(), DEFAULT_SAMPLING_PERCENT),
        (TracingSettings(enabled=True, sampling=10.0), 10.0),
        (TracingSettings(enabled=False, sampling=10.0), None),
    ],
)
def test_from_settings(settings: TracingSettings | None, expected: float | None) -> None:
    tracer = Tracer.from_settings(settings, NoOpTracerProvider())
    assert (tracer.sampling if tracer is not None else None) == expected


def test_sampling_must_be_a_percentage() -> None:
    with pytest.raises(ValueError, match="percentage"):
        Tracer(NoOpTracerProvider(), sampling=150)


def test_traceparent_parsing_agrees_with_the_w3c_grammar() -> None:
    # The grammar as a regular expression, against the hand-written parser, over valid headers and their
    # single-character mutations (and a few truncations and extensions).
    import random
    import re

    from libmesh.telemetry.tracing import _parse_traceparent

    grammar = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")

    def oracle(value: str) -> tuple[int, int, bool] | None:
        match = grammar.fullmatch(value.strip())
        if match is None:
            return None
        version, trace_hex, span_hex, flags, rest = match.groups()
        if version == "ff" or (version == "00" and rest):
            return None
        trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
        if not trace_id or not span_id:
            return None
        return trace_id, span_id, bool(int(flags, 16) & 1)

    rng = random.Random(7)
    alphabet = "0123456789abcdefABCDEF-_ g+\n"
    for _ in range(3000):
        version = rng.choice(["00", "01", "cc", "ff"])
        value = f"{version}-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-{rng.choice(['00', '01', '03'])}"
        value += rng.choice(["", "", "-x", "-", "x", "-a\nb"])
        if rng.random() < 0.7:
            i = rng.randrange(len(value))
            value = value[:i] + rng.choice(alphabet) + value[i + 1 :]
        if rng.random() < 0.1:
            value = value[: rng.randrange(len(value))]
        assert _parse_traceparent(value) == oracle(value), value
