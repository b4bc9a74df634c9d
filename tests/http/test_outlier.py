"""Acceptance 5: outlier detection. A failing endpoint is ejected after its consecutive errors, gets no
request until its ejection time ends (base time x number of ejections), and the caller, retrying on
another endpoint, sees no failure."""

from __future__ import annotations

import time

import httpx
import pytest

from libmesh import Mesh
from libmesh.adapters.httpx import AsyncMeshTransport, MeshTransport

from .conftest import Serve
from .servers import free_port
from .support import MODES, Mode, Req, Upstream, always, call_many, make_mesh, run, service_entry

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


def _rules(outlier: str, retries: str = "{attempts: 3, retryOn: 5xx, backoff: 1ms}") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {outlier}
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


# maxEjectionPercent 34: Envoy ejects only while 100 * (ejected + 1) / hosts <= maxEjectionPercent, so
# Istio's default 10 % never ejects one host of three.
FAST_OUTLIER = "{consecutive5xxErrors: 5, interval: 500ms, baseEjectionTime: 500ms, maxEjectionPercent: 34}"


def _load(mesh: Mesh, mode: Mode, seconds: float, max_calls: int = 8000) -> list[int]:
    """Sequential calls for ``seconds`` (at most ``max_calls``); the statuses the caller saw."""
    statuses: list[int] = []
    end = time.monotonic() + seconds
    if mode == "sync":
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            while time.monotonic() < end and len(statuses) < max_calls:
                statuses.append(client.get(URL).status_code)
        return statuses

    async def main() -> list[int]:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
            while time.monotonic() < end and len(statuses) < max_calls:
                statuses.append((await client.get(URL)).status_code)
        return statuses

    return run(main())


def _batches(times: list[float], gap: float = 0.5) -> list[list[float]]:
    """Group request times separated by less than ``gap`` seconds."""
    out: list[list[float]] = []
    for t in times:
        if out and t - out[-1][-1] < gap:
            out[-1].append(t)
        else:
            out.append([t])
    return out


@pytest.mark.parametrize("mode", MODES)
def test_failing_endpoint_is_ejected_after_5_errors_and_rests_for_its_ejection_time(
    serve: Serve, mode: Mode
) -> None:
    good = [Upstream(f"good{i}") for i in range(2)]
    bad = Upstream("bad", always(503))
    entry = service_entry(HOST, [(serve(u), {"app": "reviews"}) for u in [*good, bad]])
    mesh = make_mesh(entry, _rules(FAST_OUTLIER))
    statuses = _load(mesh, mode, 1.6)

    assert len(statuses) >= 300
    assert sum(s == 200 for s in statuses) / len(statuses) >= 0.999
    batches = _batches([s.at for s in bad.seen], gap=0.25)
    # 5 errors eject it for 500 ms; it comes back at the first 500 ms interval tick after that, takes 5 more
    # errors, and is ejected again for twice as long.
    assert [len(b) for b in batches][:2] == [5, 5], [len(b) for b in batches]
    rest = batches[1][0] - batches[0][-1]
    assert 0.5 <= rest <= 1.15, rest
    if len(batches) > 2:
        assert batches[2][0] - batches[1][-1] >= 1.0


def test_ejection_is_visible_on_the_cluster_and_ends_on_time(serve: Serve) -> None:
    good = [Upstream(f"good{i}") for i in range(2)]
    bad = Upstream("bad", always(503))
    ports = [serve(u) for u in [*good, bad]]
    mesh = make_mesh(service_entry(HOST, [(p, {"app": "reviews"}) for p in ports]), _rules(FAST_OUTLIER))
    with httpx.Client(transport=MeshTransport(mesh)) as client:
        while bad.count < 5:
            assert client.get(URL).status_code == 200
        ejected_at = time.monotonic()
        (cluster,) = mesh.clusters().values()
        assert list(cluster.stats().ejected) == [f"127.0.0.1:{ports[2]}"]
        while time.monotonic() - ejected_at < 0.45:
            assert client.get(URL).status_code == 200
        assert bad.count == 5
        while bad.count == 5 and time.monotonic() - ejected_at < 3:
            assert client.get(URL).status_code == 200
    assert 0.5 <= time.monotonic() - ejected_at <= 1.2


