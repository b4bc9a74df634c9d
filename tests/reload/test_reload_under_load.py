"""Issue acceptance: under about 200 requests/s for 15 s, 50 config changes, 10 of them invalid, written to
files and to Consul KV. No request fails; every valid change is in effect within 1 s of being written, as
the routing shows; every invalid one is rejected with its file:line while the previous version serves."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import libmesh
from libmesh.adapters.httpx import MeshTransport
from libmesh.reload import ConsulKVSource
from tests.consul.conftest import Agent
from tests.http.conftest import Serve
from tests.http.support import Upstream, service_entry

from .test_reload import rules

CHANGES, INVALID_EVERY, DURATION, RATE = 50, 5, 15.0, 200.0
URL = "http://reviews:9080/r"


def route(gen: int, *, valid: bool) -> str:
    """Change number ``gen``: all traffic to v1 (even) or v2 (odd), marked with header x-config-gen; an
    invalid change has a negative weight on line 9."""
    subset = "v2" if gen % 2 else "v1"
    return (
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        "metadata: {name: reviews}\n"
        "spec:\n"
        "  hosts: [reviews]\n"
        "  http:\n"
        "  - route:\n"
        f"    - destination: {{host: reviews, subset: {subset}}}\n"
        f"      weight: {100 if valid else -1}\n"
        f"    headers: {{request: {{set: {{x-config-gen: '{gen}'}}}}}}\n"
    )


@dataclass(frozen=True)
class Shot:
    sent: float
    status: int
    upstream: str | None
    gen: int | None
    error: str | None = None


def _rejected(mesh: libmesh.Mesh) -> int:
    return int(mesh.status()["config"]["reloads"]["rejected"])


def _wait_rejected(mesh: libmesh.Mesh, before: int, timeout: float) -> bool:
    """Whether the mesh has rejected one more change than ``before`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _rejected(mesh) <= before:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def drive(client: httpx.Client, stop: threading.Event, shots: list[Shot]) -> None:
    """About RATE sequential requests per second until ``stop``."""
    period = 1.0 / RATE
    next_at = time.monotonic()
    while not stop.is_set():
        sent = time.monotonic()
        try:
            r = client.get(URL)
            body = r.json() if r.status_code == 200 else {}
            gen = body.get("headers", {}).get("x-config-gen")
            shots.append(Shot(sent, r.status_code, body.get("upstream"), int(gen) if gen else None))
        except Exception as e:  # counted as a failed request
            shots.append(Shot(sent, 0, None, None, f"{type(e).__name__}: {e}"))
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


@dataclass
class Source:
    """Where the changes are written and the mesh that follows them."""

    mesh: libmesh.Mesh
    write: Callable[[str], None]
    unit: str  # how errors name the changed unit


def workload() -> libmesh.Workload:
    return libmesh.Workload(name="productpage-v1", labels={"app": "productpage", "version": "v1"})


@pytest.fixture(params=["files", "consul-kv"])
def source(request: pytest.FixtureRequest, tmp_path: Path, serve: Serve) -> Iterator[Source]:
    ports = {name: serve(Upstream(name)) for name in ("v1", "v2")}
    services = (
        service_entry(
            "reviews.default.svc.cluster.local",
            [(ports["v1"], {"version": "v1"}), (ports["v2"], {"version": "v2"})],
        )
        + "\n---\n"
        + rules()
    )
    if request.param == "files":
        d = tmp_path / "mesh"
        d.mkdir()
        (d / "services.yaml").write_text(services)
        path = d / "route.yaml"
        path.write_text(route(0, valid=True))

        def write_file(text: str) -> None:
            tmp = path.with_name(".route.yaml.tmp")
            tmp.write_text(text)
            tmp.replace(path)

        mesh = libmesh.Mesh.from_paths(d, workload=workload())
        try:
            yield Source(mesh, write_file, str(path))
        finally:
            mesh.close()
        return
    agent: Agent = request.getfixturevalue("agent")
    client = agent.client()
    prefix = f"libmesh-test-{time.monotonic_ns()}/"
    client.kv.put(prefix + "services", services)
    client.kv.put(prefix + "route", route(0, valid=True))
    mesh = libmesh.Mesh(workload=workload())
    mesh.follow(ConsulKVSource(agent.client(), prefix, wait="5s"))
    try:
        yield Source(mesh, lambda text: client.kv.put(prefix + "route", text), f"consul-kv:{prefix}route")
    finally:
        mesh.close()
        client.kv.delete(prefix, recurse=True)


def test_fifty_changes_under_load(source: Source, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="libmesh.reload")
    mesh = source.mesh
    shots: list[Shot] = []
    late_rejections: list[int] = []
    stop = threading.Event()
    written: list[tuple[int, float, bool]] = []
    with httpx.Client(transport=MeshTransport(mesh)) as client:
        assert client.get(URL).json()["upstream"] == "v1"
        loader = threading.Thread(target=drive, args=(client, stop, shots))
        start = time.monotonic()
        loader.start()
        try:
            for gen in range(1, CHANGES + 1):
                # Evenly spread over the run; one change in five is invalid (the 3rd, 8th, ... 48th).
                target = start + gen * DURATION / (CHANGES + 1)
                time.sleep(max(0.0, target - time.monotonic()))
                valid = gen % INVALID_EVERY != 3
                before = _rejected(mesh)
                source.write(route(gen, valid=valid))
                written.append((gen, time.monotonic(), valid))
                # The next change must not overwrite an invalid one before the mesh has read it: a file or a
                # key written twice in a row may be read once, with its last content (watchfiles and Consul's
                # blocking queries both coalesce), and a reload stalled on a busy CI machine would then
                # never see the invalid version at all.
                if not valid and not _wait_rejected(mesh, before, 1.0):
                    late_rejections.append(gen)
            time.sleep(max(0.0, start + DURATION - time.monotonic()))
        finally:
            stop.set()
            loader.join(10)

    assert not late_rejections, f"invalid changes not rejected within 1 s: {late_rejections}"
    failed = [s for s in shots if s.status != 200]
    assert not failed, f"{len(failed)} failed requests, first: {failed[:3]}"
    assert len(shots) > 0.6 * RATE * DURATION, f"only {len(shots)} requests were sent"
    invalid = {gen for gen, _, valid in written if not valid}
    # Every request sent 1 s or more after a valid change was routed by that change or a later one, and
    # each request went where its own config said (the snapshot is swapped whole).
    for shot in shots:
        assert shot.gen is not None and shot.gen not in invalid, shot
        assert shot.upstream == ("v2" if shot.gen % 2 else "v1"), shot
        due = max((g for g, at, valid in written if valid and at + 1.0 <= shot.sent), default=0)
        assert shot.gen >= due, f"change {due} was not in effect 1 s after it was written: {shot}"
    # Every valid change was seen serving (none was skipped for longer than the next change took).
    seen = {s.gen for s in shots}
    last_valid = max(g for g, _, valid in written if valid)
    assert last_valid in seen
    # Every invalid change was rejected, with the unit and the line of the bad weight.
    status = mesh.status()["config"]
    assert status["reloads"]["rejected"] >= len(invalid)
    rejected_lines = [r.getMessage() for r in caplog.records if f"{source.unit}:9:" in r.getMessage()]
    assert len(rejected_lines) >= len(invalid), rejected_lines
    assert all("weight must not be negative" in line for line in rejected_lines)
    assert status["last_error"] is None  # the last change was valid
