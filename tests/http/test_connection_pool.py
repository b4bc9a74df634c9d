"""The DestinationRule connection pool on httpx's pool, and the route timeout covering the response body.

The upstream here is a small HTTP/1.1 server of our own that counts the TCP connections it holds, so the
tests see what a real pool does on the wire: how many connections are open at once, and when new ones are
made.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import libmesh
from libmesh.adapters.httpx import AsyncMeshTransport, MeshTransport

from .support import MODES, Mode, Req, call_many, make_mesh, run, service_entry, wait_until

URL = "http://reviews:9080/r"
HOST = "reviews.default.svc.cluster.local"


class CountingServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1, one thread per connection, that answers every request
    with 200 after ``delay`` seconds. With ``trickle`` set to ``(chunks, interval)`` it sends the headers at
    once and then the body one byte every ``interval`` seconds. It counts the connections it accepted, those
    open now and the most open at once."""

    def __init__(self, delay: float = 0.0, trickle: tuple[int, float] | None = None) -> None:
        self.delay = delay
        self.trickle = trickle
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.accepted += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            with conn:
                conn.settimeout(5.0)
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    if self.delay:
                        time.sleep(self.delay)
                    if self.trickle is None:
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    else:
                        chunks, interval = self.trickle
                        conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {chunks}\r\n\r\n".encode())
                        for _ in range(chunks):
                            time.sleep(interval)
                            conn.sendall(b"x")
                    if b"connection: close" in head.lower():
                        return
        except OSError:
            return
        finally:
            with self._lock:
                self.open -= 1

    def close(self) -> None:
        """Stop accepting (open connections end when their client closes them)."""
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    """A :class:`CountingServer` answering at once."""
    s = CountingServer()
    try:
        yield s
    finally:
        s.close()


def _mesh(port: int, pool: str | None = None, timeout: str | None = None) -> libmesh.Mesh:
    docs = [service_entry(HOST, [(port, {"app": "reviews"})])]
    if pool is not None:
        docs.append(
            f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy: {{connectionPool: {pool}}}
"""
        )
    if timeout is not None:
        docs.append(
            f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    timeout: {timeout}
"""
        )
    return make_mesh(*docs)


# --- tcp.maxConnections ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("pool", "most"), [("{tcp: {maxConnections: 1}}", 1), (None, 6)])
def test_max_connections_caps_the_connections_open_at_once(mode: Mode, pool: str | None, most: int) -> None:
    """Six concurrent calls: with ``maxConnections: 1`` they queue for one connection (and all succeed);
    without it each gets its own."""
    upstream = CountingServer(delay=0.1)
    try:
        results = call_many(_mesh(upstream.port, pool), mode, [Req(URL)] * 6, concurrency=6)
        assert [r.status for r in results] == [200] * 6
        assert upstream.max_open == most
    finally:
        upstream.close()


def test_each_limited_destination_has_its_own_pool() -> None:
    """Two destinations with ``maxConnections: 1`` each: calls to one do not wait for the other."""
    other = CountingServer(delay=0.2)
    slow_upstream = CountingServer(delay=0.2)
    try:
        mesh = make_mesh(
            service_entry(HOST, [(slow_upstream.port, {"app": "reviews"})]),
            service_entry("ratings.default.svc.cluster.local", [(other.port, {"app": "ratings"})]),
            """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all}
spec:
  host: "*.default.svc.cluster.local"
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
""",
        )
        results = call_many(mesh, "sync", [Req(URL), Req("http://ratings:9080/")], concurrency=2)
        assert [r.status for r in results] == [200, 200]
        # In parallel, not one after the other (that would take 0.4 s): timed from the first call's start to
        # the last one's end, not around call_many, whose client set-up (its SSL context) alone can take
        # 50-80 ms on a loaded machine.
        span = max(r.started + r.elapsed for r in results) - min(r.started for r in results)
        assert span < 0.38, span
        assert (slow_upstream.accepted, other.accepted) == (1, 1)
    finally:
        other.close()
        slow_upstream.close()


