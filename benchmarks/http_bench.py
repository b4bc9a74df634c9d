"""HTTP data plane, bare against mesh: httpx (sync and async) -> uvicorn/Starlette on loopback.

``python -m benchmarks.http_bench [--quick]``. The server runs in its own process so its CPU time can be
read separately (``/proc/<pid>/stat``); the client runs here. Each round measures the bare pair (plain httpx
transport, plain app) and the mesh pair (``MeshTransport`` + ``MeshMiddleware``) back to back, alternating
which goes first, so that machine noise hits both; the table reports the median of the rounds' ratios.

The mesh pair runs the policy set of issue 3: a 20-route VirtualService whose last route matches, a
DestinationRule with LEAST_REQUEST + outlierDetection + connectionPool, the default retry policy, metrics on
and tracing at 1 % sampling.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import Result, with_ratios

__all__ = ["main", "run"]

HOST = "bench"


def config_yaml(port: int) -> str:
    """The mesh config of the benchmark: 20 routes (the last matches), a DestinationRule, a ServiceEntry."""
    routes = "\n".join(
        f"  - match: [{{uri: {{prefix: /nomatch{i}}}, headers: {{x-route: {{exact: r{i}}}}}}}]\n"
        f"    route: [{{destination: {{host: {HOST}, subset: v1}}}}]"
        for i in range(19)
    )
    return (
        textwrap.dedent(
            f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {HOST}}}
        spec:
          hosts: [{HOST}.default.svc.cluster.local]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: v1}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: {HOST}}}
        spec:
          host: {HOST}
          trafficPolicy:
            loadBalancer: {{simple: LEAST_REQUEST}}
            connectionPool: {{tcp: {{maxConnections: 100}}, http: {{http2MaxRequests: 1000, maxRetries: 10}}}}
            outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
          subsets: [{{name: v1, labels: {{version: v1}}}}]
        ---
        apiVersion: libmesh.io/v1alpha1
        kind: MeshConfig
        metadata: {{name: mesh}}
        spec:
          telemetry: {{metrics: true, tracing: {{enabled: true, sampling: 1}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: {HOST}}}
        spec:
          hosts: [{HOST}]
          http:
        """
        )
        + routes
        + f"\n  - match: [{{uri: {{prefix: /}}}}]\n    route: [{{destination: {{host: {HOST}, subset: v1}}}}]\n"
    )


@dataclass(frozen=True, slots=True)
class Side:
    """One measured run: latencies (seconds) and CPU seconds per request on each side."""

    latencies: list[float]
    client_cpu: float
    server_cpu: float


@functools.cache
def cpus() -> tuple[set[int], set[int]] | None:
    """The CPUs for (client, server): one each, the first two this process may use, or ``None`` on a
    one-CPU machine. Pinning takes the scheduler out of the measurement: on a 2-vCPU VM the same loop
    ran at a 95 us or a 180 us p50 depending on whether the two processes happened to share a core, and
    the scheduler moved them at will mid-run. Read once, before any pinning narrows the set."""
    allowed = sorted(os.sched_getaffinity(0))
    return ({allowed[0]}, {allowed[1]}) if len(allowed) >= 2 else None


@contextmanager
def pinned_client() -> Iterator[None]:
    """Run the block on the client's CPU (see :func:`cpus`), then restore this process's affinity."""
    placement = cpus()
    if placement is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, placement[0])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def serving(module: str, *flags: str) -> Iterator[tuple[int, int]]:
    """Run the benchmark server ``python -m <module> <flags> --port-file F`` on the server's CPU (see
    :func:`cpus`; its threads inherit it) until the block ends; yields (port, pid) once it listens."""
    placement = cpus()
    server_cpus = placement[1] if placement else None

    def pin() -> None:
        if server_cpus is not None:
            os.sched_setaffinity(0, server_cpus)

    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        cmd = [sys.executable, "-m", module, *flags, "--port-file", str(port_file)]
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, preexec_fn=pin)
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"benchmark server {module} did not start")
                time.sleep(0.05)
            yield int(port_file.read_text()), proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def server(mesh: bool) -> Iterator[tuple[int, int]]:
    """Start ``benchmarks.http_server`` in a subprocess; yields (port, pid)."""
    with serving("benchmarks.http_server", *(["--mesh"] if mesh else [])) as running:
        yield running


def _client(mesh: bool, port: int, tmp: Path) -> httpx.Client:
    if not mesh:
        return httpx.Client(base_url=f"http://127.0.0.1:{port}")
    from libmesh import Mesh, Workload
    from libmesh.adapters.httpx import MeshTransport
    from libmesh.config import load_yaml

    m = Mesh(load_yaml(config_yaml(port)), workload=Workload(name="client", labels={"app": "client"}))
    return httpx.Client(base_url=f"http://{HOST}", transport=MeshTransport(m))


def _async_client(mesh: bool, port: int) -> httpx.AsyncClient:
    if not mesh:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
    from libmesh import Mesh, Workload
    from libmesh.adapters.httpx import AsyncMeshTransport
    from libmesh.config import load_yaml

    m = Mesh(load_yaml(config_yaml(port)), workload=Workload(name="client", labels={"app": "client"}))
    return httpx.AsyncClient(base_url=f"http://{HOST}", transport=AsyncMeshTransport(m))


