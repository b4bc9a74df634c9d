"""Acceptance 1: routing through real servers. Header routing, weighted splits, rewrite, redirect,
directResponse, header operations and mirroring behave as Istio's documentation describes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from libmesh import Mesh, Workload

from .conftest import Serve
from .servers import free_port
from .support import MODES, Mode, Req, Upstream, call, call_many, make_mesh, service_entry, slow

REVIEWS = "http://reviews:9080"
SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def _two_versions(serve: Serve, kind: str = "asgi") -> tuple[Upstream, Upstream, str]:
    v1, v2 = Upstream("v1"), Upstream("v2")
    entry = service_entry(
        "reviews.default.svc.cluster.local",
        [
            (serve(v1, kind), {"app": "reviews", "version": "v1"}),
            (serve(v2, kind), {"app": "reviews", "version": "v2"}),
        ],
    )
    return v1, v2, entry


def _vs(http: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
{http}
"""


JASON_TO_V2 = _vs("""
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""")


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_end_user_jason_reaches_v2_and_everyone_else_v1(serve: Serve, mode: Mode, kind: str) -> None:
    v1, v2, entry = _two_versions(serve, kind)
    mesh = make_mesh(entry, SUBSETS, JASON_TO_V2)
    results = call_many(
        mesh,
        mode,
        [
            Req(f"{REVIEWS}/reviews/1", headers={"end-user": "jason"}),
            Req(f"{REVIEWS}/reviews/1"),
            Req(f"{REVIEWS}/reviews/1", headers={"end-user": "alice"}),
            Req(f"{REVIEWS}/reviews/1", headers={"End-User": "jason"}),
        ],
    )
    assert [r.upstream for r in results] == ["v2", "v1", "v1", "v2"]
    assert all(r.status == 200 and r.flags == "-" for r in results)
    # The logical Host is kept: the upstream sees the name the app called, not the endpoint address.
    assert {s.host for s in v1.seen + v2.seen} == {"reviews:9080"}
    assert {s.path for s in v1.seen + v2.seen} == {"/reviews/1"}


def test_mesh_from_paths_routes_like_the_yaml_says(serve: Serve, tmp_path: Path) -> None:
    _v1, _v2, entry = _two_versions(serve)
    directory = tmp_path
    (directory / "entry.yaml").write_text(entry)
    (directory / "rules.yaml").write_text(SUBSETS + "\n---\n" + JASON_TO_V2)
    mesh = Mesh.from_paths(
        directory, workload=Workload(name="productpage-v1", labels={"app": "productpage", "version": "v1"})
    )
    assert call(mesh, "sync", f"{REVIEWS}/", headers={"end-user": "jason"}).upstream == "v2"
    assert call(mesh, "sync", f"{REVIEWS}/").upstream == "v1"


@pytest.mark.parametrize("mode", MODES)
def test_fifty_fifty_split_over_2000_requests_lands_within_4_percent(serve: Serve, mode: Mode) -> None:
    v1, v2, entry = _two_versions(serve)
    split = _vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
""")
    mesh = make_mesh(entry, SUBSETS, split, rand=random.Random(2000))
    # Seeded: the mesh draws from a fixed sequence of random numbers, so the share is checked without
    # chance failures (unseeded, +-4 % over 2000 is +-3.6 standard deviations: 1 run in about 2800).
    results = call_many(mesh, mode, [Req(f"{REVIEWS}/r")] * 2000)
    assert all(r.status == 200 for r in results)
    assert v1.count + v2.count == 2000
    assert 0.46 <= v1.count / 2000 <= 0.54, (v1.count, v2.count)


def test_ninety_ten_split_follows_the_weights(serve: Serve) -> None:
    v1, v2, entry = _two_versions(serve)
    split = _vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
""")
    mesh = make_mesh(entry, SUBSETS, split)
    call_many(mesh, "sync", [Req(f"{REVIEWS}/r")] * 1000)
    assert 0.06 <= v2.count / 1000 <= 0.14, (v1.count, v2.count)


