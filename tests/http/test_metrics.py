"""Acceptance 8: Istio's standard metrics on both sides of a call, with Istio's labels and counts, read back
with prometheus-client's own parser (the client from the mesh, the server from its mounted /metrics)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from libmesh import Mesh
from libmesh.adapters import asgi, wsgi
from libmesh.telemetry.accesslog import AccessLogger
from libmesh.telemetry.metrics import PEER_HEADER

from .conftest import Serve
from .support import MODES, Mode, Req, call, call_many, make_mesh, service_entry, wait_until

HOST = "reviews.default.svc.cluster.local"
URL = "http://reviews:9080"

Labels = Mapping[str, str]


def _samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                out.append((dict(sample.labels), sample.value))
    return out


def _count(exposition: str, name: str, **labels: str) -> float:
    return sum(v for lab, v in _samples(exposition, name) if all(lab.get(k) == x for k, x in labels.items()))


def _fastapi_reviews(mesh: Mesh) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> PlainTextResponse:
        return PlainTextResponse("fine" * 10)

    @app.get("/fail")
    def fail() -> PlainTextResponse:
        return PlainTextResponse("broken", status_code=503)

    flaky_calls: list[int] = []

    @app.get("/flaky")
    def flaky() -> PlainTextResponse:
        flaky_calls.append(1)
        return PlainTextResponse("", status_code=503 if len(flaky_calls) % 2 else 200)

    app.mount("/metrics", asgi.metrics_app(mesh))
    app.add_middleware(asgi.MeshMiddleware, mesh=mesh)
    return app


def _flask_reviews(mesh: Mesh) -> object:
    app = Flask("reviews")

    @app.get("/ok")
    def ok() -> str:
        return "fine" * 10

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        return "broken", 503

    @app.get("/flaky")
    def flaky() -> tuple[str, int]:
        return "", 200

    app.wsgi_app = wsgi.MeshMiddleware(app.wsgi_app, mesh=mesh)  # type: ignore[method-assign]
    return DispatcherMiddleware(app, {"/metrics": wsgi.metrics_app(mesh)})


def _setup(serve: Serve, kind: str, vs: str = "") -> tuple[Mesh, Mesh, int]:
    server_mesh = make_mesh(app="reviews", version="v2")
    app = _fastapi_reviews(server_mesh) if kind == "asgi" else _flask_reviews(server_mesh)
    port = serve(app, kind)
    client_mesh = make_mesh(service_entry(HOST, [(port, {"app": "reviews", "version": "v2"})]), vs)
    return client_mesh, server_mesh, port


def _scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


SOURCE = {
    "source_workload": "productpage-v1",
    "source_workload_namespace": "default",
    "source_app": "productpage",
    "source_version": "v1",
    "source_canonical_service": "productpage",
    "source_canonical_revision": "v1",
}
DESTINATION = {
    "destination_workload": "reviews-v2",
    "destination_workload_namespace": "default",
    "destination_app": "reviews",
    "destination_version": "v2",
    "destination_service": HOST,
    "destination_service_name": "reviews",
    "destination_service_namespace": "default",
    "destination_canonical_service": "reviews",
    "destination_canonical_revision": "v2",
}


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_istio_requests_total_on_both_sides_with_istio_labels(serve: Serve, mode: Mode, kind: str) -> None:
    client_mesh, _server_mesh, port = _setup(serve, kind, _no_retries())
    reqs = [Req(f"{URL}/ok")] * 7 + [Req(f"{URL}/fail")] * 3
    assert sorted(r.status for r in call_many(client_mesh, mode, reqs)) == [200] * 7 + [503] * 3

    client_side = client_mesh.metrics_exposition()[0].decode()
    common = {**SOURCE, **DESTINATION, "request_protocol": "http", "response_flags": "-"}
    source = {**common, "reporter": "source", "connection_security_policy": "unknown"}
    assert _count(client_side, "istio_requests_total", **source, response_code="200") == 7
    assert _count(client_side, "istio_requests_total", **source, response_code="503") == 3
    assert _count(client_side, "istio_requests_total") == 10
    assert _count(client_side, "istio_request_duration_milliseconds_count", **source) == 10
    assert _count(client_side, "istio_response_bytes_sum", **source, response_code="200") == 7 * 40
    assert _count(client_side, "istio_request_bytes_count", **source) == 10

    # The server records the request once the response is sent, a moment after the client has it.
    wait_until(lambda: _count(_scrape(port), "istio_requests_total", reporter="destination") >= 10)
    server_side = _scrape(port)
    destination = {**common, "reporter": "destination", "connection_security_policy": "none"}
    assert _count(server_side, "istio_requests_total", **destination, response_code="200") == 7
    assert _count(server_side, "istio_requests_total", **destination, response_code="503") == 3
    assert _count(server_side, "istio_request_duration_milliseconds_count", **destination) == 10
    assert _count(server_side, "istio_response_bytes_sum", **destination, response_code="200") == 7 * 40
    # Every series carries exactly Istio's label set.
    labels = {frozenset(lab) for lab, _ in _samples(server_side, "istio_requests_total")}
    assert labels == {frozenset(_LABELS)}


_LABELS = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
]


def _no_retries(extra: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    retries: {{attempts: 0}}{extra}
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_retried_call_counts_once_at_the_source_and_per_attempt_at_the_destination(
    serve: Serve, mode: Mode
) -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryOn: 5xx}
"""
    client_mesh, _, port = _setup(serve, "asgi", vs)
    assert call(client_mesh, mode, f"{URL}/flaky").status == 200
    client_side = client_mesh.metrics_exposition()[0].decode()
    assert _count(client_side, "istio_requests_total", reporter="source") == 1
    assert _count(client_side, "istio_requests_total", reporter="source", response_code="200") == 1
    wait_until(lambda: _count(_scrape(port), "istio_requests_total", source_workload="productpage-v1") == 2)
    server_side = _scrape(port)
    assert _count(server_side, "istio_requests_total", reporter="destination", response_code="503") == 1
    assert _count(server_side, "istio_requests_total", reporter="destination", response_code="200") >= 1


