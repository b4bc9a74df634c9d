"""Issue acceptance: an app started with the middleware appears in Consul with its labels and a passing
check, and disappears on shutdown (ASGI lifespan; gRPC server stop; WSGI at exit or on close). Driven
through py-consul against libmesh.testing.ConsulServer, or a real agent (LIBMESH_TEST_CONSUL_HTTP_ADDR)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import libmesh
from libmesh.adapters.asgi import MeshMiddleware
from libmesh.adapters.grpc import ServerInterceptor, register_server
from libmesh.adapters.wsgi import MeshMiddleware as WsgiMeshMiddleware
from libmesh.discovery.consul import HealthCheck, Registration
from tests.consul.conftest import Agent


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _passing(agent: Agent, name: str) -> list[dict[str, Any]]:
    _, entries = agent.client().health.service(name, passing=True)
    return list(entries)


def _registered(agent: Agent, name: str) -> list[dict[str, Any]]:
    _, entries = agent.client().health.service(name)
    return list(entries)


def _mesh(agent: Agent, app: str, port: int, check: HealthCheck) -> libmesh.Mesh:
    wl = libmesh.Workload(name=f"{app}-v2", labels={"app": app, "version": "v2"})
    registration = Registration.from_workload(wl, port, check=check, service_id=f"{app}-{port}")
    return libmesh.Mesh(workload=wl, registration=registration)


def test_an_asgi_app_registers_on_startup_and_deregisters_on_shutdown(agent: Agent, monkeypatch: Any) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.http_addr)
    name = f"reviews-{time.monotonic_ns()}"
    sock = _listener()
    port = sock.getsockname()[1]

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    mesh = _mesh(agent, name, port, HealthCheck.http("/healthz", interval="1s"))
    app = MeshMiddleware(Starlette(routes=[Route("/healthz", healthz)]), mesh=mesh)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _until(lambda: bool(_passing(agent, name)), 10)
        (entry,) = _passing(agent, name)
        svc = entry["Service"]
        assert (svc["Address"], svc["Port"]) == ("127.0.0.1", port)
        assert svc["Meta"]["version"] == "v2" and svc["Meta"]["app"] == name
        assert all(c["Status"] == "passing" for c in entry["Checks"])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert _registered(agent, name) == []


def test_a_grpc_server_deregisters_when_it_stops(agent: Agent, monkeypatch: Any) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.http_addr)
    name = f"ratings-{time.monotonic_ns()}"
    probe = _listener()
    port = probe.getsockname()[1]
    probe.close()
    mesh = _mesh(agent, name, port, HealthCheck.tcp(interval="1s"))
    server = grpc.server(ThreadPoolExecutor(2), interceptors=[ServerInterceptor(mesh)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        register_server(server, mesh)
        _until(lambda: bool(_passing(agent, name)), 10)
    finally:
        server.stop(None).wait(5)
    assert _registered(agent, name) == []


def test_a_wsgi_app_registers_when_wrapped_and_deregisters_on_close(agent: Agent, monkeypatch: Any) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.http_addr)
    name = f"details-{time.monotonic_ns()}"
    mesh = _mesh(agent, name, 9, HealthCheck.ttl_check("30s"))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = WsgiMeshMiddleware(app, mesh=mesh)
    try:
        (entry,) = _registered(agent, name)
        assert entry["Service"]["Meta"]["version"] == "v2"
    finally:
        wrapped.registered.close()
    assert _registered(agent, name) == []


def test_without_a_registration_nothing_is_registered(agent: Agent) -> None:
    mesh = libmesh.Mesh(workload=libmesh.Workload(name="quiet", labels={"app": "quiet-app"}))
    assert mesh.registration is None
    assert WsgiMeshMiddleware(lambda e, s: [b""], mesh=mesh).registered is None
    assert _registered(agent, "quiet-app") == []


def test_from_env_builds_the_registration(monkeypatch: Any) -> None:
    env = {
        "LIBMESH_LABELS": "app=reviews,version=v3",
        "LIBMESH_CONSUL_REGISTER": "1",
        "LIBMESH_PORT": "9081",
        "LIBMESH_CONSUL_CHECK": "http:/healthz",
    }
    mesh = libmesh.Mesh.from_env(env)
    assert mesh.registration is not None
    payload = mesh.registration.payload()
    assert payload["Name"] == "reviews" and payload["Port"] == 9081
    assert payload["Meta"]["version"] == "v3"
    assert libmesh.Mesh.from_env({"LIBMESH_LABELS": "app=reviews"}).registration is None
