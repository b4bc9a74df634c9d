"""ConsulRegistry and self-registration against a Consul API (libmesh's ConsulServer, or the real agent named
by ``LIBMESH_TEST_CONSUL_HTTP_ADDR``), driven through the real py-consul client; traffic goes through a real
Mesh with real httpx (MeshTransport) to real uvicorn/werkzeug servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from typing import Any

import consul
import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

import libmesh
from libmesh.adapters.httpx import AsyncMeshTransport, MeshTransport
from libmesh.config import load_yaml
from libmesh.config.loader import ConfigSet
from libmesh.discovery.consul import (
    ChainedRegistry,
    ConsulRegistry,
    HealthCheck,
    Registration,
    endpoint_labels,
    kubernetes_hosts,
    register_workload,
    register_workload_async,
)
from libmesh.discovery.static import StaticRegistry
from libmesh.testing import ConsulServer

from ..http.servers import uvicorn_server, werkzeug_server
from ..http.support import Upstream
from .conftest import Agent
from .test_server import eventually

WORKLOAD = libmesh.Workload(
    name="productpage-v1", namespace="default", labels={"app": "productpage", "version": "v1"}
)
#: How soon a change in Consul must show in routing (the issue's bar).
WITHIN = 1.0


@contextmanager
def upstreams(*names: str, kind: str = "wsgi") -> Iterator[dict[str, tuple[Upstream, int]]]:
    """Real servers for recording upstreams: name -> (upstream, port)."""
    with ExitStack() as stack:
        out = {}
        for n in names:
            up = Upstream(n)
            port = stack.enter_context(
                werkzeug_server(up.wsgi()) if kind == "wsgi" else uvicorn_server(up.asgi())
            )
            out[n] = (up, port)
        yield out


@contextmanager
def consul_mesh(
    agent: Agent, *docs: str, services: list[str] | None, **kwargs: Any
) -> Iterator[tuple[libmesh.Mesh, ConsulRegistry, CollectorRegistry]]:
    """A Mesh whose registry is a ConsulRegistry on ``agent`` (staleness on a private metrics registry)."""
    metrics = CollectorRegistry()
    kwargs.setdefault("backoff_base", 0.05)
    kwargs.setdefault("backoff_max", 0.5)
    registry = ConsulRegistry(agent.http_addr, services=services, metrics_registry=metrics, **kwargs)
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in docs if d.strip())
    config = load_yaml(text) if text else ConfigSet()
    mesh = libmesh.Mesh(config, workload=WORKLOAD, registry=registry)
    try:
        yield mesh, registry, metrics
    finally:
        mesh.close()
        registry.close()


def register(c: consul.Consul, name: str, sid: str, port: int, **kwargs: Any) -> None:
    assert c.agent.service.register(name, service_id=sid, address="127.0.0.1", port=port, **kwargs)


def get(client: httpx.Client, url: str) -> tuple[int, str | None]:
    r = client.get(url, timeout=5)
    try:
        upstream = r.json().get("upstream")
    except ValueError:
        upstream = None
    return r.status_code, upstream


# --- routing follows Consul -----------------------------------------------------------------------------


def test_a_registered_endpoint_receives_traffic_within_a_second(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-reviews"
    with upstreams("a", "b") as ups, consul_mesh(agent, services=[name]) as (mesh, registry, _):
        host = f"{name}.default.svc.cluster.local"
        assert registry.endpoints(host, 9080) == ()  # followed, no instance yet: known and empty
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            assert get(client, f"http://{name}:9080/")[0] == 503
            start = time.monotonic()
            register(c, name, f"{name}-a", ups["a"][1])
            eventually(lambda: get(client, f"http://{name}:9080/") == (200, "a"), timeout=5, interval=0.01)
            assert time.monotonic() - start < WITHIN
            start = time.monotonic()
            register(c, name, f"{name}-b", ups["b"][1])
            eventually(lambda: get(client, f"http://{name}:9080/")[1] == "b", timeout=5, interval=0.01)
            assert time.monotonic() - start < WITHIN
            # Both now share the traffic.
            seen = {get(client, f"http://{name}:9080/")[1] for _ in range(20)}
            assert seen == {"a", "b"}


def _drain_test(agent: Agent, names: str, remove: str) -> None:
    c = agent.client()
    name = f"{names}-ratings"
    with upstreams("a", "b", kind="asgi") as ups, consul_mesh(agent, services=[name]) as (mesh, _, _):
        for n in ("a", "b"):
            register(c, name, f"{name}-{n}", ups[n][1], check=consul.Check.ttl("30s"))
            c.agent.check.ttl_pass(f"service:{name}-{n}")
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            eventually(lambda: {get(client, f"http://{name}:9080/")[1] for _ in range(10)} == {"a", "b"})
            t0 = time.monotonic()
            if remove == "deregister":
                c.agent.service.deregister(f"{name}-b")
            else:
                c.agent.check.ttl_fail(f"service:{name}-b")
            statuses = []
            deadline = t0 + 2 * WITHIN
            while time.monotonic() < deadline:  # bounded: 2 s of calls
                statuses.append(get(client, f"http://{name}:9080/")[0])
                time.sleep(0.005)
    assert set(statuses) == {200}, "no request may fail while an endpoint leaves"
    b = ups["b"][0]
    late = [s.at - t0 for s in b.seen if s.at > t0]
    assert all(t < WITHIN for t in late), f"b still got requests {late} s after it left"
    assert ups["a"][0].count > 0


def test_a_deregistered_endpoint_gets_no_new_requests_after_a_second(agent: Agent, names: str) -> None:
    _drain_test(agent, names, "deregister")


def test_an_endpoint_whose_check_fails_gets_no_new_requests_after_a_second(agent: Agent, names: str) -> None:
    _drain_test(agent, names, "fail")


def test_consul_down_keeps_the_last_endpoints_and_staleness_rises(
    own_server: ConsulServer, names: str
) -> None:
    agent = Agent("127.0.0.1", own_server.port, own_server)
    c = agent.client()
    name = f"{names}-details"
    with upstreams("a", "b") as ups, consul_mesh(agent, services=[name]) as (mesh, registry, metrics):
        register(c, name, f"{name}-a", ups["a"][1])
        sample = {"registry": "consul", "service": name}
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            eventually(lambda: get(client, f"http://{name}:9080/") == (200, "a"))
            assert registry.staleness(name) == 0.0
            assert metrics.get_sample_value("libmesh_registry_staleness_seconds", sample) == 0.0
            own_server.stop()
            down = time.monotonic()
            statuses = []
            while time.monotonic() - down < 1.5:  # bounded: 1.5 s of calls while Consul is down
                statuses.append(get(client, f"http://{name}:9080/"))
                time.sleep(0.01)
            assert set(statuses) == {(200, "a")}
            staleness = registry.staleness(name)
            assert 1.0 < staleness < 5.0
            assert registry.last_error(name)
            metric = metrics.get_sample_value("libmesh_registry_staleness_seconds", sample)
            assert metric is not None and metric >= staleness
            # Back: the registry reconnects (backoff at most 0.5 s here), catches up and is fresh again.
            own_server.start()
            register(c, name, f"{name}-b", ups["b"][1])
            eventually(lambda: registry.staleness(name) == 0.0, timeout=5)
            eventually(lambda: "b" in {get(client, f"http://{name}:9080/")[1] for _ in range(10)}, timeout=5)
            assert metrics.get_sample_value("libmesh_registry_staleness_seconds", sample) == 0.0


def test_consul_unreachable_at_start_then_up(names: str) -> None:
    server = ConsulServer()
    server.start()
    port = server.port
    server.stop()  # the port is known, nobody listens
    name = f"{names}-late"
    try:
        registry = ConsulRegistry(
            f"127.0.0.1:{port}",
            services=[name],
            ready_timeout=0.3,
            backoff_base=0.05,
            backoff_max=0.2,
            metrics_registry=None,
        )
        try:
            assert registry.endpoints(f"{name}.default.svc.cluster.local", 80) is None
            assert registry.staleness(name) > 0.2
            server.start()
            consul.Consul(host="127.0.0.1", port=port).agent.service.register(name, service_id=name, port=1)
            eventually(lambda: registry.endpoints(f"{name}.default.svc.cluster.local", 80), timeout=5)
            assert registry.staleness(name) == 0.0
        finally:
            registry.close()
    finally:
        server.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_subsets_by_meta_and_tag_version(agent: Agent, names: str, mode: str) -> None:
    c = agent.client()
    name = f"{names}-rev"
    dr = f"""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: {name}}}
        spec:
          host: {name}
          subsets:
          - {{name: v1, labels: {{version: v1}}}}
          - {{name: v2, labels: {{version: v2}}}}
        """
    vs = f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: {name}}}
        spec:
          hosts: [{name}]
          http:
          - match: [{{headers: {{x-version: {{exact: v1}}}}}}]
            route: [{{destination: {{host: {name}, subset: v1}}}}]
          - route: [{{destination: {{host: {name}, subset: v2}}}}]
        """
    with (
        upstreams("v1", "v2a", "v2b", kind="asgi") as ups,
        consul_mesh(agent, dr, vs, services=[name]) as (
            mesh,
            registry,
            _,
        ),
    ):
        register(c, name, f"{name}-v1", ups["v1"][1], tags=["version=v1"])
        register(c, name, f"{name}-v2a", ups["v2a"][1], meta={"version": "v2"})
        register(
            c, name, f"{name}-v2b", ups["v2b"][1], meta={"version": "v2"}, tags=["version=v1"]
        )  # meta wins
        eventually(lambda: len(registry.endpoints(f"{name}.default.svc.cluster.local", 9080) or ()) == 3)
        url = f"http://{name}:9080/"

        async def calls() -> tuple[list[str], list[str]]:
            async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
                default = [(await client.get(url)).json()["upstream"] for _ in range(20)]
                v1 = [
                    (await client.get(url, headers={"x-version": "v1"})).json()["upstream"] for _ in range(10)
                ]
                return default, v1

        if mode == "async":
            default, v1 = asyncio.run(calls())
        else:
            with httpx.Client(transport=MeshTransport(mesh)) as client:
                default = [client.get(url).json()["upstream"] for _ in range(20)]
                v1 = [client.get(url, headers={"x-version": "v1"}).json()["upstream"] for _ in range(10)]
    assert set(default) == {"v2a", "v2b"}
    assert set(v1) == {"v1"}


