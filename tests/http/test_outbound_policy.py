"""Discovery and the outbound traffic policy through real servers: ServiceEntry (STATIC and DNS) and
WorkloadEntry endpoints, subsets by label, and hosts outside the registry passed through under ALLOW_ANY or
refused with 502 under REGISTRY_ONLY."""

from __future__ import annotations

import pytest

from .conftest import Serve
from .support import MODES, Mode, Req, Upstream, always, call, call_many, make_mesh, service_entry

REGISTRY_ONLY = """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
ALLOW_ANY = REGISTRY_ONLY.replace("REGISTRY_ONLY", "ALLOW_ANY")


@pytest.mark.parametrize("explicit", [False, True], ids=["default", "explicit"])
@pytest.mark.parametrize("mode", MODES)
def test_allow_any_passes_unknown_hosts_through(serve: Serve, mode: Mode, explicit: bool) -> None:
    outside = Upstream("outside")
    port = serve(outside)
    mesh = make_mesh(ALLOW_ANY if explicit else "")
    result = call(mesh, mode, f"http://127.0.0.1:{port}/anything?q=1")
    assert (result.status, result.flags, result.upstream) == (200, "-", "outside")
    assert (outside.seen[0].host, outside.seen[0].path) == (f"127.0.0.1:{port}", "/anything?q=1")


@pytest.mark.parametrize("mode", MODES)
def test_passthrough_is_not_retried(serve: Serve, mode: Mode) -> None:
    """Istio's passthrough route has no retry policy: with MeshConfig's default retry policy retrying 5xx, a
    known service is retried while a 503 from an unknown host comes back as it is."""
    outside, known = Upstream("outside", always(503)), Upstream("known", always(503))
    mesh = make_mesh(
        """
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultHttpRetryPolicy: {attempts: 2, retryOn: 5xx}
""",
        service_entry("reviews.default.svc.cluster.local", [(serve(known), {"app": "reviews"})]),
    )
    unknown, registered = call_many(
        mesh, mode, [Req(f"http://127.0.0.1:{serve(outside)}/"), Req("http://reviews:9080/")]
    )
    assert (unknown.status, unknown.flags, outside.count) == (503, "-", 1)
    assert (registered.status, registered.flags, known.count) == (503, "URX", 3)


@pytest.mark.parametrize("mode", MODES)
def test_registry_only_refuses_unknown_hosts_with_502(serve: Serve, mode: Mode) -> None:
    outside, known = Upstream("outside"), Upstream("known")
    outside_port = serve(outside)
    mesh = make_mesh(
        REGISTRY_ONLY,
        service_entry("reviews.default.svc.cluster.local", [(serve(known), {"app": "reviews"})]),
    )
    blocked, allowed, wrong_port = call_many(
        mesh,
        mode,
        [Req(f"http://127.0.0.1:{outside_port}/"), Req("http://reviews:9080/"), Req("http://reviews:9999/")],
    )
    assert (blocked.status, blocked.upstream) == (502, None)
    assert outside.count == 0
    assert (allowed.status, allowed.upstream) == (200, "known")
    # A known host on a port its ServiceEntry does not declare is outside the registry too.
    assert wrong_port.status == 502


@pytest.mark.parametrize("mode", MODES)
def test_service_entry_dns_endpoint_is_resolved_by_name(serve: Serve, mode: Mode) -> None:
    upstream = Upstream("by-name")
    port = serve(upstream)
    entry = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: named}}
spec:
  hosts: [api.internal.example]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
"""
    result = call(make_mesh(REGISTRY_ONLY, entry), mode, "http://api.internal.example/v1")
    assert (result.status, result.upstream) == (200, "by-name")
    assert upstream.seen[0].host == "api.internal.example"


@pytest.mark.parametrize("mode", MODES)
def test_workload_entries_selected_by_a_service_entry_and_split_by_subset(serve: Serve, mode: Mode) -> None:
    v1, v2 = Upstream("v1"), Upstream("v2")
    p1, p2 = serve(v1), serve(v2)
    config = f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: details-v1}}
spec:
  address: 127.0.0.1
  ports: {{http: {p1}}}
  labels: {{app: details, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: details-v2}}
spec:
  address: 127.0.0.1
  ports: {{http: {p2}}}
  labels: {{app: details, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details}}
spec:
  hosts: [details.default.svc.cluster.local]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: details}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: details}}
spec:
  host: details
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: details}}
spec:
  hosts: [details]
  http:
  - match: [{{uri: {{prefix: /v2}}}}]
    route: [{{destination: {{host: details, subset: v2}}}}]
  - route: [{{destination: {{host: details, subset: v1}}}}]
"""
    mesh = make_mesh(config)
    results = call_many(mesh, mode, [Req("http://details:9080/v2/x"), Req("http://details:9080/x")] * 5)
    assert [r.upstream for r in results] == ["v2", "v1"] * 5


def test_fully_qualified_and_short_names_reach_the_same_service(serve: Serve) -> None:
    upstream = Upstream("reviews")
    mesh = make_mesh(
        service_entry("reviews.default.svc.cluster.local", [(serve(upstream), {"app": "reviews"})])
    )
    urls = [
        "http://reviews:9080/",
        "http://reviews.default:9080/",
        "http://reviews.default.svc:9080/",
        "http://reviews.default.svc.cluster.local:9080/",
    ]
    results = call_many(mesh, "sync", [Req(u) for u in urls])
    assert [r.upstream for r in results] == ["reviews"] * 4
    # Each keeps the Host the app used.
    assert [s.host for s in upstream.seen] == [u.split("/")[2] for u in urls]