@pytest.mark.parametrize("mode", MODES)
def test_prefix_rewrite_and_authority_rewrite(serve: Serve, mode: Mode) -> None:
    v1, _, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/, authority: reviews-internal:9080}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {exact: /old}}]
    rewrite: {uri: /new}
    route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    first, second = call_many(mesh, mode, [Req(f"{REVIEWS}/api/items?page=2"), Req(f"{REVIEWS}/old?x=1")])
    assert first.status == second.status == 200
    assert (v1.seen[0].path, v1.seen[0].host) == ("/v2/items?page=2", "reviews-internal:9080")
    assert (v1.seen[1].path, v1.seen[1].host) == ("/new?x=1", "reviews:9080")


@pytest.mark.parametrize("mode", MODES)
def test_uri_regex_rewrite(serve: Serve, mode: Mode) -> None:
    v1, _, entry = _two_versions(serve)
    vs = _vs(r"""
  - match: [{uri: {regex: "/service/[^/]+/.*"}}]
    rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\2/instance/\\1"}}
    route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    assert call(mesh, mode, f"{REVIEWS}/service/foo/v1/api?q=1").status == 200
    assert v1.seen[0].path == "/v1/api/instance/foo?q=1"


@pytest.mark.parametrize("mode", MODES)
def test_redirect_is_returned_to_the_caller(serve: Serve, mode: Mode) -> None:
    v1, v2, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /v1/bookRatings}}]
    redirect: {uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here, redirectCode: 302}
  - match: [{uri: {prefix: /secure}}]
    redirect: {scheme: https, port: 8443}
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    results = call_many(
        mesh,
        mode,
        [Req(f"{REVIEWS}/v1/bookRatings/7"), Req(f"{REVIEWS}/moved?a=b"), Req(f"{REVIEWS}/secure/x")],
    )
    # httpx does not follow redirects by default: the caller gets the redirect the mesh made.
    assert [r.status for r in results] == [301, 302, 301]
    assert results[0].headers["location"] == "http://newratings.default.svc.cluster.local/v1/bookRatings"
    assert results[1].headers["location"] == "http://reviews:9080/here?a=b"
    assert results[2].headers["location"] == "https://reviews:8443/secure/x"
    assert v1.count == v2.count == 0


def test_redirect_followed_by_the_client_lands_on_the_new_path(serve: Serve) -> None:
    import httpx

    from libmesh.adapters.httpx import MeshTransport

    v1, _, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new}
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    with httpx.Client(transport=MeshTransport(mesh), follow_redirects=True) as client:
        response = client.get(f"{REVIEWS}/old")
    assert response.status_code == 200
    assert [s.path for s in v1.seen] == ["/new"]


@pytest.mark.parametrize("mode", MODES)
def test_direct_response_answers_without_calling_upstream(serve: Serve, mode: Mode) -> None:
    v1, v2, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /maintenance}}]
    directResponse: {status: 503, body: {string: "down for maintenance"}}
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418}
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    down, teapot, normal = call_many(
        mesh, mode, [Req(f"{REVIEWS}/maintenance"), Req(f"{REVIEWS}/teapot"), Req(f"{REVIEWS}/x")]
    )
    assert (down.status, down.body) == (503, b"down for maintenance")
    assert (teapot.status, teapot.body) == (418, b"")
    assert normal.status == 200
    assert v1.count == 1 and v2.count == 0


@pytest.mark.parametrize("mode", MODES)
def test_local_replies_carry_the_route_response_edits_and_meet_its_fault(serve: Serve, mode: Mode) -> None:
    # Envoy's router finalizes a redirect's or direct response's headers with the route's response edits,
    # and the fault filter, which runs before the router, aborts or delays them like any other request.
    # Validation forbids a fault beside a redirect or direct response in one route; a root route's fault
    # reaches them through delegation.
    v1, v2, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
    headers: {response: {set: {x-served-by: mesh}, add: {cache-control: no-store}}}
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here}
    headers: {response: {set: {x-moved: "yes"}, remove: [location]}}
  - match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    delegate: {name: broken}
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 0.2s, percentage: {value: 100}}}
    delegate: {name: slow}
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    delegates = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  http: [{directResponse: {status: 200}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow}
spec:
  http: [{redirect: {uri: /fast}}]
"""
    mesh = make_mesh(entry, SUBSETS, vs, delegates)
    teapot, moved, broken, slow_ = call_many(
        mesh,
        mode,
        [Req(f"{REVIEWS}/teapot"), Req(f"{REVIEWS}/moved"), Req(f"{REVIEWS}/broken"), Req(f"{REVIEWS}/slow")],
    )
    assert (teapot.status, teapot.body) == (418, b"short and stout")
    assert teapot.headers["x-served-by"] == "mesh"
    assert teapot.headers["cache-control"] == "no-store"
    assert moved.status == 301
    assert moved.headers["x-moved"] == "yes"
    assert "location" not in moved.headers
    assert broken.status == 503
    assert broken.flags == "FI"
    assert slow_.status == 301
    assert slow_.headers["location"] == "http://reviews:9080/fast"
    assert slow_.flags == "DI"
    assert slow_.elapsed >= 0.2
    assert v1.count == v2.count == 0


@pytest.mark.parametrize("mode", MODES)
def test_the_path_is_normalized_before_routing_and_sent_normalized(serve: Serve, mode: Mode) -> None:
    # Istio's default BASE normalization: encoded unreserved characters decoded, backslashes made slashes,
    # dot segments removed; the upstream gets the path the route matched. A path with %00 is refused.
    v1, v2, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    encoded, dotted, nul = call_many(
        mesh,
        mode,
        [
            Req(f"{REVIEWS}/%61dmin/x?q=%61"),
            Req(f"{REVIEWS}/x%2F%2e%2e/%2e%2e/admin"),
            Req(f"{REVIEWS}/admin%00"),
        ],
    )
    assert (encoded.status, dotted.status, nul.status) == (200, 200, 400)
    assert [s.path for s in v2.seen] == ["/admin/x?q=%61", "/admin"]
    assert v1.count == 0


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", MODES)
def test_request_and_response_header_operations(serve: Serve, mode: Mode, kind: str) -> None:
    v1, _v2, entry = _two_versions(serve, kind)
    vs = _vs("""
  - headers:
      request:
        set: {x-route-set: route, x-overwritten: by-route}
        add: {x-added: extra}
        remove: [x-secret]
      response:
        set: {x-served-by: mesh}
        add: {cache-control: no-store}
        remove: [content-type]
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {set: {x-destination: v1}}
        response: {set: {x-destination-response: v1}}
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    result = call(
        mesh,
        mode,
        f"{REVIEWS}/h",
        headers={"x-secret": "hunter2", "x-overwritten": "by-app", "x-added": "app"},
    )
    seen = v1.seen[0].headers
    assert seen["x-route-set"] == "route"
    assert seen["x-overwritten"] == "by-route"
    assert seen["x-destination"] == "v1"
    assert "x-secret" not in seen
    # `add` appends to what the app sent instead of replacing it.
    assert seen["x-added"].replace(" ", "") in ("app,extra",)
    assert result.headers["x-served-by"] == "mesh"
    assert result.headers["x-destination-response"] == "v1"
    assert (
        "no-store" in result.headers.get_list("cache-control")
        or result.headers["cache-control"] == "no-store"
    )
    assert "content-type" not in result.headers


@pytest.mark.parametrize("mode", MODES)
def test_mirror_sends_a_shadow_copy_to_the_mirror_with_shadow_host(serve: Serve, mode: Mode) -> None:
    v1, v2, entry = _two_versions(serve)
    vs = _vs("""
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 100}
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    reqs = [Req(f"{REVIEWS}/m", method="POST", content=b"payload")] * 5
    results = call_many(mesh, mode, reqs, linger=lambda: v2.count == 5)
    assert all(r.upstream == "v1" for r in results)
    assert v2.count == 5
    assert {s.host for s in v2.seen} == {"reviews-shadow:9080"}
    assert {(s.method, s.path, s.body) for s in v2.seen} == {("POST", "/m", b"payload")}
    assert v1.count == 5


def test_mirror_percentage_zero_mirrors_nothing_and_fifty_about_half(serve: Serve) -> None:
    _v1, v2, entry = _two_versions(serve)
    mirror_3 = Upstream("mirror")
    port_3 = serve(mirror_3)
    entry_3 = service_entry("shadow.default.svc.cluster.local", [(port_3, {"app": "shadow"})])
    vs = _vs("""
  - match: [{uri: {prefix: /none}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 0}
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
""")
    mesh = make_mesh(entry, entry_3, SUBSETS, vs)
    reqs = [Req(f"{REVIEWS}/none")] * 50 + [Req(f"{REVIEWS}/half")] * 400
    call_many(mesh, "async", reqs, linger=_settled(mirror_3))
    assert v2.count == 0
    assert 150 <= mirror_3.count <= 250, mirror_3.count


@pytest.mark.parametrize("mode", MODES)
def test_mirror_never_slows_or_fails_the_primary(serve: Serve, mode: Mode) -> None:
    v1 = Upstream("v1")
    stuck = Upstream("stuck", slow(2.0))
    entry = service_entry(
        "reviews.default.svc.cluster.local",
        [(serve(v1), {"version": "v1"}), (serve(stuck), {"version": "v2"}), (free_port(), {"version": "v3"})],
    )
    subsets = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
"""
    vs = _vs("""
  - match: [{uri: {prefix: /slow}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 100}
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 100}
""")
    mesh = make_mesh(entry, subsets, vs)
    slow_mirror, dead_mirror = call_many(mesh, mode, [Req(f"{REVIEWS}/slow"), Req(f"{REVIEWS}/dead")])
    assert slow_mirror.status == dead_mirror.status == 200
    assert slow_mirror.elapsed < 0.5, slow_mirror.elapsed
    assert dead_mirror.flags == "-"


@pytest.mark.parametrize("mode", MODES)
def test_no_matching_route_is_404_nr(serve: Serve, mode: Mode) -> None:
    v1, _, entry = _two_versions(serve)
    vs = _vs("""
  - match: [{uri: {prefix: /only}}]
    route: [{destination: {host: reviews, subset: v1}}]
""")
    mesh = make_mesh(entry, SUBSETS, vs)
    result = call(mesh, mode, f"{REVIEWS}/elsewhere")
    assert (result.status, result.flags) == (404, "NR")
    assert v1.count == 0


def test_gateway_bound_routes_and_cors_are_reported_not_enforced(serve: Serve) -> None:
    """A VirtualService bound only to a Gateway does not apply to the mesh's own calls (Istio's sidecars
    ignore it too); corsPolicy is reported as not yet enforced."""
    v1, _, entry = _two_versions(serve)
    gateway_only = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-edge}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - directResponse: {status: 418}
"""
    cors = _vs("""
  - corsPolicy: {allowOrigins: [{exact: "https://shop.example"}], allowMethods: [GET]}
    route: [{destination: {host: reviews, subset: v1}}]
""").replace("name: reviews}", "name: reviews-cors}")
    mesh = make_mesh(entry, SUBSETS, gateway_only)
    assert call(mesh, "sync", f"{REVIEWS}/").status == 200
    warnings = [str(w) for w in mesh.config.warnings]
    assert any("bookinfo-gateway" in w and "not served" in w for w in warnings), warnings

    mesh = make_mesh(entry, SUBSETS, cors)
    v1.reset()
    result = call(mesh, "sync", f"{REVIEWS}/", headers={"origin": "https://shop.example"})
    assert result.upstream == "v1"
    assert any("corsPolicy" in w and "not yet enforced" in w for w in (str(w) for w in mesh.config.warnings))
    assert v1.count == 1


