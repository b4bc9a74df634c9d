"""Hot reload from files: each valid change lands within a second, an invalid one is rejected with its
file:line while the last good version keeps serving, and the mesh says which version it runs (Python API,
metrics, status endpoint, ``libmesh status``). Real uvicorn upstreams, real httpx through MeshTransport,
real inotify through watchfiles."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import libmesh
from libmesh.adapters.asgi import status_app
from libmesh.adapters.httpx import MeshTransport
from libmesh.cli import main as cli
from tests.consul.conftest import Agent
from tests.http.conftest import Serve
from tests.http.support import Upstream, service_entry

URL = "http://reviews:9080/r"


def route(subset: str, *, weight: int = 100, extra: str = "") -> str:
    """The reviews VirtualService sending everything to ``subset`` (a negative ``weight`` is invalid)."""
    return (
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        "metadata: {name: reviews}\n"
        "spec:\n"
        "  hosts: [reviews]\n"
        "  http:\n"
        "  - route:\n"
        f"    - destination: {{host: reviews, subset: {subset}}}\n"
        f"      weight: {weight}\n" + extra
    )


def rules() -> str:
    return (
        "apiVersion: networking.istio.io/v1\n"
        "kind: DestinationRule\n"
        "metadata: {name: reviews}\n"
        "spec:\n"
        "  host: reviews\n"
        "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
    )


def write(path: Path, text: str) -> None:
    """Replace ``path`` the way deployment tools do: write a temporary file, then rename it over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture
def upstreams(serve: Serve) -> Iterator[dict[str, int]]:
    yield {name: serve(Upstream(name)) for name in ("v1", "v2")}


@pytest.fixture
def config_dir(tmp_path: Path, upstreams: dict[str, int]) -> Path:
    d = tmp_path / "mesh"
    d.mkdir()
    write(
        d / "services.yaml",
        service_entry(
            "reviews.default.svc.cluster.local",
            [(upstreams["v1"], {"version": "v1"}), (upstreams["v2"], {"version": "v2"})],
        )
        + "\n---\n"
        + rules(),
    )
    write(d / "route.yaml", route("v1"))
    return d


def mesh_for(config_dir: Path, **kwargs: object) -> libmesh.Mesh:
    wl = libmesh.Workload(name="productpage-v1", labels={"app": "productpage", "version": "v1"})
    return libmesh.Mesh.from_paths(config_dir, workload=wl, **kwargs)  # type: ignore[arg-type]


def answered_by(client: httpx.Client) -> str:
    r = client.get(URL)
    assert r.status_code == 200, r.text
    upstream: str = r.json()["upstream"]
    return upstream