def test_following_the_catalog_picks_up_new_services(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-new"
    with upstreams("a") as ups, consul_mesh(agent, services=None) as (mesh, registry, _):
        assert "consul" not in registry.services()
        start = time.monotonic()
        register(c, name, f"{name}-1", ups["a"][1], meta={"version": "v1"})
        eventually(
            lambda: registry.endpoints(f"{name}.default.svc.cluster.local", 80), timeout=5, interval=0.01
        )
        assert time.monotonic() - start < WITHIN
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            assert get(client, f"http://{name}/") == (200, "a")
        c.agent.service.deregister(f"{name}-1")
        eventually(lambda: name not in registry.services(), timeout=5)
        assert registry.endpoints(f"{name}.default.svc.cluster.local", 80) is None


def test_service_entry_gives_ports_and_consul_the_endpoints(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-se"
    se = f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}}}
        spec:
          hosts: [{name}.service.consul]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          location: MESH_INTERNAL
        """
    config = load_yaml(textwrap.dedent(se))
    static = StaticRegistry.from_config(config)
    consul_registry = ConsulRegistry(agent.http_addr, services=[name], metrics_registry=None)
    chained = ChainedRegistry(static, consul_registry)
    mesh = libmesh.Mesh(config, workload=WORKLOAD, registry=chained)
    try:
        with upstreams("a") as ups, httpx.Client(transport=MeshTransport(mesh)) as client:
            host = f"{name}.service.consul"
            info = chained.service(host, 80)
            assert info is not None and info.protocol == "HTTP"  # the ServiceEntry's
            register(c, name, f"{name}-1", ups["a"][1])
            eventually(lambda: chained.endpoints(host, 80), timeout=5)
            assert [e.port for e in chained.endpoints(host, 80) or ()] == [ups["a"][1]]
            assert get(client, f"http://{host}/") == (200, "a")
    finally:
        mesh.close()
        chained.close()


def test_registry_lookups_are_precomputed(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-fast"
    register(c, name, f"{name}-1", 1111, meta={"version": "v1", "protocol": "http"}, tags=["canary"])
    registry = ConsulRegistry(agent.http_addr, services=[name], metrics_registry=None)
    try:
        host = f"{name}.default.svc.cluster.local"
        eps = registry.endpoints(host, 9080)
        assert eps is registry.endpoints(host, 1)  # the same tuple for every port
        [ep] = eps or ()
        assert (ep.address, ep.port) == ("127.0.0.1", 1111)
        assert dict(ep.labels) == {"version": "v1", "protocol": "http", "canary": "true"}
        assert registry.endpoints(f"{name}.service.consul", 9080) == eps
        info = registry.service(host, 9080)
        assert info is not None and info is registry.service(host, 9080)
        assert info.service_entry == f"consul/{name}"
        assert info.protocol == "http"
        assert info.namespace == "default"
        assert registry.endpoints("other.default.svc.cluster.local", 9080) is None
        assert registry.service("other.default.svc.cluster.local", 9080) is None
    finally:
        registry.close()


# --- mapping --------------------------------------------------------------------------------------------


def test_endpoint_labels_precedence() -> None:
    assert endpoint_labels(["canary", "version=v1", "zone|a"], {"version": "v2"}) == {
        "canary": "true",
        "version": "v2",
        "zone": "a",
    }
    assert endpoint_labels(["a=b=c", "=x", ""], {}) == {"a": "b=c"}


def test_kubernetes_hosts() -> None:
    hosts = kubernetes_hosts("prod")
    assert hosts("Reviews", {}) == ["reviews.prod.svc.cluster.local", "reviews.service.consul"]
    assert hosts("reviews", {"k8s-namespace": "shop"})[0] == "reviews.shop.svc.cluster.local"
    assert kubernetes_hosts(domain="example.org", consul_domain=None)("a", {}) == [
        "a.default.svc.example.org"
    ]


def test_bad_address_is_named() -> None:
    with pytest.raises(ValueError, match="not-an-address"):
        ConsulRegistry("not-an-address", services=["x"], metrics_registry=None)


# --- self-registration ----------------------------------------------------------------------------------


def instance(c: consul.Consul, sid: str) -> dict[str, Any] | None:
    return c.agent.services().get(sid)


def check_of(c: consul.Consul, name: str, sid: str) -> str | None:
    _, entries = c.health.service(name)
    for e in entries:
        if e["Service"]["ID"] == sid:
            return str(e["Checks"][-1]["Status"])
    return None


def test_register_workload_with_an_http_check(agent: Agent, names: str) -> None:
    c = agent.client()
    up = Upstream("self")
    workload = libmesh.Workload(
        name=f"{names}-app-v2",
        namespace="default",
        labels={"app": f"{names}-app", "version": "v2", "app.kubernetes.io/part-of": "shop"},
    )
    with werkzeug_server(up.wsgi()) as port:
        reg = Registration.from_workload(
            workload, port, address="127.0.0.1", check=HealthCheck.http("/healthz", interval="1s")
        )
        handle = register_workload(reg, address=agent.http_addr)
        try:
            svc = instance(c, reg.id)
            assert svc is not None
            assert svc["Service"] == f"{names}-app"
            assert svc["Port"] == port
            assert svc["Meta"] == {"app": f"{names}-app", "version": "v2", "k8s-namespace": "default"}
            assert "app.kubernetes.io/part-of=shop" in svc["Tags"]  # not a valid meta key: a tag
            eventually(lambda: check_of(c, f"{names}-app", reg.id) == "passing", timeout=6)
            assert any(s.path == "/healthz" for s in up.seen)
            # The registry reads the labels back, tags and meta together.
            registry = ConsulRegistry(agent.http_addr, services=[f"{names}-app"], metrics_registry=None)
            try:
                [ep] = registry.endpoints(f"{names}-app.default.svc.cluster.local", 80) or ()
                assert ep.labels["app.kubernetes.io/part-of"] == "shop"
                assert ep.labels["version"] == "v2"
            finally:
                registry.close()
        finally:
            handle.close()
        assert instance(c, reg.id) is None
        handle.close()  # twice is harmless


def test_register_workload_with_a_grpc_check(agent: Agent, names: str) -> None:
    c = agent.client()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        reg = Registration(
            f"{names}-grpc", port, labels={"version": "v1"}, check=HealthCheck.grpc(interval="1s")
        )
        with register_workload(reg, address=agent.http_addr):
            eventually(lambda: check_of(c, f"{names}-grpc", reg.id) == "passing", timeout=6)
        assert instance(c, reg.id) is None
    finally:
        server.stop(0)


def test_register_workload_keeps_a_ttl_check_passing(agent: Agent, names: str) -> None:
    c = agent.client()
    reg = Registration(f"{names}-ttl", 8080, check=HealthCheck.ttl_check("1s"))
    with register_workload(reg, address=agent.http_addr):
        eventually(lambda: check_of(c, f"{names}-ttl", reg.id) == "passing", timeout=3)
        time.sleep(1.5)  # longer than the TTL: the heartbeat keeps it passing
        assert check_of(c, f"{names}-ttl", reg.id) == "passing"
    assert instance(c, reg.id) is None


def test_register_workload_async(agent: Agent, names: str) -> None:
    c = agent.client()
    reg = Registration(f"{names}-aio", 8081, labels={"version": "v3"}, check=HealthCheck.ttl_check("2s"))

    async def main() -> None:
        handle = await register_workload_async(reg, address=agent.http_addr)
        try:
            for _ in range(100):
                if check_of(c, f"{names}-aio", reg.id) == "passing":
                    break
                await asyncio.sleep(0.05)
            assert check_of(c, f"{names}-aio", reg.id) == "passing"
            svc = instance(c, reg.id)
            assert svc is not None and svc["Meta"] == {"version": "v3"}
        finally:
            await handle.aclose()

    asyncio.run(main())
    assert instance(c, reg.id) is None


def test_registration_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="port"):
        Registration("x", 0)
    with pytest.raises(ValueError, match="kind"):
        HealthCheck("exec")
    with pytest.raises(ValueError, match="interval"):
        HealthCheck.http(interval="often")


def test_registration_from_env() -> None:
    wl = libmesh.Workload(name="reviews-v2", namespace="shop", labels={"app": "reviews", "version": "v2"})
    assert Registration.from_env(wl, 9080, {}) is None  # opt-in
    reg = Registration.from_env(
        wl,
        9080,
        {"LIBMESH_CONSUL_REGISTER": "1", "LIBMESH_CONSUL_CHECK": "http:/ready", "INSTANCE_IP": "10.0.0.7"},
    )
    assert reg is not None
    assert (reg.name, reg.address, reg.port) == ("reviews", "10.0.0.7", 9080)
    assert reg.payload()["Check"] == {"HTTP": "http://10.0.0.7:9080/ready", "Interval": "10s"}
    assert reg.payload()["Meta"] == {"app": "reviews", "version": "v2", "k8s-namespace": "shop"}
    ttl = Registration.from_env(wl, 1, {"LIBMESH_CONSUL_REGISTER": "true", "LIBMESH_CONSUL_CHECK": "ttl:5s"})
    assert ttl is not None and ttl.payload()["Check"] == {"TTL": "5s"}
    default = Registration.from_env(wl, 1, {"LIBMESH_CONSUL_REGISTER": "yes"})
    assert default is not None and default.payload()["Check"] == {"TCP": "127.0.0.1:1", "Interval": "10s"}
    with pytest.raises(ValueError, match="LIBMESH_CONSUL_CHECK"):
        Registration.from_env(wl, 1, {"LIBMESH_CONSUL_REGISTER": "1", "LIBMESH_CONSUL_CHECK": "exec"})


def test_a_host_called_before_consul_knows_it_gets_traffic_once_registered(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-unknown"
    with (
        upstreams("a") as ups,
        consul_mesh(agent, services=None) as (mesh, registry, _),
        httpx.Client(transport=MeshTransport(mesh)) as client,
    ):
        # Unknown yet: passed through to a name no DNS resolves (503 or a connect error).
        assert get(client, f"http://{name}:8080/")[0] >= 500
        register(c, name, f"{name}-1", ups["a"][1])
        eventually(lambda: registry.endpoints(f"{name}.default.svc.cluster.local", 8080), timeout=5)
        assert get(client, f"http://{name}:8080/") == (200, "a")
