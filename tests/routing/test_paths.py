"""MeshConfig ``pathNormalization``: the path Istio's sidecars route on and send upstream. The expected
values are the examples of Istio's "Authorization Policy Normalization" reference and MeshConfig's
``ProxyPathNormalization`` comments."""

from __future__ import annotations

import textwrap

import pytest

from libmesh import Mesh, Workload
from libmesh.config import load_yaml
from libmesh.errors import ConfigError
from libmesh.policy.engine import Reply, Send
from libmesh.routing.call import Call
from libmesh.routing.paths import MODES, is_rejected, normalize_path

CASES = [
    # (path, NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES)
    ("/a/../b", "/a/../b", "/b", "/b", "/b"),
    (
        "/public/./data/abc/../xyz",
        "/public/./data/abc/../xyz",
        "/public/data/xyz",
        "/public/data/xyz",
        "/public/data/xyz",
    ),
    (
        "/some%2fdata/%61%62%63",
        "/some%2fdata/%61%62%63",
        "/some%2fdata/abc",
        "/some%2fdata/abc",
        "/some/data/abc",
    ),
    ("/some\\data", "/some\\data", "/some/data", "/some/data", "/some/data"),
    ("/some//data///abc", "/some//data///abc", "/some//data///abc", "/some/data/abc", "/some/data/abc"),
    ("/a%2F/b", "/a%2F/b", "/a%2F/b", "/a%2F/b", "/a/b"),
    ("/x%5cy", "/x%5cy", "/x%5cy", "/x%5cy", "/x/y"),
    ("/%2e%2E/admin", "/%2e%2E/admin", "/admin", "/admin", "/admin"),
    ("/%2d%5F%7e%30%5A", "/%2d%5F%7e%30%5A", "/-_~0Z", "/-_~0Z", "/-_~0Z"),
    ("/%2561", "/%2561", "/%2561", "/%2561", "/%2561"),  # decoded once: %25 is not unreserved
    ("/a/b/..", "/a/b/..", "/a/", "/a/", "/a/"),
    ("/..", "/..", "/", "/", "/"),
    ("/a/.", "/a/.", "/a/", "/a/", "/a/"),
    ("/.well-known/x", "/.well-known/x", "/.well-known/x", "/.well-known/x", "/.well-known/x"),
    ("/reviews/1", "/reviews/1", "/reviews/1", "/reviews/1", "/reviews/1"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_mode_normalizes_as_istio_documents(case: tuple[str, ...]) -> None:
    path, *expected = case
    assert [normalize_path(path, mode) for mode in MODES] == expected
    # Normalizing twice changes nothing more.
    assert [normalize_path(normalize_path(path, m), m) for m in MODES] == expected


def test_the_query_is_left_alone() -> None:
    assert normalize_path("/a/../b?next=/x/../y&q=%61//", "MERGE_SLASHES") == "/b?next=/x/../y&q=%61//"


def test_an_unchanged_path_is_the_same_object() -> None:
    target = "/reviews/1?x=1"
    assert normalize_path(target, "BASE") is target


def test_an_encoded_nul_is_refused_whatever_the_mode() -> None:
    assert is_rejected("/a%00b") and is_rejected("/x/%00")
    assert not is_rejected("/a?q=%00") and not is_rejected("/a%2500")


def _mesh(normalization: str | None = None) -> Mesh:
    setting = f"\n  pathNormalization: {{normalization: {normalization}}}" if normalization else ""
    text = textwrap.dedent(
        """\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews}
        spec:
          hosts: [reviews.default.svc.cluster.local]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - match: [{uri: {prefix: /admin}}]
            route: [{destination: {host: reviews, subset: v2}}]
          - route: [{destination: {host: reviews, subset: v1}}]
        ---
        apiVersion: libmesh.io/v1alpha1
        kind: MeshConfig
        metadata: {name: mesh}
        spec:
          telemetry: {metrics: false, tracing: {enabled: false}}"""
    )
    return Mesh(load_yaml(text + setting + "\n"), workload=Workload(name="client"))


def _first(mesh: Mesh, path: str) -> Send | Reply:
    step = mesh.plan(Call(authority="reviews:9080", path=path), body_replayable=True).first()
    assert isinstance(step, Send | Reply)
    return step


@pytest.mark.parametrize(
    ("path", "sent"),
    [("/public/../admin/x", "/admin/x"), ("/%61dmin?x=/../", "/admin?x=/../"), ("/x\\..\\admin", "/admin")],
)
def test_the_default_routes_on_and_sends_the_normalized_path(path: str, sent: str) -> None:
    step = _first(_mesh(), path)
    assert isinstance(step, Send)
    assert (step.path, step.endpoint and step.endpoint.address) == (sent, "127.0.0.2")


def test_none_routes_on_the_path_as_it_came() -> None:
    step = _first(_mesh("NONE"), "/public/../admin")
    assert isinstance(step, Send)
    assert (step.path, step.endpoint and step.endpoint.address) == ("/public/../admin", "127.0.0.1")


def test_merge_slashes_is_opt_in() -> None:
    assert isinstance(step := _first(_mesh(), "//admin"), Send) and step.path == "//admin"
    assert isinstance(step := _first(_mesh("MERGE_SLASHES"), "//admin"), Send)
    assert (step.path, step.endpoint and step.endpoint.address) == ("/admin", "127.0.0.2")


def test_an_encoded_nul_is_answered_400_without_calling_anyone() -> None:
    step = _first(_mesh(), "/admin%00")
    assert isinstance(step, Reply) and step.status == 400


def test_an_unknown_mode_is_a_config_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as e:
        _mesh("SQUASH")
    assert "pathNormalization.normalization" in str(e.value) and "SQUASH" in str(e.value)
