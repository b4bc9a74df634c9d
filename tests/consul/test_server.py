"""libmesh.testing.ConsulServer driven through the real py-consul client (sync and asyncio), as libmesh's
Consul code drives a real agent. With ``LIBMESH_TEST_CONSUL_HTTP_ADDR`` set, the same tests run against that
real agent (``consul agent -dev``), which is how the server's fidelity is checked; tests that stop or tune the
server skip there."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, TypeVar

import consul
import consul.aio
import grpc
import pytest
from consul.callback import CB
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from libmesh.testing.consul import parse_duration

from ..http.servers import werkzeug_server
from .conftest import Agent

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 5.0, interval: float = 0.05) -> T:
    """``fn()``'s first truthy value within ``timeout`` seconds (else the test fails with the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: last value {value!r}")
        time.sleep(interval)


def headers_of(c: consul.Consul, path: str) -> Any:
    """The response headers of a GET, read through py-consul's own HTTP layer."""
    return c.http.get(lambda r: r.headers, path)


def passing_ids(c: consul.Consul, name: str) -> list[str]:
    _, entries = c.health.service(name, passing=True)
    return sorted(e["Service"]["ID"] for e in entries)


# --- catalog and health ---------------------------------------------------------------------------------


def test_catalog_lists_the_consul_service_and_registered_services_with_their_tags(
    agent: Agent, names: str
) -> None:
    c = agent.client()
    index, services = c.catalog.services()
    assert "consul" in services  # a dev agent's catalog holds the server itself
    assert int(index) >= 1
    c.agent.service.register(f"{names}-web", service_id=f"{names}-web-1", port=80, tags=["a", "b"])
    c.agent.service.register(f"{names}-web", service_id=f"{names}-web-2", port=81, tags=["b", "c"])
    _, services = c.catalog.services()
    assert sorted(services[f"{names}-web"]) == ["a", "b", "c"]