def test_an_apps_own_transport_keeps_its_pool_settings() -> None:
    """With ``transport=`` the app's pool is used as it is: maxConnections does not apply."""
    upstream = CountingServer(delay=0.1)
    try:
        mesh = _mesh(upstream.port, "{tcp: {maxConnections: 1}}")
        with (
            httpx.Client(transport=MeshTransport(mesh, transport=httpx.HTTPTransport())) as client,
            ThreadPoolExecutor(4) as pool,
        ):
            statuses = list(pool.map(lambda _: client.get(URL).status_code, range(4)))
        assert statuses == [200] * 4
        assert upstream.max_open == 4
    finally:
        upstream.close()


# --- http.idleTimeout and http.maxRequestsPerConnection ------------------------------------------------


def _sequence(mesh: libmesh.Mesh, mode: Mode, pause: float) -> None:
    """Two calls back to back, a pause, then a third call, all on one client."""

    if mode == "sync":
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            assert [client.get(URL).status_code for _ in range(2)] == [200, 200]
            time.sleep(pause)
            assert client.get(URL).status_code == 200
        return

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
            assert [(await client.get(URL)).status_code for _ in range(2)] == [200, 200]
            await asyncio.sleep(pause)
            assert (await client.get(URL)).status_code == 200

    run(main())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("pool", "connections"),
    [
        ("{http: {idleTimeout: 150ms}}", 2),
        ("{http: {idleTimeout: 10s}}", 1),
        (None, 1),
        ("{http: {maxRequestsPerConnection: 1}}", 3),
        ("{http: {maxRequestsPerConnection: 2}}", 1),  # not applied: httpx has no such cap
    ],
    ids=["idle-150ms", "idle-10s", "default", "one-request-per-connection", "two-requests-per-connection"],
)
def test_connection_reuse_follows_the_pool_settings(
    server: CountingServer, mode: Mode, pool: str | None, connections: int
) -> None:
    """Two calls back to back, 400 ms of idling, then a third: the connections the upstream saw."""
    _sequence(_mesh(server.port, pool), mode, pause=0.4)
    assert server.accepted == connections


@pytest.mark.parametrize("mode", MODES)
def test_closing_the_client_closes_the_destination_pools(server: CountingServer, mode: Mode) -> None:
    mesh = _mesh(server.port, "{tcp: {maxConnections: 2}}")
    assert [r.status for r in call_many(mesh, mode, [Req(URL)] * 4, concurrency=2)] == [200] * 4
    wait_until(lambda: server.open == 0)
    assert server.accepted >= 1


# --- the route timeout covers the response body ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_route_timeout_cuts_a_trickling_body(mode: Mode) -> None:
    """Headers at once, then one byte every 100 ms for 1.5 s: a 300 ms route timeout ends the read with
    ``httpx.ReadTimeout`` after 300-600 ms instead of waiting for the whole body."""
    upstream = CountingServer(trickle=(15, 0.1))
    mesh = _mesh(upstream.port, timeout="300ms")
    start = time.monotonic()
    try:
        if mode == "sync":
            with httpx.Client(transport=MeshTransport(mesh)) as client, pytest.raises(httpx.ReadTimeout):
                client.get(URL)
        else:

            async def main() -> None:
                async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
                    with pytest.raises(httpx.ReadTimeout):
                        await client.get(URL)

            run(main())
        elapsed = time.monotonic() - start
        assert 0.3 <= elapsed <= 0.6, elapsed
        # Recorded once, with Envoy's UT flag, like a timeout before the headers.
        exposition = mesh.metrics_exposition()[0].decode()
        assert 'response_flags="UT"' in exposition
    finally:
        upstream.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_body_that_ends_before_the_route_timeout_is_read_in_full(mode: Mode) -> None:
    upstream = CountingServer(trickle=(4, 0.05))
    try:
        result = call_many(_mesh(upstream.port, timeout="2s"), mode, [Req(URL)])[0]
        assert (result.status, result.body) == (200, b"xxxx")
    finally:
        upstream.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_stalled_body_times_out_at_the_route_deadline(mode: Mode) -> None:
    """Headers, then nothing for 2 s: the read still ends with ReadTimeout near the deadline."""
    upstream = CountingServer(trickle=(2, 2.0))
    mesh = _mesh(upstream.port, timeout="300ms")
    start = time.monotonic()
    try:
        with pytest.raises(httpx.ReadTimeout):
            call_many(mesh, mode, [Req(URL)])
        assert time.monotonic() - start <= 0.75
    finally:
        upstream.close()