def _settled(upstream: Upstream, quiet: float = 0.1) -> Callable[[], bool]:
    """A ``linger`` condition: ``upstream`` has received nothing new for ``quiet`` seconds (mirrored
    requests are fired and forgotten, so the test waits for them to stop arriving)."""
    last = [-1, time.monotonic()]

    def check() -> bool:
        now = time.monotonic()
        if upstream.count != last[0]:
            last[0], last[1] = upstream.count, now
            return False
        return now - last[1] >= quiet

    return check


@pytest.mark.parametrize("mode", MODES)
def test_closing_the_client_lets_mirrored_copies_in_flight_arrive(serve: Serve, mode: Mode) -> None:
    """The client closes right after its calls; the shadow copies, slower than the primary, still arrive
    (close waits for them, briefly)."""
    v1 = Upstream("v1")
    v2 = Upstream("v2", slow(0.2))
    entry = service_entry(
        "reviews.default.svc.cluster.local",
        [(serve(v1), {"app": "reviews", "version": "v1"}), (serve(v2), {"app": "reviews", "version": "v2"})],
    )
    vs = _vs("""
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
""")
    results = call_many(make_mesh(entry, SUBSETS, vs), mode, [Req(f"{REVIEWS}/m")] * 3)
    assert all(r.upstream == "v1" for r in results)
    assert v2.count == 3