def test_health_service_entry_has_consuls_shape(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-reviews"
    assert c.agent.service.register(
        name,
        service_id=f"{name}-1",
        address="127.0.0.1",
        port=9080,
        tags=["primary", "version=v2"],
        meta={"version": "v2"},
        weights={"Passing": 10, "Warning": 1},
        check=consul.Check.ttl("30s"),
    )
    index, entries = c.health.service(name)
    assert int(index) >= 1
    [entry] = entries
    assert set(entry) >= {"Node", "Service", "Checks"}
    node = entry["Node"]
    assert {"ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"} <= set(node)
    svc = entry["Service"]
    assert svc["ID"] == f"{name}-1"
    assert svc["Service"] == name
    assert svc["Tags"] == ["primary", "version=v2"]
    assert svc["Address"] == "127.0.0.1"
    assert svc["Port"] == 9080
    assert svc["Meta"] == {"version": "v2"}
    assert svc["Weights"] == {"Passing": 10, "Warning": 1}
    assert {"EnableTagOverride", "CreateIndex", "ModifyIndex"} <= set(svc)
    checks = {ch["CheckID"]: ch for ch in entry["Checks"]}
    assert set(checks) == {"serfHealth", f"service:{name}-1"}
    own = checks[f"service:{name}-1"]
    # A TTL check starts critical, named after the service, and carries the service's tags.
    assert own["Status"] == "critical"
    assert own["Name"] == f"Service '{name}' check"
    assert own["ServiceID"] == f"{name}-1"
    assert own["ServiceName"] == name
    assert own["ServiceTags"] == ["primary", "version=v2"]
    assert own["Type"] == "ttl"
    assert checks["serfHealth"]["Status"] == "passing"
    assert checks["serfHealth"]["ServiceID"] == ""


def test_default_weights_and_generated_check_ids_for_several_checks(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-multi"
    c.agent.service.register(
        name, service_id=name, port=1, check=consul.Check.ttl("30s"), extra_checks=[consul.Check.ttl("30s")]
    )
    _, [entry] = c.health.service(name)
    assert entry["Service"]["Weights"] == {"Passing": 1, "Warning": 1}
    ids = sorted(ch["CheckID"] for ch in entry["Checks"])
    assert ids == ["serfHealth", f"service:{name}:1", f"service:{name}:2"]


def test_passing_keeps_only_instances_whose_checks_all_pass(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-svc"
    for i in (1, 2, 3):
        c.agent.service.register(name, service_id=f"{name}-{i}", port=9000 + i, check=consul.Check.ttl("30s"))
    assert passing_ids(c, name) == []
    c.agent.check.ttl_pass(f"service:{name}-1")
    c.agent.check.ttl_warn(f"service:{name}-2")
    assert passing_ids(c, name) == [f"{name}-1"]
    _, everything = c.health.service(name)
    assert len(everything) == 3
    c.agent.check.ttl_pass(f"service:{name}-2")
    c.agent.check.ttl_fail(f"service:{name}-1", notes="going down")
    assert passing_ids(c, name) == [f"{name}-2"]
    statuses = {e["Service"]["ID"]: e["Checks"][-1] for e in c.health.service(name)[1]}
    assert statuses[f"{name}-1"]["Status"] == "critical"
    assert statuses[f"{name}-1"]["Output"] == "going down"


def test_service_without_checks_is_passing(agent: Agent, names: str) -> None:
    c = agent.client()
    c.agent.service.register(f"{names}-bare", service_id=f"{names}-bare", port=1)
    assert passing_ids(c, f"{names}-bare") == [f"{names}-bare"]


def test_tag_filter_requires_every_tag(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-tags"
    c.agent.service.register(name, service_id=f"{name}-1", port=1, tags=["a", "b"])
    c.agent.service.register(name, service_id=f"{name}-2", port=2, tags=["a"])
    _, entries = c.health.service(name, tag="a")
    assert len(entries) == 2
    _, entries = c.health.service(name, tag=["a", "b"])
    assert [e["Service"]["ID"] for e in entries] == [f"{name}-1"]
    _, entries = c.catalog.service(name, tag="b")
    assert [e["ServiceID"] for e in entries] == [f"{name}-1"]


def test_catalog_service_shape(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-cat"
    c.agent.service.register(name, service_id=name, address="127.0.0.2", port=7, meta={"k": "v"}, tags=["t"])
    index, [row] = c.catalog.service(name)
    assert int(index) >= 1
    assert row["ServiceID"] == name
    assert row["ServiceName"] == name
    assert row["ServiceAddress"] == "127.0.0.2"
    assert row["ServicePort"] == 7
    assert row["ServiceMeta"] == {"k": "v"}
    assert row["ServiceTags"] == ["t"]
    assert {"Node", "Address", "Datacenter", "ServiceWeights", "ModifyIndex"} <= set(row)


def test_unknown_service_is_an_empty_list(agent: Agent, names: str) -> None:
    c = agent.client()
    index, entries = c.health.service(f"{names}-nothing")
    assert entries == []
    assert int(index) >= 1
    assert c.catalog.service(f"{names}-nothing")[1] == []


def test_deregister_removes_the_instance_and_its_checks(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-gone"
    c.agent.service.register(name, service_id=name, port=1, check=consul.Check.ttl("30s"))
    assert f"service:{name}" in c.agent.checks()
    assert c.agent.service.deregister(name) is True
    assert c.health.service(name)[1] == []
    assert f"service:{name}" not in c.agent.checks()
    assert name not in c.catalog.services()[1]
    # Consul answers 404 for an unknown ID (py-consul reports it as False).
    assert c.agent.service.deregister(name) is False


def test_agent_services_and_service_definition(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-def"
    c.agent.service.register(name, service_id=f"{name}-1", port=5, meta={"version": "v1"})
    assert c.agent.services()[f"{name}-1"]["Meta"] == {"version": "v1"}
    assert c.agent.service_definition(f"{name}-1")["Port"] == 5


def test_reregistering_updates_the_instance(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-re"
    c.agent.service.register(name, service_id=name, port=1, meta={"version": "v1"})
    c.agent.service.register(name, service_id=name, port=2, meta={"version": "v2"})
    _, [entry] = c.health.service(name)
    assert entry["Service"]["Port"] == 2
    assert entry["Service"]["Meta"] == {"version": "v2"}


# --- blocking queries -----------------------------------------------------------------------------------


def test_blocking_query_waits_for_a_change(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-block"
    c.agent.service.register(name, service_id=f"{name}-1", port=1)
    index, _ = c.health.service(name)

    def register_later() -> None:
        time.sleep(0.3)
        agent.client().agent.service.register(name, service_id=f"{name}-2", port=2)

    t = threading.Thread(target=register_later)
    start = time.monotonic()
    t.start()
    new_index, entries = c.health.service(name, index=index, wait="10s")
    elapsed = time.monotonic() - start
    t.join()
    assert 0.2 < elapsed < 5
    assert int(new_index) > int(index)
    assert len(entries) == 2


def test_blocking_query_times_out_with_the_same_index(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-idle"
    c.agent.service.register(name, service_id=name, port=1)
    index, _ = c.health.service(name)
    start = time.monotonic()
    same, _ = c.health.service(name, index=index, wait="1s")
    elapsed = time.monotonic() - start
    assert same == index
    # wait plus at most wait/16 of jitter (and some scheduling slack)
    assert 0.9 < elapsed < 2.5


def test_an_older_index_answers_at_once(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-old"
    c.agent.service.register(name, service_id=name, port=1)
    index, _ = c.health.service(name)
    start = time.monotonic()
    again, _ = c.health.service(name, index=int(index) - 1, wait="5s")
    assert time.monotonic() - start < 1
    assert again == index


def test_unrelated_services_do_not_wake_a_service_watch(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-quiet"
    c.agent.service.register(name, service_id=name, port=1)
    index, _ = c.health.service(name)

    def noise() -> None:
        time.sleep(0.2)
        agent.client().agent.service.register(f"{names}-other", service_id=f"{names}-other", port=2)

    t = threading.Thread(target=noise)
    t.start()
    same, _ = c.health.service(name, index=index, wait="1s")
    t.join()
    assert same == index


def test_a_check_status_change_wakes_the_watch_but_a_repeated_status_does_not(
    agent: Agent, names: str
) -> None:
    c = agent.client()
    name = f"{names}-ttl"
    c.agent.service.register(name, service_id=name, port=1, check=consul.Check.ttl("30s"))
    c.agent.check.ttl_pass(f"service:{name}")
    index, _ = c.health.service(name, passing=True)
    c.agent.check.ttl_pass(f"service:{name}")  # same status: no new index
    same, _ = c.health.service(name, passing=True, index=index, wait="500ms")
    assert same == index
    c.agent.check.ttl_fail(f"service:{name}")
    new, entries = c.health.service(name, passing=True, index=index, wait="5s")
    assert int(new) > int(index)
    assert entries == []


def test_blocking_headers(agent: Agent, names: str) -> None:
    c = agent.client()
    headers = headers_of(c, f"/v1/health/service/{names}-h")
    assert int(headers["X-Consul-Index"]) >= 1
    assert headers["X-Consul-KnownLeader"] == "true"
    assert headers["X-Consul-LastContact"] == "0"
    assert "application/json" in headers["Content-Type"]


def test_bad_wait_is_rejected(agent: Agent, names: str) -> None:
    c = agent.client()
    with pytest.raises(consul.ConsulException):
        c.health.service(f"{names}-x", index=1, wait="soon")


# --- checks the server runs -------------------------------------------------------------------------------


class _Status:
    """A WSGI app answering its ``code`` attribute."""

    def __init__(self) -> None:
        self.code = 200
        self.hits = 0

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        self.hits += 1
        start_response(f"{self.code} X", [("Content-Type", "text/plain")])
        return [b"ok"]


def check_status(c: consul.Consul, name: str) -> str:
    _, [entry] = c.health.service(name)
    return str(entry["Checks"][-1]["Status"])


def test_ttl_expiry_turns_the_check_critical(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-exp"
    c.agent.service.register(name, service_id=name, port=1, check=consul.Check.ttl("1s"))
    c.agent.check.ttl_pass(f"service:{name}")
    assert passing_ids(c, name) == [name]
    index, _ = c.health.service(name, passing=True)
    _new, entries = c.health.service(name, passing=True, index=index, wait="10s")
    assert entries == []
    _, [entry] = c.health.service(name)
    own = entry["Checks"][-1]
    assert own["Status"] == "critical"
    assert "TTL expired" in own["Output"]


def test_check_update_endpoint(agent: Agent, names: str) -> None:
    c = agent.client()
    name = f"{names}-upd"
    c.agent.service.register(name, service_id=name, port=1, check=consul.Check.ttl("30s"))
    body = json.dumps({"Status": "passing", "Output": "all good"})
    assert c.http.put(CB.boolean(), f"/v1/agent/check/update/service:{name}", data=body)
    _, [entry] = c.health.service(name)
    assert entry["Checks"][-1]["Status"] == "passing"
    assert entry["Checks"][-1]["Output"] == "all good"
    with pytest.raises(consul.ConsulException):
        c.http.put(CB.boolean(), f"/v1/agent/check/update/service:{name}", data=json.dumps({"Status": "bad"}))
    # An unknown check is a 404 (py-consul: False).
    assert c.agent.check.ttl_pass(f"{names}-no-such-check") is False


def test_http_check_follows_the_endpoint(agent: Agent, names: str) -> None:
    c = agent.client()
    app = _Status()
    with werkzeug_server(app) as port:
        name = f"{names}-http"
        url = f"http://127.0.0.1:{port}/healthz"
        c.agent.service.register(
            name, service_id=name, port=port, check=consul.Check.http(url, "1s", timeout="2s")
        )
        eventually(lambda: check_status(c, name) == "passing", timeout=6)
        _, [entry] = c.health.service(name)
        assert entry["Checks"][-1]["Type"] == "http"
        app.code = 429
        eventually(lambda: check_status(c, name) == "warning", timeout=6)
        app.code = 500
        eventually(lambda: check_status(c, name) == "critical", timeout=6)
    assert app.hits >= 3


@contextmanager
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(0)


def test_grpc_check_follows_the_health_service(agent: Agent, names: str) -> None:
    c = agent.client()
    with grpc_health_server() as (port, servicer):
        servicer.set("reviews", health_pb2.HealthCheckResponse.SERVING)
        name = f"{names}-grpc"
        c.agent.service.register(
            name, service_id=name, port=port, check=consul.Check.grpc(f"127.0.0.1:{port}/reviews", "1s")
        )
        eventually(lambda: check_status(c, name) == "passing", timeout=6)
        servicer.set("reviews", health_pb2.HealthCheckResponse.NOT_SERVING)
        eventually(lambda: check_status(c, name) == "critical", timeout=6)


def test_critical_service_is_deregistered_after_the_configured_time(own_server: Any, names: str) -> None:
    own_server.reap_interval = 0.1
    own_server.min_deregister_after = 0.2
    c = consul.Consul(host="127.0.0.1", port=own_server.port)
    name = f"{names}-reap"
    check = consul.Check.ttl("30s")
    check["DeregisterCriticalServiceAfter"] = "500ms"
    c.agent.service.register(name, service_id=name, port=1, check=check)
    start = time.monotonic()
    eventually(lambda: name not in c.agent.services(), timeout=5)
    assert time.monotonic() - start >= 0.45


def test_script_checks_are_refused(agent: Agent, names: str) -> None:
    c = agent.client()
    with pytest.raises(consul.ConsulException):
        c.agent.service.register(
            f"{names}-s", service_id=f"{names}-s", port=1, check=consul.Check.script(["true"], "10s")
        )


# --- KV -------------------------------------------------------------------------------------------------


def test_kv_put_get_and_metadata(agent: Agent, names: str) -> None:
    c = agent.client()
    key = f"{names}/config/a.yaml"
    assert c.kv.put(key, "kind: VirtualService\n", flags=42) is True
    index, item = c.kv.get(key)
    assert item["Key"] == key
    assert item["Value"] == b"kind: VirtualService\n"
    assert item["Flags"] == 42
    assert item["ModifyIndex"] == int(index)
    assert item["CreateIndex"] == item["ModifyIndex"]
    assert item["LockIndex"] == 0
    c.kv.put(key, b"\x00\xffbinary")
    _, item2 = c.kv.get(key)
    assert item2["Value"] == b"\x00\xffbinary"
    assert item2["CreateIndex"] == item["CreateIndex"]
    assert item2["ModifyIndex"] > item["ModifyIndex"]


def test_kv_missing_key_is_none_with_an_index(agent: Agent, names: str) -> None:
    c = agent.client()
    index, item = c.kv.get(f"{names}/missing")
    assert item is None
    assert int(index) >= 1
    assert c.kv.get(f"{names}/", recurse=True)[1] is None


def test_kv_raw_value(agent: Agent, names: str) -> None:
    c = agent.client()
    c.kv.put(f"{names}/raw", "hello")
    body = c.http.get(lambda r: (r.code, r.body), f"/v1/kv/{names}/raw", params=[("raw", "1")])
    assert body == (200, "hello")


def test_kv_recurse_keys_and_separator(agent: Agent, names: str) -> None:
    c = agent.client()
    for k in ("a", "b/c", "b/d", "e/f/g"):
        c.kv.put(f"{names}/{k}", k)
    _, items = c.kv.get(f"{names}/", recurse=True)
    assert [i["Key"] for i in items] == [f"{names}/{k}" for k in ("a", "b/c", "b/d", "e/f/g")]
    _, keys = c.kv.get(f"{names}/", keys=True)
    assert len(keys) == 4
    _, keys = c.kv.get(f"{names}/", keys=True, separator="/")
    assert keys == [f"{names}/a", f"{names}/b/", f"{names}/e/"]


def test_kv_cas(agent: Agent, names: str) -> None:
    c = agent.client()
    key = f"{names}/cas"
    assert c.kv.put(key, "1", cas=0) is True
    assert c.kv.put(key, "2", cas=0) is False  # cas=0 only creates
    _, item = c.kv.get(key)
    assert c.kv.put(key, "3", cas=item["ModifyIndex"] + 1000) is False
    assert c.kv.put(key, "3", cas=item["ModifyIndex"]) is True
    assert c.kv.get(key)[1]["Value"] == b"3"
    _, item = c.kv.get(key)
    assert c.kv.delete(key, cas=item["ModifyIndex"] - 1) is False
    assert c.kv.delete(key, cas=item["ModifyIndex"]) is True
    assert c.kv.get(key)[1] is None


def test_kv_delete_recurse(agent: Agent, names: str) -> None:
    c = agent.client()
    for k in ("x/1", "x/2", "y"):
        c.kv.put(f"{names}/{k}", "v")
    assert c.kv.delete(f"{names}/x/", recurse=True) is True
    _, keys = c.kv.get(f"{names}/", keys=True)
    assert keys == [f"{names}/y"]


def test_kv_blocking_on_a_prefix_sees_writes_and_deletes(agent: Agent, names: str) -> None:
    c = agent.client()
    prefix = f"{names}/mesh/"
    c.kv.put(prefix + "a", "1")
    c.kv.put(prefix + "b", "1")
    index, _ = c.kv.get(prefix, recurse=True)

    def later(fn: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            time.sleep(0.2)
            fn()

        t = threading.Thread(target=run)
        t.start()
        return t

    t = later(lambda: agent.client().kv.put(prefix + "a", "2"))
    index2, items = c.kv.get(prefix, recurse=True, index=index, wait="5s")
    t.join()
    assert int(index2) > int(index)
    assert {i["Key"]: i["Value"] for i in items}[prefix + "a"] == b"2"
    # Deleting the key with the highest ModifyIndex still moves the prefix's index forward (a tombstone).
    t = later(lambda: agent.client().kv.delete(prefix + "a"))
    index3, items = c.kv.get(prefix, recurse=True, index=index2, wait="5s")
    t.join()
    assert int(index3) > int(index2)
    assert [i["Key"] for i in items] == [prefix + "b"]
    # A write elsewhere does not wake the prefix watch.
    t = later(lambda: agent.client().kv.put(f"{names}/elsewhere", "x"))
    same, _ = c.kv.get(prefix, recurse=True, index=index3, wait="700ms")
    t.join()
    assert same == index3


def test_kv_blocking_on_a_missing_key_wakes_when_it_is_created(agent: Agent, names: str) -> None:
    c = agent.client()
    key = f"{names}/later"
    index, item = c.kv.get(key)
    assert item is None

    def create() -> None:
        time.sleep(0.2)
        agent.client().kv.put(key, "now")

    t = threading.Thread(target=create)
    t.start()
    _, item = c.kv.get(key, index=index, wait="5s")
    t.join()
    assert item is not None and item["Value"] == b"now"


# --- status, agent --------------------------------------------------------------------------------------


def test_status_leader_and_agent_self(agent: Agent) -> None:
    c = agent.client()
    leader = c.status.leader()
    assert isinstance(leader, str) and leader.endswith(":8300")
    me = c.agent.self()
    assert me["Config"]["Datacenter"]
    assert me["Config"]["NodeName"]


# --- asyncio client -------------------------------------------------------------------------------------


def test_asyncio_client(agent: Agent, names: str) -> None:
    async def main() -> None:
        c = consul.aio.Consul(host=agent.host, port=agent.port)
        try:
            name = f"{names}-aio"
            assert await c.agent.service.register(name, service_id=name, port=3, meta={"version": "v3"})
            index, entries = await c.health.service(name, passing=True)
            assert [e["Service"]["Meta"] for e in entries] == [{"version": "v3"}]
            waiter = asyncio.ensure_future(c.health.service(name, index=index, wait="5s"))
            await asyncio.sleep(0.2)
            assert not waiter.done()
            await c.agent.service.deregister(name)
            new, entries = await asyncio.wait_for(waiter, 5)
            assert int(new) > int(index) and entries == []
            assert await c.kv.put(f"{names}/aio", "v")
            _, item = await c.kv.get(f"{names}/aio")
            assert item["Value"] == b"v"
        finally:
            await c.close()

    asyncio.run(main())


# --- stopping and restarting (libmesh's server only) ----------------------------------------------------


def test_stop_refuses_and_cuts_blocking_queries_then_restart_keeps_state(own_server: Any, names: str) -> None:
    c = consul.Consul(host="127.0.0.1", port=own_server.port)
    name = f"{names}-keep"
    c.agent.service.register(name, service_id=name, port=1, meta={"version": "v1"})
    c.kv.put(f"{names}/k", "v")
    index, _ = c.health.service(name)
    port = own_server.port
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            agent_client = consul.Consul(host="127.0.0.1", port=port)
            agent_client.health.service(name, index=index, wait="30s")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    own_server.stop()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - start < 3
    assert errors, "the blocking query should have been cut"
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        c.catalog.services()
    own_server.start()
    assert own_server.port == port
    _, [entry] = c.health.service(name)
    assert entry["Service"]["Meta"] == {"version": "v1"}
    assert c.kv.get(f"{names}/k")[1]["Value"] == b"v"


def test_parse_duration() -> None:
    assert parse_duration("5s") == 5
    assert parse_duration("1m30s") == 90
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0
    for bad in ("", "5", "s", "5x", "1m 2s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_server_refuses_non_loopback_addresses() -> None:
    from libmesh.testing import ConsulServer

    with pytest.raises(ValueError, match="loopback"):
        ConsulServer(host="0.0.0.0")