def test_response_flags_and_codes_of_local_replies_are_labelled(serve: Serve) -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /ok}}]
    route: [{destination: {host: reviews}}]
"""
    client_mesh, _, _ = _setup(serve, "asgi", vs)
    call_many(
        client_mesh,
        "sync",
        [Req(f"{URL}/abort"), Req(f"{URL}/abort"), Req(f"{URL}/nowhere"), Req(f"{URL}/ok")],
    )
    text = client_mesh.metrics_exposition()[0].decode()
    assert _count(text, "istio_requests_total", response_code="418", response_flags="FI") == 2
    assert _count(text, "istio_requests_total", response_code="404", response_flags="NR") == 1
    assert _count(text, "istio_requests_total", response_code="200", response_flags="-") == 1
    assert _count(text, "istio_requests_total", destination_service=HOST) == 4


def test_openmetrics_exposition_on_request(serve: Serve) -> None:
    client_mesh, _, port = _setup(serve, "asgi", _no_retries())
    call(client_mesh, "sync", f"{URL}/ok")
    response = httpx.get(
        f"http://127.0.0.1:{port}/metrics/", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


@pytest.mark.parametrize("mode", MODES)
def test_access_log_has_one_envoy_style_line_per_call(serve: Serve, mode: Mode) -> None:
    lines: list[str] = []
    port_mesh = make_mesh(app="reviews", version="v2")
    port = serve(_fastapi_reviews(port_mesh))
    mesh = make_mesh(
        service_entry(HOST, [(port, {"app": "reviews", "version": "v2"})]),
        _no_retries("\n    timeout: 5s"),
        access_log=AccessLogger("JSON", sink=lines.append),
    )
    call_many(mesh, mode, [Req(f"{URL}/ok", headers={"x-request-id": "abc"}), Req(f"{URL}/fail")])
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (first["response_code"], first["response_flags"], first["request_id"]) == (200, "-", "abc")
    assert first["authority"] == "reviews:9080" and first["path"] == "/ok"
    assert first["upstream_host"] == f"127.0.0.1:{port}"
    assert second["response_code"] == 503


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_a_destination_the_caller_knows_leaves_its_identity_out_and_every_call_is_labelled(
    serve: Serve, mode: Mode, kind: str
) -> None:
    client_mesh, _, _ = _setup(serve, kind, _no_retries())
    results = call_many(client_mesh, mode, [Req(f"{URL}/ok")] * 5)
    assert [PEER_HEADER in r.headers for r in results] == [True, False, False, False, False]
    client_side = client_mesh.metrics_exposition()[0].decode()
    assert _count(client_side, "istio_requests_total", reporter="source", **DESTINATION) == 5


@pytest.mark.parametrize("mode", MODES)
def test_the_labels_follow_whoever_listens_at_the_address_now(serve: Serve, mode: Mode) -> None:
    serving: dict[str, Any] = {"app": _fastapi_reviews(make_mesh(app="reviews", version="v2"))}

    async def current(scope: Any, receive: Any, send: Any) -> None:
        await serving["app"](scope, receive, send)

    port = serve(current)
    client_mesh = make_mesh(service_entry(HOST, [(port, {"app": "reviews", "version": "v2"})]), _no_retries())
    client_mesh.peer_exchange.ttl = 0.3

    def calls_to(workload: str, version: str) -> float:
        text = client_mesh.metrics_exposition()[0].decode()
        return _count(
            text, "istio_requests_total", destination_workload=workload, destination_version=version
        )

    call_many(client_mesh, mode, [Req(f"{URL}/ok")] * 3)
    assert calls_to("reviews-v2", "v2") == 3
    # Another mesh workload takes the address over: it does not know the token, and answers at once.
    serving["app"] = _fastapi_reviews(make_mesh(app="reviews", version="v3"))
    call_many(client_mesh, mode, [Req(f"{URL}/ok")] * 3)
    assert calls_to("reviews-v3", "v3") == 3
    # An app outside the mesh never answers: what the caller knew lasts until it goes unconfirmed, then
    # the endpoint's own labels describe the destination.
    serving["app"] = _fastapi_reviews_bare()
    time.sleep(0.35)
    call_many(client_mesh, mode, [Req(f"{URL}/ok")] * 2)
    assert calls_to("unknown", "v2") == 2


def _fastapi_reviews_bare() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> PlainTextResponse:
        return PlainTextResponse("fine" * 10)

    return app