def test_default_max_ejection_percent_never_ejects_one_of_three(serve: Serve) -> None:
    """Istio's default maxEjectionPercent (10 %) with 3 endpoints: Envoy's rule allows no ejection."""
    good = [Upstream(f"good{i}") for i in range(2)]
    bad = Upstream("bad", always(503))
    entry = service_entry(HOST, [(serve(u), {"app": "reviews"}) for u in [*good, bad]])
    mesh = make_mesh(entry, _rules("{consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 1s}"))
    statuses = call_many(mesh, "sync", [Req(URL)] * 150)
    assert all(r.status == 200 for r in statuses)
    assert bad.count >= 25  # about a third of the first attempts, all the time


@pytest.mark.parametrize("mode", MODES)
def test_every_endpoint_ejected_answers_503_uh(serve: Serve, mode: Mode) -> None:
    ups = [Upstream(f"bad{i}", always(503)) for i in range(2)]
    entry = service_entry(HOST, [(serve(u), {"app": "reviews"}) for u in ups])
    mesh = make_mesh(
        entry,
        _rules(
            "{consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}",
            "{attempts: 0}",
        ),
    )
    results = call_many(mesh, mode, [Req(URL)] * 4)
    assert [r.status for r in results] == [503] * 4
    assert [r.flags for r in results] == ["-", "-", "UH", "UH"]
    assert results[2].body == b"no healthy upstream"
    assert sum(u.count for u in ups) == 2


def test_consecutive_gateway_errors_count_502_503_504_but_not_500(serve: Serve) -> None:
    five_hundred, bad_gateway = Upstream("500", always(500)), Upstream("502", always(502))
    entry = service_entry(
        HOST, [(serve(five_hundred), {"app": "reviews"}), (serve(bad_gateway), {"app": "reviews"})]
    )
    mesh = make_mesh(
        entry,
        _rules(
            "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, interval: 10s, baseEjectionTime: 30s, "
            "maxEjectionPercent: 100}",
            "{attempts: 0}",
        ),
    )
    call_many(mesh, "sync", [Req(URL)] * 60)
    assert bad_gateway.count == 3
    assert five_hundred.count == 57


@pytest.mark.parametrize("mode", MODES)
def test_connect_failures_eject_a_dead_endpoint(serve: Serve, mode: Mode) -> None:
    """A closed port is a gateway error too; the default retry policy retries the connect failure on the
    live endpoint meanwhile, so the caller sees only successes."""
    live = Upstream("live")
    entry = service_entry(HOST, [(free_port(), {"app": "reviews"}), (serve(live), {"app": "reviews"})])
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
"""
    mesh = make_mesh(entry, dr)
    results = call_many(mesh, mode, [Req(URL)] * 100)
    assert all(r.status == 200 for r in results)
    (cluster,) = mesh.clusters().values()
    assert len(cluster.stats().ejected) == 1
    assert live.count == 100


def test_outlier_detection_with_min_health_percent_panics_to_all_endpoints(serve: Serve) -> None:
    """minHealthPercent 100 with one of two endpoints ejected: Envoy's panic mode ignores ejection."""
    good, bad = Upstream("good"), Upstream("bad", always(503))
    entry = service_entry(HOST, [(serve(good), {"app": "reviews"}), (serve(bad), {"app": "reviews"})])
    mesh = make_mesh(
        entry,
        _rules(
            "{consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50, "
            "minHealthPercent: 100}",
            "{attempts: 0}",
        ),
    )
    call_many(mesh, "sync", [Req(URL)] * 60)
    assert bad.count >= 10  # still chosen after its ejection
    (cluster,) = mesh.clusters().values()
    stats = cluster.stats()
    assert len(stats.ejected) == 1 and stats.panic
