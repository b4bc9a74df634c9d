"""Envoy's response flags, computed once per call and returned in ``x-libmesh-response-flags``, for every
way a call can end. Several flags print in Envoy's fixed order ("UF,URX", "DI,FI")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from libmesh import Mesh

from .conftest import Serve
from .servers import free_port, reset_server
from .support import MODES, Mode, Req, Upstream, always, call, call_many, make_mesh, service_entry, slow

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _vs(route: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - {route}
"""


DEST = "route: [{destination: {host: reviews}}]"
NO_RETRY = DEST + "\n    retries: {attempts: 0}"


def _mesh(port: int, *docs: str) -> Mesh:
    return make_mesh(service_entry(HOST, [(port, {"app": "reviews", "version": "v1"})]), *docs)


Case = Callable[[Serve], tuple[Mesh, int, str]]
"""Builds a scenario: the mesh, and the status and flags a call must end with."""


def _ok(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(serve(Upstream("u"))), 200, "-"


def _no_route(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(serve(Upstream("u")), _vs("match: [{uri: {prefix: /other}}]\n    " + DEST)), 404, "NR"


def _no_cluster(serve: Serve) -> tuple[Mesh, int, str]:
    return (
        _mesh(serve(Upstream("u")), _vs("route: [{destination: {host: reviews, subset: missing}}]")),
        503,
        "NC",
    )


def _no_healthy(serve: Serve) -> tuple[Mesh, int, str]:
    subsets = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v9, labels: {version: v9}}]
"""
    return (
        _mesh(serve(Upstream("u")), subsets, _vs("route: [{destination: {host: reviews, subset: v9}}]")),
        503,
        "UH",
    )


def _connect_failure(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(free_port(), _vs(NO_RETRY)), 503, "UF"


def _connect_failure_retried(serve: Serve) -> tuple[Mesh, int, str]:
    return (
        _mesh(free_port(), _vs(DEST + "\n    retries: {attempts: 2, retryOn: connect-failure}")),
        503,
        "UF,URX",
    )


def _retries_exhausted(serve: Serve) -> tuple[Mesh, int, str]:
    port = serve(Upstream("u", always(503)))
    return _mesh(port, _vs(DEST + "\n    retries: {attempts: 1, retryOn: 5xx}")), 503, "URX"


def _upstream_error_unretried(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(serve(Upstream("u", always(500))), _vs(NO_RETRY)), 500, "-"


def _timeout(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(serve(Upstream("u", slow(1.0))), _vs(NO_RETRY + "\n    timeout: 50ms")), 504, "UT"


def _per_try_timeouts(serve: Serve) -> tuple[Mesh, int, str]:
    route = DEST + "\n    retries: {attempts: 1, perTryTimeout: 50ms, retryOn: 5xx}"
    return _mesh(serve(Upstream("u", slow(1.0))), _vs(route)), 504, "UT,URX"


def _abort(serve: Serve) -> tuple[Mesh, int, str]:
    route = "fault: {abort: {httpStatus: 500, percentage: {value: 100}}}\n    " + DEST
    return _mesh(serve(Upstream("u")), _vs(route)), 500, "FI"


def _delay(serve: Serve) -> tuple[Mesh, int, str]:
    route = "fault: {delay: {fixedDelay: 10ms, percentage: {value: 100}}}\n    " + DEST
    return _mesh(serve(Upstream("u")), _vs(route)), 200, "DI"


def _delay_and_abort(serve: Serve) -> tuple[Mesh, int, str]:
    fault = "{abort: {httpStatus: 503, percentage: {value: 100}}, delay: {fixedDelay: 10ms, percentage: {value: 100}}}"
    return _mesh(serve(Upstream("u")), _vs(f"fault: {fault}\n    " + DEST)), 503, "DI,FI"


def _direct_response(serve: Serve) -> tuple[Mesh, int, str]:
    return _mesh(serve(Upstream("u")), _vs("directResponse: {status: 204}")), 204, "-"


CASES: dict[str, Case] = {
    "success": _ok,
    "no route": _no_route,
    "no cluster": _no_cluster,
    "no healthy upstream": _no_healthy,
    "connect failure": _connect_failure,
    "connect failure, retries exhausted": _connect_failure_retried,
    "5xx, retries exhausted": _retries_exhausted,
    "5xx without retry": _upstream_error_unretried,
    "route timeout": _timeout,
    "per-try timeouts exhausted": _per_try_timeouts,
    "fault abort": _abort,
    "fault delay": _delay,
    "delay then abort": _delay_and_abort,
    "direct response": _direct_response,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("mode", MODES)
def test_response_flags(serve: Serve, mode: Mode, case: str) -> None:
    mesh, status, flags = CASES[case](serve)
    result = call(mesh, mode, URL)
    assert (result.status, result.flags) == (status, flags)
    text = mesh.metrics_exposition()[0].decode()
    assert f'response_code="{status}"' in text and f'response_flags="{flags}"' in text


@pytest.mark.parametrize("mode", MODES)
def test_connection_reset_before_headers_is_uc(mode: Mode) -> None:
    with reset_server() as port:
        result = call(_mesh(port, _vs(NO_RETRY)), mode, URL)
    assert (result.status, result.flags) == (503, "UC")
    assert b"connection termination" in result.body


@pytest.mark.parametrize("mode", MODES)
def test_overflow_is_uo(serve: Serve, mode: Mode) -> None:
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
"""
    mesh = _mesh(serve(Upstream("u", slow(0.3))), rule, _vs(NO_RETRY))
    results = call_many(mesh, mode, [Req(URL), Req(URL)], concurrency=2)
    assert sorted((r.status, r.flags) for r in results) == [(200, "-"), (503, "UO")]