def until(client: httpx.Client, subset: str, timeout: float = 1.0) -> float:
    """Seconds until calls reach ``subset``; fails after ``timeout``."""
    start = time.monotonic()
    while answered_by(client) != subset:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not routed to {subset} within {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_valid_change_is_in_effect_within_a_second(config_dir: Path) -> None:
    mesh = mesh_for(config_dir)
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            assert answered_by(client) == "v1"
            before = mesh.config_version
            write(config_dir / "route.yaml", route("v2"))
            took = until(client, "v2")
            assert took < 1.0
            assert mesh.config_version != before
            assert mesh.status()["config"]["reloads"]["applied"] >= 1
    finally:
        mesh.close()


def test_an_invalid_change_is_rejected_with_file_and_line_and_the_last_good_config_serves(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = mesh_for(config_dir)
    caplog.set_level(logging.ERROR, logger="libmesh.reload")
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            good = mesh.config_version
            write(config_dir / "route.yaml", route("v2", weight=-1))
            deadline = time.monotonic() + 2
            while mesh.status()["config"]["reloads"]["rejected"] < 1:
                assert time.monotonic() < deadline, "the invalid change was not noticed"
                time.sleep(0.01)
            status = mesh.status()["config"]
            where = f"{config_dir / 'route.yaml'}:9:"  # the weight line
            assert status["last_error"].startswith(where), status["last_error"]
            assert "weight" in status["last_error"]
            assert status["last_rejected"] == [str(config_dir / "route.yaml")]
            assert any(where in r.getMessage() for r in caplog.records)
            assert mesh.config_version == good
            assert {answered_by(client) for _ in range(20)} == {"v1"}
            # Fixing the file applies it and clears the error.
            write(config_dir / "route.yaml", route("v2"))
            until(client, "v2")
            assert mesh.status()["config"]["last_error"] is None
    finally:
        mesh.close()


def test_a_rejected_file_does_not_hold_back_the_other_files(
    config_dir: Path, upstreams: dict[str, int]
) -> None:
    mesh = mesh_for(config_dir, watch=False)
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            # In one reload: route.yaml turns invalid while a new file adds a header rule; the first keeps
            # its last good version (v1), the second applies, as Istio admits resources one by one.
            write(config_dir / "route.yaml", route("v2", weight=-1))
            write(
                config_dir / "ratings.yaml",
                route("v2").replace("name: reviews}", "name: ratings}").replace("[reviews]", "[ratings]"),
            )
            result = mesh.reload()
            assert result.applied
            assert result.rejected == (str(config_dir / "route.yaml"),)
            assert [str(e.file) for e in result.errors] == [str(config_dir / "route.yaml")]
            names = {d.resource.metadata.name for d in mesh.config.documents}
            assert {"reviews", "ratings"} <= names
            assert answered_by(client) == "v1"
    finally:
        mesh.close()


def test_a_deleted_file_takes_its_resources_away(config_dir: Path) -> None:
    mesh = mesh_for(config_dir, watch=False)
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            write(config_dir / "route.yaml", route("v2"))
            assert mesh.reload().applied
            assert answered_by(client) == "v2"
            (config_dir / "route.yaml").unlink()
            assert mesh.reload().applied
            # Without the VirtualService the default route spreads over both versions.
            assert {answered_by(client) for _ in range(40)} == {"v1", "v2"}
    finally:
        mesh.close()


def test_the_version_follows_meaning_not_text(config_dir: Path) -> None:
    mesh = mesh_for(config_dir, watch=False)
    try:
        version = mesh.config_version
        assert len(version) == 12 and int(version, 16) >= 0
        write(
            config_dir / "route.yaml",
            "# a comment\n" + route("v1").replace("metadata: {name: reviews}", "metadata:\n  name: reviews"),
        )
        result = mesh.reload()
        assert not result.applied and result.version == version
        write(config_dir / "route.yaml", route("v2"))
        assert mesh.reload().applied
        assert mesh.config_version != version
    finally:
        mesh.close()


def test_without_watching_nothing_changes_until_reload(config_dir: Path) -> None:
    mesh = mesh_for(config_dir, watch=False)
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            write(config_dir / "route.yaml", route("v2"))
            time.sleep(0.5)
            assert answered_by(client) == "v1"
            assert mesh.reload().applied
            assert answered_by(client) == "v2"
    finally:
        mesh.close()


def test_metrics_acknowledge_the_version_and_count_reloads(config_dir: Path) -> None:
    mesh = mesh_for(config_dir, watch=False)
    try:
        write(config_dir / "route.yaml", route("v2"))
        assert mesh.reload().applied
        write(config_dir / "route.yaml", route("v1", weight=-7))
        assert not mesh.reload().applied
        body, _ = mesh.metrics_exposition()
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        (info,) = families["libmesh_config_info"].samples
        assert info.labels == {"version": mesh.config_version, "source": f"files: {config_dir}"}
        assert info.value == 1
        reloads = {
            s.labels["result"]: s.value
            for s in families["libmesh_config_reloads"].samples
            if s.name.endswith("_total")
        }
        assert reloads == {"applied": 1.0, "rejected": 1.0}
        (stamp,) = families["libmesh_config_last_applied_timestamp_seconds"].samples
        assert abs(stamp.value - time.time()) < 60
    finally:
        mesh.close()


def test_status_endpoint_and_cli_show_the_version_in_use(
    config_dir: Path, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = mesh_for(config_dir)
    try:
        port = serve(status_app(mesh))
        url = f"http://127.0.0.1:{port}/libmesh/status"
        status = httpx.get(url).json()
        assert status["config"]["version"] == mesh.config_version
        assert status["config"]["source"] == f"files: {config_dir}"
        assert cli(["status", url]) == 0
        out = capsys.readouterr().out
        assert f"config version: {mesh.config_version}" in out
        assert cli(["status", "--json", url]) == 0
        assert json.loads(capsys.readouterr().out)["config"]["version"] == mesh.config_version
        # After a change, the endpoint reports the version the mesh actually switched to.
        write(config_dir / "route.yaml", route("v2"))
        deadline = time.monotonic() + 1.5
        while httpx.get(url).json()["config"]["version"] == status["config"]["version"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(url).json()["config"]["version"] == mesh.config_version
        assert cli(["status", "http://127.0.0.1:1/nothing"]) == 1
    finally:
        mesh.close()


def test_status_shows_consul_staleness_through_the_chained_registry(agent: Agent) -> None:
    from libmesh.discovery.consul import ConsulRegistry

    name = f"stale-{time.monotonic_ns()}"
    registry = ConsulRegistry(agent.http_addr, services=[name], metrics_registry=None)
    mesh = libmesh.Mesh(workload=libmesh.Workload(name="pp"), discovery=registry)
    try:
        assert registry.wait_ready(5)
        services = mesh.status()["registry"]["ConsulRegistry"]["services"]
        assert services[name] == {"staleness_seconds": 0.0, "last_error": None}
    finally:
        mesh.close()
        registry.close()


def test_a_followed_directory_that_vanishes_keeps_the_config_serving(config_dir: Path) -> None:
    import shutil

    mesh = mesh_for(config_dir)
    try:
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            version = mesh.config_version
            saved = {p.name: p.read_text() for p in config_dir.iterdir()}
            shutil.rmtree(config_dir)
            deadline = time.monotonic() + 2
            while not (mesh.status()["config"]["last_error"] or "").startswith("reading files:"):
                assert time.monotonic() < deadline, "the missing directory was not noticed"
                time.sleep(0.02)
            assert mesh.config_version == version
            assert answered_by(client) == "v1"
            # When it comes back (with a change), following resumes.
            config_dir.mkdir()
            for name, text in saved.items():
                write(config_dir / name, text)
            write(config_dir / "route.yaml", route("v2"))
            until(client, "v2", timeout=3.0)
    finally:
        mesh.close()