def measure_sync(mesh: bool, n: int, warmup: int) -> Side:
    """``n`` sequential GETs (after ``warmup``) from a sync client."""
    with (
        server(mesh) as (port, pid),
        tempfile.TemporaryDirectory() as tmp,
        _client(mesh, port, Path(tmp)) as c,
    ):
        for _ in range(warmup):
            c.get("/item/1").raise_for_status()
        lat = []
        cpu0, srv0 = time.process_time(), _proc_cpu(pid)
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get("/item/1")
            lat.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"unexpected {r.status_code}")
        return Side(lat, (time.process_time() - cpu0) / n, (_proc_cpu(pid) - srv0) / n)


def measure_async(mesh: bool, n: int, warmup: int) -> Side:
    """``n`` sequential GETs (after ``warmup``) from an async client on one event loop."""

    async def go(port: int, pid: int) -> Side:
        async with _async_client(mesh, port) as c:
            for _ in range(warmup):
                (await c.get("/item/1")).raise_for_status()
            lat = []
            cpu0, srv0 = time.process_time(), _proc_cpu(pid)
            for _ in range(n):
                t0 = time.perf_counter()
                r = await c.get("/item/1")
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"unexpected {r.status_code}")
            return Side(lat, (time.process_time() - cpu0) / n, (_proc_cpu(pid) - srv0) / n)

    with server(mesh) as (port, pid):
        return asyncio.run(go(port, pid))


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Measure = Callable[[bool, int, int], Side]


def pairs(
    prefix: str, measures: Sequence[tuple[str, Measure]], *, title: str, short: str, per: str, quick: bool
) -> list[Result]:
    """Bare and mesh rows for each ``(kind, measure)``: p50/p99 latency and client/server CPU per ``per``,
    the two alternating within each round so machine noise hits both, client and server pinned to one CPU
    each (:func:`cpus`), each mesh row read against its bare
    twin (bars are ratios: p50 <= 1.10, CPU <= 1.15; goal 1.05). ``title`` and ``short`` name a kind in
    the labels (``{kind}`` is filled in). Shared by the HTTP and gRPC benchmarks."""
    rounds, n, warmup = (1, 200, 50) if quick else (5, 2000, 200)
    results: list[Result] = []
    for kind, measure in measures:
        sides: dict[bool, list[Side]] = {False: [], True: []}
        for i in range(rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for mesh in order:
                with pinned_client():
                    sides[mesh].append(measure(mesh, n, warmup))
        for mesh in (False, True):
            runs = sides[mesh]
            lat = [x for s in runs for x in s.latencies]
            tag = "mesh" if mesh else "bare"
            results.append(
                Result(
                    f"{prefix}.{kind}.{tag}",
                    f"{title.format(kind=kind)}, {tag}: latency",
                    statistics.median(lat),
                    _p(lat, 0.99),
                    len(lat),
                    baseline=f"{prefix}.{kind}.bare" if mesh else None,
                    note="bar/goal are ratios to bare" if mesh else "",
                    bar=1.10 if mesh else None,
                    goal=1.05 if mesh else None,
                )
            )
            for side in ("client", "server"):
                cpu = [getattr(s, f"{side}_cpu") for s in runs]
                results.append(
                    Result(
                        f"{prefix}.{kind}.{tag}.{side}_cpu",
                        f"{short.format(kind=kind)}, {tag}: {side} CPU per {per}",
                        statistics.median(cpu),
                        None,
                        len(cpu),
                        baseline=f"{prefix}.{kind}.bare.{side}_cpu" if mesh else None,
                        bar=1.15 if mesh else None,
                        goal=1.05 if mesh else None,
                    )
                )
    return with_ratios(results)


def print_pairs(rows: Sequence[Result]) -> None:
    """The rows of :func:`pairs` as a small table with each mesh row's ratio to bare."""
    by_name = {r.name: r for r in rows}
    print(f"{'row':42} {'p50/median':>12} {'p99':>10} {'ratio':>7}")
    for r in rows:
        ratio = ""
        if r.baseline and r.baseline in by_name:
            ratio = f"{r.median / by_name[r.baseline].median:.3f}"
        p99 = f"{r.p99 * 1e6:8.0f}us" if r.p99 is not None else ""
        print(f"{r.label:42} {r.median * 1e6:10.1f}us {p99:>10} {ratio:>7}")


def run(quick: bool = False) -> list[Result]:
    """Rows for ``python -m benchmarks.run``: p50/p99 latency and client/server CPU per request, bare and mesh,
    sync and async, each mesh row read against its bare twin from the same rounds."""
    measures = (("sync", measure_sync), ("async", measure_async))
    return pairs(
        "http", measures, title="httpx {kind} -> uvicorn", short="httpx {kind}", per="request", quick=quick
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table: latency and CPU per request, and the mesh/bare ratios."""
    print_pairs(run("--quick" in (sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
