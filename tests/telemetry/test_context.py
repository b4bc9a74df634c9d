"""The inbound context: which headers travel, deadline headers, and propagation through contextvars into
asyncio tasks and (with the helpers) threads."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider

from libmesh.telemetry.context import (
    DEADLINE_HEADER,
    InboundContext,
    PendingContext,
    activate,
    current,
    deadline_header_value,
    effective_timeout,
    format_grpc_timeout,
    headers_to_forward,
    new_request_id,
    parse_deadline_ms,
    parse_grpc_timeout,
    remaining_deadline,
    submit,
    wrap,
)
from libmesh.telemetry.tracing import Tracer

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def ctx(user: str = "jason", **extra: str) -> InboundContext:
    headers = {"end-user": user, "x-request-id": f"id-{user}", "accept": "text/html", **extra}
    return InboundContext.from_headers(headers, propagate=("End-User",))


def test_forwarded_headers() -> None:
    inbound = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "a=1",
        "baggage": "k=v",
        "x-request-id": "abc",
        "end-user": "jason",
        "x-tenant": "acme",
        "authorization": "Bearer secret",
        "content-length": "12",
    }
    c = InboundContext.from_headers(inbound, propagate=("End-User", "x-tenant", "x-absent"))
    assert c.headers_to_forward() == {
        "traceparent": inbound["traceparent"],
        "tracestate": "a=1",
        "baggage": "k=v",
        "x-request-id": "abc",
        "end-user": "jason",
        "x-tenant": "acme",
    }
    assert c.request_id == "abc"
    forwarded = c.headers_to_forward()
    forwarded["x"] = "y"  # a fresh dict each time: the caller may change it
    assert "x" not in c.headers_to_forward()


def test_request_id_is_generated_when_missing() -> None:
    c = InboundContext.from_headers({})
    assert c.request_id is not None and UUID4.fullmatch(c.request_id)
    assert InboundContext.from_headers({}, generate_request_id=False).request_id is None
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(UUID4.fullmatch(i) for i in ids)


def test_activate_and_reset() -> None:
    assert current() is None
    assert headers_to_forward() == {}
    outer, inner = ctx("jason"), ctx("ana")
    with activate(outer) as active:
        assert active is outer and current() is outer
        assert headers_to_forward()["end-user"] == "jason"
        activation = activate(inner)
        assert current() is inner
        activation.reset()
        assert current() is outer
        with activate(None):
            assert current() is None
        assert current() is outer
    assert current() is None


def test_activation_makes_the_span_current() -> None:
    tracer = Tracer(NoOpTracerProvider(), sampling=100)
    span = tracer.start_server_span(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, method="GET", path="/"
    )
    before = otel_context.get_current()
    with activate(InboundContext.from_headers({}, otel_context=span.context)):
        assert trace.get_current_span().get_span_context() == span.span.get_span_context()
        # A client span with no explicit parent is a child of the request's span.
        wire: dict[str, str] = {}
        tracer.inject(tracer.start_client_span(method="GET", url="http://x/"), wire)
        assert wire["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert otel_context.get_current() == before


def test_pending_context_is_built_once_on_first_read() -> None:
    headers = {
        "end-user": "jason",
        "x-request-id": "abc",
        "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    }
    pending = PendingContext(headers, propagate=("End-User",), arrival=time.monotonic())
    with activate(pending) as active:
        assert active is not None and active is current()  # one context, built once
        assert headers_to_forward() == {
            "end-user": "jason",
            "x-request-id": "abc",
            "traceparent": headers["traceparent"],
        }
        assert pending.resolve() is active
    generated = PendingContext({}, arrival=time.monotonic()).resolve()
    assert generated.request_id is not None and UUID4.fullmatch(generated.request_id)


@pytest.mark.parametrize(
    ("headers", "left", "expected"),
    [
        ({}, None, None),
        ({}, 0.5, 0.5),
        ({DEADLINE_HEADER: "300"}, 0.5, 0.3),  # the earlier of the two deadlines wins
        ({DEADLINE_HEADER: "900"}, 0.5, 0.5),
        ({DEADLINE_HEADER: "900"}, None, 0.9),
        ({}, -1.0, 0.0),  # already past: nothing left, never negative
    ],
)
def test_pending_context_reads_the_transport_deadline(
    headers: dict[str, str], left: float | None, expected: float | None
) -> None:
    pending = PendingContext(headers, arrival=time.monotonic(), time_remaining=lambda: left)
    with activate(pending):
        remaining = remaining_deadline()
    if expected is None:
        assert remaining is None
    else:
        assert remaining is not None and expected - 0.05 <= remaining <= expected


def test_an_unsampled_request_is_the_current_span_of_the_app() -> None:
    # An unsampled request's span is put in OpenTelemetry's context without being built, and reads as
    # the request's span: spans the app starts join the caller's trace, unsampled.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracer(provider, sampling=100)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    span = tracer.start_server_span({"traceparent": parent}, method="GET", path="/")
    with activate(PendingContext({}, otel_context=span.context, arrival=time.monotonic())):
        here = trace.get_current_span()
        assert not here.is_recording()
        sc = here.get_span_context()
        assert sc.is_valid and not sc.trace_flags.sampled and not sc.is_remote
        assert format(sc.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert format(sc.span_id, "016x") != "b7ad6b7169203331"  # this hop's own span
        assert sc is here.get_span_context()  # built once
        with provider.get_tracer("app").start_as_current_span("app-work") as own:
            assert own.get_span_context().trace_id == sc.trace_id
            assert not own.is_recording()
        wire: dict[str, str] = {}
        tracer.inject(tracer.start_client_span(method="GET", url="http://x/"), wire)
        assert wire["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert wire["traceparent"].endswith("-00")
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("950", 0.95),
        ("0", 0.0),
        (" 1500 ", 1.5),
        ("00012", 0.012),
        ("-5", None),
        ("1.5", None),
        ("1e3", None),
        ("", None),
        ("abc", None),
        ("٣", None),  # a digit, but not an ASCII one
        ("99999999999", None),  # more than ~115 days
        ("123456789012", None),
    ],
)
def test_parse_deadline_ms(value: str, seconds: float | None) -> None:
    assert parse_deadline_ms(value) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("200m", 0.2),
        ("1S", 1.0),
        ("2M", 120.0),
        ("1H", 3600.0),
        ("500u", 0.0005),
        ("100n", 1e-7),
        ("99999999S", 99999999.0),
        ("123456789S", None),  # gRPC allows at most 8 digits
        ("200", None),
        ("m", None),
        ("20x", None),
        ("-1S", None),
        ("1.5S", None),
        ("", None),
    ],
)
def test_parse_grpc_timeout(value: str, seconds: float | None) -> None:
    parsed = parse_grpc_timeout(value)
    assert parsed == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize(
    ("seconds", "value"),
    [
        (0.05, "50000000n"),
        (0.2, "200000u"),
        (1.0, "1000000u"),
        (250.0, "250000m"),
        (100_000.0, "100000S"),
        (0, "0n"),
        (-1, "0n"),
    ],
)
def test_format_grpc_timeout(seconds: float, value: str) -> None:
    assert format_grpc_timeout(seconds) == value
    assert parse_grpc_timeout(value) == pytest.approx(max(0.0, seconds))


def test_deadline_header_value_rounds_down() -> None:
    assert deadline_header_value(0.9999) == "999"
    assert deadline_header_value(1.5) == "1500"
    assert deadline_header_value(-0.2) == "0"
    assert parse_deadline_ms(deadline_header_value(0.25)) == 0.25


@pytest.mark.parametrize(
    ("headers", "remaining"),
    [
        ({}, None),
        ({DEADLINE_HEADER: "950"}, 0.95),
        ({"grpc-timeout": "200m"}, 0.2),
        ({DEADLINE_HEADER: "950", "grpc-timeout": "200m"}, 0.2),  # the earlier deadline wins
        ({DEADLINE_HEADER: "100", "grpc-timeout": "2S"}, 0.1),
        ({DEADLINE_HEADER: "junk", "grpc-timeout": "2S"}, 2.0),
        ({DEADLINE_HEADER: "junk"}, None),
    ],
)
def test_inbound_deadline(headers: dict[str, str], remaining: float | None) -> None:
    c = InboundContext.from_headers(headers, now=100.0)
    assert c.remaining(clock=lambda: 100.0) == (None if remaining is None else pytest.approx(remaining))
    if remaining is not None:
        assert c.deadline == pytest.approx(100.0 + remaining)
        assert c.remaining(clock=lambda: 1000.0) == 0.0


def test_remaining_deadline_caps_outbound_timeouts() -> None:
    clock = [100.0]
    c = InboundContext.from_headers({DEADLINE_HEADER: "500"}, now=100.0)
    assert remaining_deadline() is None
    assert effective_timeout(2.0) == 2.0
    assert effective_timeout(None) is None
    with activate(c):
        clock[0] = 100.3
        assert remaining_deadline(lambda: clock[0]) == pytest.approx(0.2)
        assert effective_timeout(2.0, lambda: clock[0]) == pytest.approx(0.2)
        assert effective_timeout(0.1, lambda: clock[0]) == 0.1
        assert effective_timeout(None, lambda: clock[0]) == pytest.approx(0.2)
        clock[0] = 101.0
        assert effective_timeout(2.0, lambda: clock[0]) == 0.0


def test_asyncio_tasks_see_their_own_request() -> None:
    async def outbound_call(delay: float) -> str | None:
        await asyncio.sleep(delay)
        return headers_to_forward().get("end-user")

    async def handle(user: str) -> list[str | None]:
        with activate(ctx(user)):
            # The app fans out; each task copies the context when it is created.
            return list(await asyncio.gather(outbound_call(0.01), outbound_call(0), outbound_call(0.005)))

    async def server() -> list[list[str | None]]:
        return list(await asyncio.gather(handle("jason"), handle("ana"), handle("bob")))

    assert asyncio.run(server()) == [["jason"] * 3, ["ana"] * 3, ["bob"] * 3]


def test_asyncio_to_thread_carries_the_context() -> None:
    async def handle() -> str | None:
        with activate(ctx("jason")):
            return await asyncio.to_thread(lambda: headers_to_forward().get("end-user"))

    assert asyncio.run(handle()) == "jason"


def test_threads_need_the_helpers() -> None:
    seen: dict[str, str | None] = {}

    def work(key: str) -> None:
        c = current()
        seen[key] = None if c is None else c.headers.get("end-user")

    with activate(ctx("jason")):
        plain = threading.Thread(target=work, args=("plain",))
        wrapped = threading.Thread(target=wrap(work), args=("wrapped",))
        plain.start()
        wrapped.start()
        plain.join()
        wrapped.join()
        with ThreadPoolExecutor(2) as pool:
            submit(pool, work, "submitted").result()
    assert seen == {"plain": None, "wrapped": "jason", "submitted": "jason"}


def test_wrapped_function_runs_on_many_threads_at_once() -> None:
    barrier = threading.Barrier(4)

    def work() -> str | None:
        barrier.wait(timeout=5)  # all four inside the wrapped call at the same time
        c = current()
        return None if c is None else c.headers.get("end-user")

    with activate(ctx("jason")):
        fn = wrap(work)
    assert current() is None
    with ThreadPoolExecutor(4) as pool:
        results = [f.result() for f in [pool.submit(fn) for _ in range(4)]]
    assert results == ["jason"] * 4


def test_flask_style_one_request_per_thread() -> None:
    results: dict[str, str | None] = {}

    def request(user: str) -> None:
        with activate(ctx(user)):
            results[user] = headers_to_forward()["end-user"]
        results[user + ":after"] = None if current() is None else "leaked"

    threads = [threading.Thread(target=request, args=(u,)) for u in ("jason", "ana", "bob", "eve")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {u: u for u in ("jason", "ana", "bob", "eve")} | {
        f"{u}:after": None for u in ("jason", "ana", "bob", "eve")
    }
