"""Benchmarks for per-call telemetry: what recording one call costs.

Rows (no bars: read them against ``base.dict_inc``, a bare dict increment keyed by the same label tuple):

* ``metrics.record``          :meth:`IstioMetrics.record` of a repeat call (its series exists already): one
  counter and three histograms.
* ``metrics.record+build``    the same, including building the frozen ``RequestRecord`` as an adapter does.
* ``ref.prometheus_children`` the same four updates through prometheus_client's own ``Counter``/``Histogram``
  children, bound ahead and cached per label tuple (the design :class:`IstioMetrics` replaced; kept to show
  why).
* ``tracing.unsampled``       a server span whose trace is not sampled (no inbound trace headers).
* ``tracing.unsampled_child`` a server span continuing an inbound unsampled ``traceparent``.
* ``context.from_headers``    building the :class:`InboundContext` of an inbound request (with a generated
  ``x-request-id``) and activating/resetting it.
* ``accesslog.text``          formatting one text access log line.

Run alone with ``python -m benchmarks.telemetry_bench`` (prints ns per call); ``run(quick)`` returns the rows
for ``python -m benchmarks.run``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from libmesh.telemetry.accesslog import AccessLogEntry, format_text
from libmesh.telemetry.context import InboundContext, activate
from libmesh.telemetry.metrics import (
    DURATION_BUCKETS_MS,
    LABEL_NAMES,
    IstioMetrics,
    Peer,
    Reporter,
    RequestRecord,
)
from libmesh.telemetry.tracing import Tracer
from libmesh.workload import Workload

from . import Result, time_calls

__all__ = ["main", "run"]

_SOURCE = Peer.from_workload(
    Workload("productpage-v1", "default", {"app": "productpage", "version": "v1"}, "bookinfo-productpage")
)
_DEST = Peer.from_labels({"app": "reviews", "version": "v2"}, workload="reviews-v2", namespace="default")
_SERVICE = "reviews.default.svc.cluster.local"


def _record() -> RequestRecord:
    return RequestRecord(
        Reporter.SOURCE,
        _SOURCE,
        _DEST,
        _SERVICE,
        "reviews",
        "default",
        response_code=200,
        duration_ms=3.2,
        request_bytes=120,
        response_bytes=4500,
    )


def _cases() -> dict[str, Callable[[int], object]]:
    rec = _record()
    metrics = IstioMetrics()
    metrics.record(rec)

    key = (rec.reporter, rec.source, rec.destination, rec.destination_service, rec.response_code)
    counts: dict[object, int] = {}

    def dict_inc(_: int) -> None:
        k = (rec.reporter, rec.source, rec.destination, rec.destination_service, rec.response_code)
        counts[k] = counts.get(k, 0) + 1

    def record(_: int) -> None:
        metrics.record(rec)

    def record_build(_: int) -> None:
        metrics.record(
            RequestRecord(
                Reporter.SOURCE,
                _SOURCE,
                _DEST,
                _SERVICE,
                "reviews",
                "default",
                response_code=200,
                duration_ms=3.2,
                request_bytes=120,
                response_bytes=4500,
            )
        )

    registry = CollectorRegistry()
    labels = list(LABEL_NAMES)
    counter = Counter("istio_requests", "", labels, registry=registry)
    hists = [
        Histogram(name, "", labels, buckets=DURATION_BUCKETS_MS, registry=registry)
        for name in ("istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes")
    ]
    values = ["x"] * len(labels)
    children: dict[object, tuple[object, ...]] = {}

    def prometheus_children(_: int) -> None:
        bound = children.get(key)
        if bound is None:
            bound = children[key] = (counter.labels(*values), *(h.labels(*values) for h in hists))
        c, d, q, s = bound
        c.inc()  # type: ignore[attr-defined]
        d.observe(rec.duration_ms)  # type: ignore[attr-defined]
        q.observe(rec.request_bytes)  # type: ignore[attr-defined]
        s.observe(rec.response_bytes)  # type: ignore[attr-defined]

    tracer = Tracer(sampling=0.0)
    no_trace: dict[str, str] = {}
    unsampled = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}

    def span_root(_: int) -> None:
        tracer.start_server_span(no_trace, method="GET", path="/reviews/1").finish(200)

    def span_child(_: int) -> None:
        tracer.start_server_span(unsampled, method="GET", path="/reviews/1").finish(200)

    inbound = {"end-user": "jason", "user-agent": "python-httpx/0.27", "x-libmesh-deadline-ms": "950"}
    propagate = ("end-user",)

    def context(_: int) -> None:
        activate(InboundContext.from_headers(inbound, propagate=propagate)).reset()

    entry = AccessLogEntry(
        time.time(),
        "GET",
        "/reviews/1",
        "HTTP/1.1",
        200,
        bytes_sent=4500,
        duration_ms=3.2,
        user_agent="python-httpx/0.27",
        request_id="5b1c7b8e-7d0c-4c0a-9f6e-1b2c3d4e5f60",
        authority="reviews:9080",
        upstream_host="127.0.0.1:9080",
        upstream_cluster=f"outbound|9080|v2|{_SERVICE}",
        route_name="default",
    )

    def access_text(_: int) -> None:
        format_text(entry)

    return {
        "base.dict_inc": dict_inc,
        "metrics.record": record,
        "metrics.record+build": record_build,
        "ref.prometheus_children": prometheus_children,
        "tracing.unsampled": span_root,
        "tracing.unsampled_child": span_child,
        "context.from_headers": context,
        "accesslog.text": access_text,
    }


_LABELS = {
    "base.dict_inc": "bare dict increment (baseline)",
    "metrics.record": "IstioMetrics.record, repeat series",
    "metrics.record+build": "RequestRecord(...) + record",
    "ref.prometheus_children": "prometheus_client bound children",
    "tracing.unsampled": "unsampled server span, new trace",
    "tracing.unsampled_child": "unsampled server span, inbound parent",
    "context.from_headers": "InboundContext.from_headers + activate",
    "accesslog.text": "text access log line",
}


def run(quick: bool = False) -> list[Result]:
    """Time every case: ``batch`` calls per sample, the median and p99 of the samples."""
    batch, batches = (200, 20) if quick else (2000, 60)
    results = []
    for name, fn in _cases().items():
        timing = time_calls(fn, lambda: range(batch), batches=batches)
        baseline = None if name == "base.dict_inc" else "base.dict_inc"
        results.append(timing.result(name, _LABELS[name], batch, baseline=baseline))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print nanoseconds per call for each case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke test)")
    args = parser.parse_args(argv)
    results = run(args.quick)
    base = next(r.median for r in results if r.name == "base.dict_inc")
    for r in results:
        ratio = f"{r.median / base:6.1f}x" if r.name != "base.dict_inc" else "      "
        print(
            f"{r.name:26} {r.median * 1e9:9.0f} ns  p99 {r.p99 * 1e9 if r.p99 else 0:9.0f} ns  {ratio}  {r.label}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
