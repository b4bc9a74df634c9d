"""An in-process Consul agent for tests: the HTTP API subset libmesh uses, on 127.0.0.1.

No Consul binary is available from the package registries libmesh's CI can reach, so the discovery and
self-registration code is tested against this server, through the real ``py-consul`` client. It plays a
single-node ``consul agent -dev``: one node that is both the agent and the catalog, so a service registered
through the agent is in the catalog and the health endpoints at once (a real dev agent syncs it within
milliseconds)::

    with ConsulServer() as server:                      # or server.start() / server.stop()
        c = consul.Consul(host="127.0.0.1", port=server.port)
        c.agent.service.register("reviews", service_id="reviews-1", address="127.0.0.1", port=9080,
                                 meta={"version": "v2"}, check=consul.Check.ttl("10s"))
        c.agent.check.ttl_pass("service:reviews-1")
        index, entries = c.health.service("reviews", passing=True)

:meth:`ConsulServer.stop` closes the listening socket and every open connection (blocking queries in
flight end with a reset, as when an agent dies); :meth:`ConsulServer.start` serves the same state again on
the same port, which is how tests simulate Consul being down and coming back.

What follows Consul's documented behaviour (API docs of ``/health``, ``/catalog``, ``/agent``, ``/kv``,
``/status`` and "Blocking Queries"):

* Paths, methods (writes are ``PUT``; a wrong method is 405), JSON field names and shapes of the responses,
  compact JSON, ``X-Consul-Index``, ``X-Consul-KnownLeader: true`` and ``X-Consul-LastContact: 0`` on
  blocking endpoints, 404 for an unknown key or an unknown service/check ID on the agent endpoints (with
  Consul's messages), 400 for bad parameters and bodies.
* Blocking queries: ``index`` with ``wait`` (a Go duration such as ``"5s"``, ``"1m"``; default 5 minutes,
  capped at 10) hold the request until the result's index exceeds ``index`` or the wait (plus up to
  ``wait/16`` of jitter) runs out, then answer with the current result. An index below the current one
  answers at once; an index at or above it blocks, even if it is higher than anything the server has
  handed out (so a client must reset its index when the returned one goes backwards). Returned indexes
  are at least 1.
* Index semantics: one raft-like counter for every write. ``/health/service/<name>`` and
  ``/catalog/service/<name>`` report the last index that touched that service (registration,
  deregistration, a check's status change), or, for a service that does not exist, the index at which a
  service last disappeared. ``/catalog/services`` reports the last registration/deregistration. A KV key
  reports its ``ModifyIndex``; a recursive read reports the highest ``ModifyIndex`` or deletion tombstone
  under the prefix, else the KV table's index; a missing key reports the KV table's index.
* Health: ``passing`` keeps only instances whose checks (the node's ``serfHealth`` included) are all
  passing; ``tag`` (repeatable) keeps instances carrying every tag. Service checks get Consul's generated
  IDs (``service:<id>``, ``service:<id>:<n>`` for several) and names (``Service '<name>' check``); a new
  check starts ``critical`` unless its definition gives ``Status``.
* Checks run for real: TTL checks turn critical with output ``TTL expired`` when not updated in time; HTTP
  checks send ``GET`` (or ``Method``) to their URL every ``Interval`` (2xx passing, 429 warning, else
  critical), TCP checks connect, gRPC checks call ``grpc.health.v1.Health/Check`` (``host:port/service``)
  and pass on ``SERVING``. As in Consul, an interval below 1 s is raised to 1 s and the first run happens at
  a random moment within the first interval; ``Timeout`` defaults to 10 s. ``SuccessBeforePassing`` and
  ``FailuresBeforeCritical`` are honoured. A status change is a write (new index); a change of output only
  is not (a real agent defers those syncs for minutes).
* ``DeregisterCriticalServiceAfter``: a service whose check stayed critical that long is deregistered by a
  reaper. Consul raises the value to at least 1 minute and reaps every 30 s; both are parameters here
  (``min_deregister_after``, ``reap_interval``) so tests can shorten them.

What is not faithful (and not used by libmesh):

* One node, one datacenter (``dc`` is accepted and ignored unless it names another datacenter: 500 "No
  path to datacenter"), no ACLs (tokens are accepted and ignored), no sessions or locks (``acquire`` and
  ``release`` are rejected with 400), no ``filter`` expressions (rejected with 400 rather than silently
  ignored), no ``near`` sorting, no ``stale``/``consistent`` distinction (all reads are consistent), no
  hash-based blocking on the ``/agent`` endpoints, no script, Docker, H2PING or alias checks (a dev agent
  rejects script checks too), no Connect/proxy features beyond echoing the fields.
* KV tombstones are never reaped, so a recursive index never goes backwards here (it can on a real server).
* While stopped, nothing runs: checks are not executed and TTLs are only judged when the server starts
  again (a restarted agent likewise restores its services and checks from disk).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ConsulServer"]

log = logging.getLogger("libmesh.testing.consul")

_PASSING, _WARNING, _CRITICAL = "passing", "warning", "critical"
_STATUSES = (_PASSING, _WARNING, _CRITICAL)
_DEFAULT_WAIT = 300.0
_MAX_WAIT = 600.0
_MAX_KV_VALUE = 512 * 1024
_OUTPUT_MAX = 4096
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``"10s"``, ``"1m30s"``, ``"250ms"``, ``"0"``) in seconds; ``ValueError`` otherwise."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError("empty duration")
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


def _go_duration(seconds: float) -> str:
    """Seconds as Go prints a duration in check definitions (``10s``, ``1m30s``, ``500ms``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    frac = seconds - whole
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    out += f"{s + frac:g}s"
    return out


class _HTTPError(Exception):
    """An error answer: status and plain-text body, as Consul sends them."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Stopped(Exception):
    """The server stopped while the request was held: drop the connection without an answer."""


@dataclass
class _Service:
    id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str]
    weights: dict[str, int]
    tagged_addresses: dict[str, Any]
    enable_tag_override: bool
    kind: str
    socket_path: str
    proxy: dict[str, Any] | None
    connect: dict[str, Any] | None
    create_index: int = 0
    modify_index: int = 0


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    service_name: str
    type: str
    status: str
    notes: str = ""
    output: str = ""
    interval: float = 0.0
    timeout: float = 10.0
    ttl: float = 0.0
    http: str = ""
    method: str = ""
    header: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""
    tcp: str = ""
    grpc: str = ""
    grpc_use_tls: bool = False
    tls_skip_verify: bool = False
    deregister_after: float = 0.0
    success_before_passing: int = 0
    failures_before_critical: int = 0
    create_index: int = 0
    modify_index: int = 0
    # Runtime state (not part of the API): when the next run or the TTL expiry is due, the consecutive
    # result counters and since when the check has been critical.
    due: float = 0.0
    running: bool = False
    successes: int = 0
    failures: int = 0
    critical_since: float | None = None


@dataclass
class _Entry:
    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0


def _norm(key: str) -> str:
    """Consul decodes request bodies case-insensitively and accepts snake_case: compare keys this way."""
    return key.replace("_", "").replace("-", "").lower()


def _normed(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _HTTPError(400, f"Request decode failed: {what} must be an object")
    return {_norm(k): v for k, v in obj.items()}


def _as_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _HTTPError(400, f"Request decode failed: {what} must be a string")
    return value


def _as_int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _HTTPError(400, f"Request decode failed: {what} must be an integer")
    return value


def _as_duration(value: Any, what: str) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1e9  # Go's JSON form of a Duration is nanoseconds
    if not isinstance(value, str):
        raise _HTTPError(400, f"Request decode failed: {what} must be a duration")
    try:
        return parse_duration(value)
    except ValueError as e:
        raise _HTTPError(400, f"Request decode failed: {what}: {e}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ConsulServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client going away mid-request (a process exiting during a blocking query) is normal for an agent
        # and not worth a traceback; anything else is still printed.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "libmesh-consul"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without NODELAY, Nagle's algorithm and the client's delayed
        # ACK hold the body back about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_KV_VALUE + 65536:
            self.close_connection = True
            self._send(413, {}, f"Request body({length} bytes) too large".encode())
            return
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.server.owner._dispatch(
                self.command, urllib.parse.unquote(parsed.path), query, body
            )
        except _Stopped:
            self.close_connection = True
            return
        except _HTTPError as e:
            status, headers, payload = (
                e.status,
                {"Content-Type": "text/plain; charset=utf-8"},
                e.message.encode(),
            )
        except Exception as e:  # a bug here must answer, not hang the client
            log.exception("ConsulServer: %s %s failed", self.command, self.path)
            status, headers, payload = 500, {"Content-Type": "text/plain; charset=utf-8"}, str(e).encode()
        try:
            self._send(status, headers, payload)
        except OSError:
            self.close_connection = True

    def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class ConsulServer:
    """A single-node Consul agent's HTTP API in this process, on ``host`` (127.0.0.1) and ``port`` (0: an
    ephemeral port, then kept across restarts). Thread-based; see the module docstring for what is faithful.

    ``min_check_interval`` (Consul: 1 s), ``reap_interval`` (Consul: 30 s) and ``min_deregister_after``
    (Consul: 1 min) can be lowered to speed up tests of checks and critical-service reaping::

        server = ConsulServer().start()
        os.environ["CONSUL_HTTP_ADDR"] = server.http_addr      # "127.0.0.1:PORT"
        ...
        server.stop()    # Consul is down: connections refused, blocking queries cut
        server.start()   # back, same port, same services, checks and keys
        server.close()   # stop for good
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        node_name: str = "libmesh-consul",
        datacenter: str = "dc1",
        min_check_interval: float = 1.0,
        reap_interval: float = 30.0,
        min_deregister_after: float = 60.0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"ConsulServer serves on the loopback interface only, not {host!r}")
        self.host = host
        self._port = port
        self.node_name = node_name
        self.datacenter = datacenter
        self.node_id = str(uuid.uuid4())
        self.min_check_interval = min_check_interval
        self.reap_interval = reap_interval
        self.min_deregister_after = min_deregister_after
        self._cond = threading.Condition()
        self._running = False
        self._closed = False
        self._httpd: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._checker: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._rand = random.Random()
        # State, guarded by _cond.
        self._index = 0
        self._services: dict[str, _Service] = {}
        self._checks: dict[str, _Check] = {}
        self._service_index: dict[str, int] = {}
        self._extinction_index = 0
        self._services_table_index = 0
        self._checks_table_index = 0
        self._kv: dict[str, _Entry] = {}
        self._tombstones: dict[str, int] = {}
        self._kv_table_index = 0
        self._last_reap = 0.0
        self._bootstrap()

    # --- lifecycle ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served (known once started; kept across restarts)."""
        return self._port

    @property
    def http_addr(self) -> str:
        """``host:port``, the form of ``CONSUL_HTTP_ADDR``."""
        return f"{self.host}:{self._port}"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.http_addr}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._running

    def start(self) -> ConsulServer:
        """Start serving (again, on the same port, with the same state); returns ``self``."""
        if self._closed:
            raise RuntimeError("ConsulServer was closed; create a new one")
        if self._running:
            return self
        httpd = _Server((self.host, self._port), self)
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="consul-check")
        with self._cond:
            self._running = True
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="consul-http", daemon=True
        )
        self._serve_thread.start()
        self._checker = threading.Thread(target=self._check_loop, name="consul-checks", daemon=True)
        self._checker.start()
        return self

    def stop(self) -> None:
        """Stop serving, as if the agent died: the port refuses connections and every open connection,
        blocking queries included, is cut. State is kept for :meth:`start`."""
        if not self._running:
            return
        with self._cond:
            self._running = False
            self._cond.notify_all()
        httpd = self._httpd
        assert httpd is not None
        httpd.shutdown()
        httpd.server_close()
        with httpd.connections_lock:
            conns = list(httpd.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._serve_thread is not None:
            self._serve_thread.join(5)
        if self._checker is not None:
            self._checker.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._httpd = None

    def close(self) -> None:
        """Stop for good."""
        self.stop()
        self._closed = True

    def __enter__(self) -> ConsulServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"ConsulServer({self.http_addr}, {state}, services={len(self._services)})"

    # --- state (callers hold _cond) -------------------------------------------------------------------

    def _write(self) -> int:
        """Take the next index for a write and wake the blocking queries."""
        self._index += 1
        self._cond.notify_all()
        return self._index

    def _bootstrap(self) -> None:
        # As a dev agent's catalog starts: the node with its serfHealth check, and the "consul" service.
        with self._cond:
            idx = self._write()
            self._checks["serfHealth"] = _Check(
                "serfHealth",
                "Serf Health Status",
                "",
                "",
                "",
                _PASSING,
                output="Agent alive and reachable",
                create_index=idx,
                modify_index=idx,
            )
            self._checks_table_index = idx
            self._put_service(
                _Service(
                    "consul",
                    "consul",
                    [],
                    "",
                    8300,
                    {},
                    {"Passing": 1, "Warning": 1},
                    {},
                    False,
                    "",
                    "",
                    None,
                    None,
                )
            )

    def _put_service(self, svc: _Service) -> None:
        idx = self._write()
        old = self._services.get(svc.id)
        svc.create_index = old.create_index if old is not None else idx
        svc.modify_index = idx
        self._services[svc.id] = svc
        self._service_index[svc.name] = idx
        if old is not None and old.name != svc.name:
            self._service_gone(old.name, idx)
        self._services_table_index = idx

    def _remove_service(self, service_id: str) -> None:
        svc = self._services.pop(service_id)
        idx = self._write()
        for cid in [c.check_id for c in self._checks.values() if c.service_id == service_id]:
            del self._checks[cid]
            self._checks_table_index = idx
        self._service_index[svc.name] = idx
        self._service_gone(svc.name, idx)
        self._services_table_index = idx

    def _service_gone(self, name: str, idx: int) -> None:
        if not any(s.name == name for s in self._services.values()):
            self._service_index.pop(name, None)
            self._extinction_index = idx

    def _set_status(self, check: _Check, status: str, output: str) -> None:
        check.output = output[:_OUTPUT_MAX]
        if status == check.status:
            return  # output-only changes are not synced to the catalog right away (Consul defers them)
        check.status = status
        check.critical_since = time.monotonic() if status == _CRITICAL else None
        idx = self._write()
        check.modify_index = idx
        self._checks_table_index = idx
        if check.service_id:
            svc = self._services.get(check.service_id)
            if svc is not None:
                self._service_index[svc.name] = idx
        else:  # a node check concerns every service of the node
            for svc in self._services.values():
                self._service_index[svc.name] = idx

    def _service_index_of(self, name: str) -> int:
        idx = self._service_index.get(name)
        if idx is not None:
            return idx
        return self._extinction_index or max(self._services_table_index, self._checks_table_index)

    # --- request dispatch -----------------------------------------------------------------------------

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        dc = _param(query, "dc")
        if dc and dc != self.datacenter:
            raise _HTTPError(500, "No path to datacenter")
        if "filter" in query:
            raise _HTTPError(400, "libmesh ConsulServer does not implement filter expressions")
        for prefix, handlers in _ROUTES:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                handler = handlers.get("GET" if method == "HEAD" else method)
                if handler is None:
                    raise _HTTPError(405, f"method {method} not allowed")
                return handler(self, path[len(prefix) :], query, body)
        raise _HTTPError(404, "404 page not found")

    def _json(
        self, obj: Any, index: int | None = None, status: int = 200
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "Vary": "Accept-Encoding"}
        if index is not None:
            headers["X-Consul-Index"] = str(max(index, 1))
            headers["X-Consul-KnownLeader"] = "true"
            headers["X-Consul-LastContact"] = "0"
            headers["X-Consul-Effective-Consistency"] = "leader"
        return status, headers, json.dumps(obj, separators=(",", ":")).encode()

    def _blocking(self, query: dict[str, list[str]], run: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """Run ``run`` (under the lock) until its index passes the query's ``index`` or the wait ends."""
        raw_index = _param(query, "index")
        min_index = 0
        if raw_index:
            try:
                min_index = int(raw_index)
            except ValueError:
                raise _HTTPError(400, "Invalid index") from None
            if min_index < 0:
                raise _HTTPError(400, "Invalid index")
        wait = _DEFAULT_WAIT
        raw_wait = _param(query, "wait")
        if raw_wait:
            try:
                wait = parse_duration(raw_wait)
            except ValueError:
                raise _HTTPError(400, "Invalid wait time") from None
        wait = min(max(wait, 0.0), _MAX_WAIT)
        deadline = time.monotonic() + wait + self._rand.uniform(0, wait / 16)
        with self._cond:
            while True:
                if not self._running:
                    raise _Stopped
                idx, result = run()
                idx = max(idx, 1)
                if min_index == 0 or idx > min_index:
                    return idx, result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return idx, result
                self._cond.wait(remaining)

    # --- /v1/health, /v1/catalog ------------------------------------------------------------------------

    def _node_json(self) -> dict[str, Any]:
        return {
            "ID": self.node_id,
            "Node": self.node_name,
            "Address": "127.0.0.1",
            "Datacenter": self.datacenter,
            "TaggedAddresses": {
                "lan": "127.0.0.1",
                "lan_ipv4": "127.0.0.1",
                "wan": "127.0.0.1",
                "wan_ipv4": "127.0.0.1",
            },
            "Meta": {"consul-network-segment": "", "consul-version": "1.20.0"},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    @staticmethod
    def _service_json(svc: _Service) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": svc.id,
            "Service": svc.name,
            "Tags": list(svc.tags),
            "Address": svc.address,
            "Meta": dict(svc.meta),
            "Port": svc.port,
            "Weights": dict(svc.weights),
            "EnableTagOverride": svc.enable_tag_override,
            "Proxy": svc.proxy if svc.proxy is not None else {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "Connect": svc.connect if svc.connect is not None else {},
            "PeerName": "",
            "CreateIndex": svc.create_index,
            "ModifyIndex": svc.modify_index,
        }
        if svc.kind:
            out["Kind"] = svc.kind
        if svc.tagged_addresses:
            out["TaggedAddresses"] = svc.tagged_addresses
        if svc.socket_path:
            out["SocketPath"] = svc.socket_path
        return out

    def _check_json(self, c: _Check) -> dict[str, Any]:
        svc = self._services.get(c.service_id) if c.service_id else None
        definition: dict[str, Any] = {
            "Interval": _go_duration(c.interval),
            "Timeout": _go_duration(c.timeout if c.type in ("http", "tcp", "grpc") else 0),
            "DeregisterCriticalServiceAfter": _go_duration(c.deregister_after),
            "HTTP": c.http,
            "Header": c.header or None,
            "Method": c.method,
            "Body": c.body,
            "TLSServerName": "",
            "TLSSkipVerify": c.tls_skip_verify,
            "TCP": c.tcp,
            "GRPC": c.grpc,
            "GRPCUseTLS": c.grpc_use_tls,
        }
        return {
            "Node": self.node_name,
            "CheckID": c.check_id,
            "Name": c.name,
            "Status": c.status,
            "Notes": c.notes,
            "Output": c.output,
            "ServiceID": c.service_id,
            "ServiceName": c.service_name,
            "ServiceTags": list(svc.tags) if svc is not None else [],
            "Type": c.type,
            "Interval": _go_duration(c.interval) if c.interval else "",
            "Timeout": _go_duration(c.timeout) if c.type in ("http", "tcp", "grpc") else "",
            "ExposedPort": 0,
            "Definition": definition,
            "CreateIndex": c.create_index,
            "ModifyIndex": c.modify_index,
        }

    def _instances(self, name: str, tags: list[str]) -> list[_Service]:
        out = [s for s in self._services.values() if s.name == name and all(t in s.tags for t in tags)]
        out.sort(key=lambda s: s.id)
        return out

    def _checks_of(self, svc: _Service) -> list[_Check]:
        node = [c for c in self._checks.values() if not c.service_id]
        own = [c for c in self._checks.values() if c.service_id == svc.id]
        return node + own

    def _health_service(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        name = rest
        if not name:
            raise _HTTPError(400, "Missing service name")
        passing = _flag(query, "passing")
        tags = query.get("tag", [])

        def run() -> tuple[int, Any]:
            entries = []
            for svc in self._instances(name, tags):
                checks = self._checks_of(svc)
                if passing and any(c.status != _PASSING for c in checks):
                    continue
                entries.append(
                    {
                        "Node": self._node_json(),
                        "Service": self._service_json(svc),
                        "Checks": [self._check_json(c) for c in checks],
                    }
                )
            return self._service_index_of(name), entries

        idx, entries = self._blocking(query, run)
        return self._json(entries, idx)

    def _health_checks(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        def run() -> tuple[int, Any]:
            checks = [
                self._check_json(c) for c in self._checks.values() if c.service_name == rest and c.service_id
            ]
            return self._service_index_of(rest), checks

        idx, checks = self._blocking(query, run)
        return self._json(checks, idx)

    def _catalog_services(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        def run() -> tuple[int, Any]:
            out: dict[str, list[str]] = {}
            for svc in sorted(self._services.values(), key=lambda s: s.id):
                tags = out.setdefault(svc.name, [])
                for t in svc.tags:
                    if t not in tags:
                        tags.append(t)
            return self._services_table_index, out

        idx, services = self._blocking(query, run)
        return self._json(services, idx)

    def _catalog_service(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        tags = query.get("tag", [])

        def run() -> tuple[int, Any]:
            node = self._node_json()
            out = []
            for svc in self._instances(rest, tags):
                out.append(
                    {
                        "ID": node["ID"],
                        "Node": node["Node"],
                        "Address": node["Address"],
                        "Datacenter": node["Datacenter"],
                        "TaggedAddresses": node["TaggedAddresses"],
                        "NodeMeta": node["Meta"],
                        "ServiceKind": svc.kind,
                        "ServiceID": svc.id,
                        "ServiceName": svc.name,
                        "ServiceTags": list(svc.tags),
                        "ServiceAddress": svc.address,
                        "ServiceTaggedAddresses": svc.tagged_addresses or None,
                        "ServiceWeights": dict(svc.weights),
                        "ServiceMeta": dict(svc.meta),
                        "ServicePort": svc.port,
                        "ServiceSocketPath": svc.socket_path,
                        "ServiceEnableTagOverride": svc.enable_tag_override,
                        "ServiceProxy": svc.proxy or {"Mode": "", "MeshGateway": {}, "Expose": {}},
                        "ServiceConnect": svc.connect or {},
                        "ServiceLocality": None,
                        "CreateIndex": svc.create_index,
                        "ModifyIndex": svc.modify_index,
                    }
                )
            return self._service_index_of(rest), out

        idx, out = self._blocking(query, run)
        return self._json(out, idx)

    def _catalog_nodes(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            return self._json([self._node_json()], self._index)

    # --- /v1/agent --------------------------------------------------------------------------------------

    def _agent_self(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._json(
            {
                "Config": {
                    "Datacenter": self.datacenter,
                    "PrimaryDatacenter": self.datacenter,
                    "NodeName": self.node_name,
                    "NodeID": self.node_id,
                    "Revision": "libmesh",
                    "Server": True,
                    "Version": "1.20.0",
                },
                "Member": {
                    "Name": self.node_name,
                    "Addr": "127.0.0.1",
                    "Port": 8301,
                    "Tags": {"dc": self.datacenter, "role": "consul", "id": self.node_id},
                    "Status": 1,
                },
                "Meta": {"consul-network-segment": "", "consul-version": "1.20.0"},
            }
        )

    def _agent_services(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            out = {
                s.id: {**self._service_json(s), "Datacenter": self.datacenter}
                for s in sorted(self._services.values(), key=lambda s: s.id)
                if s.id != "consul"
            }
        return self._json(out)

    def _agent_service(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            svc = self._services.get(rest)
            if svc is None or svc.id == "consul":
                raise _HTTPError(404, f"unknown service ID: {rest}")
            return self._json({**self._service_json(svc), "Datacenter": self.datacenter})

    def _agent_checks(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            out = {
                c.check_id: self._check_json(c) for c in self._checks.values() if c.check_id != "serfHealth"
            }
        return self._json(out)

    def _agent_register(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        d = _normed(_decode_json(body), "service definition")
        name = _as_str(d.get("name"), "Name")
        if not name:
            raise _HTTPError(400, "Missing service name")
        sid = _as_str(d.get("id"), "ID") or name
        tags = d.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _HTTPError(400, "Request decode failed: Tags must be a list of strings")
        meta = d.get("meta") or {}
        _validate_meta(meta)
        weights = {"Passing": 1, "Warning": 1}
        if d.get("weights") is not None:
            w = _normed(d["weights"], "Weights")
            weights = {
                "Passing": _as_int(w.get("passing"), "Weights.Passing"),
                "Warning": _as_int(w.get("warning"), "Weights.Warning"),
            }
            if weights["Passing"] < 1:
                raise _HTTPError(400, "Invalid Weights: Passing must be greater than 0")
        port = _as_int(d.get("port"), "Port")
        tagged = d.get("taggedaddresses") or {}
        svc = _Service(
            id=sid,
            name=name,
            tags=list(tags),
            address=_as_str(d.get("address"), "Address"),
            port=port,
            meta={str(k): str(v) for k, v in meta.items()},
            weights=weights,
            tagged_addresses=dict(tagged) if isinstance(tagged, dict) else {},
            enable_tag_override=bool(d.get("enabletagoverride")),
            kind=_as_str(d.get("kind"), "Kind"),
            socket_path=_as_str(d.get("socketpath"), "SocketPath"),
            proxy=d.get("proxy") if isinstance(d.get("proxy"), dict) else None,
            connect=d.get("connect") if isinstance(d.get("connect"), dict) else None,
        )
        definitions: list[Any] = []
        if d.get("check"):
            definitions.append(d["check"])
        if d.get("checks"):
            if not isinstance(d["checks"], list):
                raise _HTTPError(400, "Request decode failed: Checks must be a list")
            definitions.extend(d["checks"])
        checks = [self._parse_check(defn, svc, i, len(definitions)) for i, defn in enumerate(definitions)]
        replace = _flag(query, "replace-existing-checks")
        with self._cond:
            self._put_service(svc)
            keep = {c.check_id for c in checks}
            if replace:
                for cid in [
                    c.check_id
                    for c in self._checks.values()
                    if c.service_id == sid and c.check_id not in keep
                ]:
                    del self._checks[cid]
            for check in checks:
                self._add_check(check)
        return 200, {"Content-Type": "application/json"}, b""

    def _parse_check(self, defn: Any, svc: _Service | None, i: int, count: int) -> _Check:
        c = _normed(defn, "check definition")
        cid = _as_str(c.get("checkid") or c.get("id"), "CheckID")
        name = _as_str(c.get("name"), "Name")
        if svc is not None:
            if not cid:
                cid = f"service:{svc.id}" + (f":{i + 1}" if count > 1 else "")
            if not name:
                name = f"Service '{svc.name}' check"
        if not name:
            raise _HTTPError(400, "Missing check name")
        cid = cid or name
        status = _as_str(c.get("status"), "Status") or _CRITICAL
        if status not in _STATUSES:
            raise _HTTPError(
                400, f"Invalid check: Status {status!r} is not one of passing, warning, critical"
            )
        interval = _as_duration(c.get("interval"), "Interval")
        timeout = _as_duration(c.get("timeout"), "Timeout") or 10.0
        ttl = _as_duration(c.get("ttl"), "TTL")
        http_url = _as_str(c.get("http"), "HTTP")
        tcp = _as_str(c.get("tcp"), "TCP")
        grpc_target = _as_str(c.get("grpc"), "GRPC")
        if c.get("args") or c.get("scriptargs") or c.get("script") or c.get("dockercontainerid"):
            raise _HTTPError(
                400,
                "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
                "'enable_local_script_checks' to true",
            )
        kinds = [k for k, v in (("ttl", ttl), ("http", http_url), ("tcp", tcp), ("grpc", grpc_target)) if v]
        if len(kinds) != 1:
            raise _HTTPError(400, "Invalid check: exactly one of TTL, HTTP, TCP or GRPC must be set")
        kind = kinds[0]
        if kind != "ttl":
            if interval <= 0:
                raise _HTTPError(
                    400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, or TCP checks"
                )
            interval = max(interval, self.min_check_interval)
        header = c.get("header") or {}
        if not isinstance(header, dict) or not all(isinstance(v, list) for v in header.values()):
            raise _HTTPError(400, "Request decode failed: Header must map names to lists of values")
        sid = svc.id if svc is not None else _as_str(c.get("serviceid"), "ServiceID")
        sname = svc.name if svc is not None else ""
        return _Check(
            check_id=cid,
            name=name,
            service_id=sid,
            service_name=sname,
            type=kind,
            status=status,
            notes=_as_str(c.get("notes"), "Notes"),
            interval=interval if kind != "ttl" else 0.0,
            timeout=timeout,
            ttl=ttl,
            http=http_url,
            method=_as_str(c.get("method"), "Method"),
            header={str(k): [str(x) for x in v] for k, v in header.items()},
            body=_as_str(c.get("body"), "Body"),
            tcp=tcp,
            grpc=grpc_target,
            grpc_use_tls=bool(c.get("grpcusetls")),
            tls_skip_verify=bool(c.get("tlsskipverify")),
            deregister_after=_as_duration(
                c.get("deregistercriticalserviceafter"), "DeregisterCriticalServiceAfter"
            ),
            success_before_passing=_as_int(c.get("successbeforepassing"), "SuccessBeforePassing"),
            failures_before_critical=_as_int(c.get("failuresbeforecritical"), "FailuresBeforeCritical"),
        )

    def _add_check(self, check: _Check) -> None:
        old = self._checks.get(check.check_id)
        now = time.monotonic()
        if old is not None:
            # Re-registering keeps the check's current state, as the agent does across reloads.
            check.status, check.output, check.critical_since = old.status, old.output, old.critical_since
            check.create_index = old.create_index
        if check.status == _CRITICAL and check.critical_since is None:
            check.critical_since = now
        if check.type == "ttl":
            check.due = now + check.ttl
        else:
            # The first run comes at a random moment within the first interval (Consul's stagger).
            check.due = now + self._rand.uniform(0, check.interval)
        idx = self._write()
        if old is None:
            check.create_index = idx
        check.modify_index = idx
        self._checks[check.check_id] = check
        self._checks_table_index = idx
        if check.service_id in self._services:
            self._service_index[self._services[check.service_id].name] = idx

    def _agent_deregister(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            if rest not in self._services or rest == "consul":
                raise _HTTPError(
                    404,
                    f'Unknown service ID "{rest}". Ensure that the service ID is passed, not the service name.',
                )
            self._remove_service(rest)
        return 200, {"Content-Type": "application/json"}, b""

    def _agent_check_register(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        raw = _decode_json(body)
        check = self._parse_check(raw, None, 0, 1)
        with self._cond:
            if check.service_id:
                svc = self._services.get(check.service_id)
                if svc is None:
                    raise _HTTPError(400, f'ServiceID "{check.service_id}" does not exist')
                check.service_name = svc.name
            self._add_check(check)
        return 200, {"Content-Type": "application/json"}, b""

    def _agent_check_deregister(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        with self._cond:
            check = self._checks.get(rest)
            if check is None or rest == "serfHealth":
                raise _HTTPError(
                    404, f'Unknown check ID "{rest}". Ensure that the check ID is passed, not the check name.'
                )
            del self._checks[rest]
            idx = self._write()
            self._checks_table_index = idx
            if check.service_id in self._services:
                self._service_index[self._services[check.service_id].name] = idx
        return 200, {"Content-Type": "application/json"}, b""

    def _ttl_update(self, check_id: str, status: str, output: str) -> Any:
        with self._cond:
            check = self._checks.get(check_id)
            if check is None:
                raise _HTTPError(
                    404,
                    f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
                )
            if check.type != "ttl":
                raise _HTTPError(500, f'Check "{check_id}" is not a TTL check')
            check.due = time.monotonic() + check.ttl
            self._set_status(check, status, output)
        return 200, {"Content-Type": "application/json"}, b""

    def _check_pass(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._ttl_update(rest, _PASSING, _param(query, "note") or "")

    def _check_warn(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._ttl_update(rest, _WARNING, _param(query, "note") or "")

    def _check_fail(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._ttl_update(rest, _CRITICAL, _param(query, "note") or "")

    def _check_update(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        d = _normed(_decode_json(body), "check update")
        status = _as_str(d.get("status"), "Status")
        if status not in _STATUSES:
            raise _HTTPError(400, f"Invalid check status: '{status}'")
        return self._ttl_update(rest, status, _as_str(d.get("output"), "Output"))

    # --- /v1/kv -----------------------------------------------------------------------------------------

    def _kv_get(self, key: str, query: dict[str, list[str]], body: bytes) -> Any:
        keys_only = _flag(query, "keys")
        recurse = _flag(query, "recurse") or keys_only
        raw = _flag(query, "raw")
        separator = _param(query, "separator") or ""
        if not key and not recurse:
            raise _HTTPError(400, "Missing key name")

        def run() -> tuple[int, Any]:
            if not recurse:
                entry = self._kv.get(key)
                if entry is None:
                    return self._kv_table_index, None
                return entry.modify_index, [entry]
            entries = sorted((e for k, e in self._kv.items() if k.startswith(key)), key=lambda e: e.key)
            idx = max((e.modify_index for e in entries), default=0)
            idx = max(idx, max((i for k, i in self._tombstones.items() if k.startswith(key)), default=0))
            return (idx or self._kv_table_index), entries or None

        idx, entries = self._blocking(query, run)
        if entries is None:
            _status, headers, _ = self._json(None, idx)
            return 404, headers, b""
        if keys_only:
            out: list[str] = []
            for e in entries:
                k = e.key
                if separator:
                    cut = k.find(separator, len(key))
                    if cut >= 0:
                        k = k[: cut + len(separator)]
                if not out or out[-1] != k:
                    out.append(k)
            return self._json(out, idx)
        if raw:
            value = entries[0].value or b""
            _, headers, _ = self._json(None, idx)
            headers["Content-Type"] = "text/plain; charset=utf-8"
            headers["X-Content-Type-Options"] = "nosniff"
            return 200, headers, value
        return self._json(
            [
                {
                    "LockIndex": e.lock_index,
                    "Key": e.key,
                    "Flags": e.flags,
                    "Value": base64.b64encode(e.value).decode() if e.value is not None else None,
                    "CreateIndex": e.create_index,
                    "ModifyIndex": e.modify_index,
                }
                for e in entries
            ],
            idx,
        )

    def _kv_put(self, key: str, query: dict[str, list[str]], body: bytes) -> Any:
        if not key:
            raise _HTTPError(400, "Missing key name")
        if "acquire" in query or "release" in query:
            raise _HTTPError(400, "libmesh ConsulServer does not implement sessions (acquire/release)")
        if len(body) > _MAX_KV_VALUE:
            raise _HTTPError(
                413, f"Request body({len(body)} bytes) too large, max size: {_MAX_KV_VALUE} bytes"
            )
        flags = _uint_param(query, "flags")
        cas = _uint_param(query, "cas") if "cas" in query else None
        with self._cond:
            old = self._kv.get(key)
            if cas is not None and (old.modify_index if old is not None else 0) != cas:
                return self._json(False)
            idx = self._write()
            self._kv[key] = _Entry(key, body, flags or 0, old.create_index if old is not None else idx, idx)
            self._tombstones.pop(key, None)
            self._kv_table_index = idx
        return self._json(True)

    def _kv_delete(self, key: str, query: dict[str, list[str]], body: bytes) -> Any:
        recurse = _flag(query, "recurse")
        cas = _uint_param(query, "cas") if "cas" in query else None
        with self._cond:
            if recurse:
                doomed = [k for k in self._kv if k.startswith(key)]
            else:
                entry = self._kv.get(key)
                if cas is not None and (entry is None or cas == 0 or entry.modify_index != cas):
                    return self._json(False)
                doomed = [key] if entry is not None else []
            if doomed:
                idx = self._write()
                for k in doomed:
                    del self._kv[k]
                    self._tombstones[k] = idx
                self._kv_table_index = idx
        return self._json(True)

    # --- /v1/status ---------------------------------------------------------------------------------------

    def _status_leader(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._json("127.0.0.1:8300")

    def _status_peers(self, rest: str, query: dict[str, list[str]], body: bytes) -> Any:
        return self._json(["127.0.0.1:8300"])

    # --- checks -------------------------------------------------------------------------------------------

    def _check_loop(self) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                now = time.monotonic()
                due: list[_Check] = []
                next_due = now + 0.5
                for check in list(self._checks.values()):
                    if check.running or check.check_id == "serfHealth":
                        continue
                    if check.due <= now:
                        if check.type == "ttl":
                            if check.status != _CRITICAL or check.output != "TTL expired":
                                self._set_status(check, _CRITICAL, "TTL expired")
                            check.due = float("inf")
                        else:
                            check.running = True
                            due.append(check)
                    else:
                        next_due = min(next_due, check.due)
                if now - self._last_reap >= self.reap_interval:
                    self._last_reap = now
                    self._reap(now)
                next_due = min(next_due, self._last_reap + self.reap_interval)
            for check in due:
                assert self._pool is not None
                try:
                    self._pool.submit(self._run_check, check)
                except RuntimeError:  # the pool shut down: stopping
                    return
            with self._cond:
                if not self._running:
                    return
                self._cond.wait(max(0.0, next_due - time.monotonic()))

    def _reap(self, now: float) -> None:
        for check in list(self._checks.values()):
            if not check.deregister_after or check.critical_since is None or not check.service_id:
                continue
            limit = max(check.deregister_after, self.min_deregister_after)
            if now - check.critical_since > limit and check.service_id in self._services:
                log.info(
                    "ConsulServer: deregistering %s, critical for more than %.0fs", check.service_id, limit
                )
                self._remove_service(check.service_id)

    def _run_check(self, check: _Check) -> None:
        try:
            if check.type == "http":
                status, output = _http_probe(check)
            elif check.type == "tcp":
                status, output = _tcp_probe(check)
            else:
                status, output = _grpc_probe(check)
        except Exception as e:  # a probe bug reads as a failing check, as a probe error would
            status, output = _CRITICAL, f"check failed: {e}"
        with self._cond:
            check.running = False
            check.due = time.monotonic() + check.interval
            if self._checks.get(check.check_id) is not check:
                return  # deregistered meanwhile
            if status == _PASSING:
                check.successes += 1
                check.failures = 0
                if check.successes < check.success_before_passing and check.status != _PASSING:
                    status = check.status
            elif status == _CRITICAL:
                check.failures += 1
                check.successes = 0
                if check.failures < check.failures_before_critical and check.status != _CRITICAL:
                    status = check.status
            self._set_status(check, status, output)


def _http_probe(check: _Check) -> tuple[str, str]:
    method = check.method or "GET"
    data = check.body.encode() if check.body else None
    req = urllib.request.Request(check.http, data=data, method=method)
    req.add_header("User-Agent", "Consul Health Check")
    req.add_header("Accept", "text/plain, text/*, */*")
    for name, values in check.header.items():
        for v in values:
            req.add_header(name, v)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=check.timeout) as resp:
            code, reason, text = resp.status, resp.reason, resp.read(_OUTPUT_MAX)
    except urllib.error.HTTPError as e:
        code, reason, text = e.code, e.reason, e.read(_OUTPUT_MAX) if e.fp is not None else b""
    except (OSError, http.client.HTTPException) as e:
        return _CRITICAL, f"{method} {check.http}: {e}"
    output = f"HTTP {method} {check.http}: {code} {reason} Output: {text.decode(errors='replace')}"
    if 200 <= code < 300:
        return _PASSING, output
    if code == 429:
        return _WARNING, output
    return _CRITICAL, output


def _tcp_probe(check: _Check) -> tuple[str, str]:
    host, _, port = check.tcp.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=check.timeout):
            pass
    except (OSError, ValueError) as e:
        return _CRITICAL, f"dial tcp {check.tcp}: {e}"
    return _PASSING, f"TCP connect {check.tcp}: Success"


def _grpc_probe(check: _Check) -> tuple[str, str]:
    try:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
    except ImportError:
        return _CRITICAL, "gRPC checks need grpcio and grpcio-health-checking (pip install 'libmesh[grpc]')"
    target, _, service = check.grpc.partition("/")
    if check.grpc_use_tls:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    else:
        channel = grpc.insecure_channel(target)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=check.timeout)
    except grpc.RpcError as e:
        return _CRITICAL, f"gRPC {check.grpc}: {e.code().name}: {e.details()}"
    finally:
        channel.close()
    status_name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    if resp.status == health_pb2.HealthCheckResponse.SERVING:
        return _PASSING, f"gRPC check {check.grpc}: success"
    return _CRITICAL, f"gRPC check {check.grpc}: failed with status {status_name}"


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise _HTTPError(400, f"Request decode failed: {e}") from None


def _param(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    """A boolean query parameter as Consul reads it: present (``?passing``) or true-ish."""
    values = query.get(name)
    if values is None:
        return False
    return values[0].strip().lower() not in ("false", "0")


def _uint_param(query: Mapping[str, list[str]], name: str) -> int | None:
    raw = _param(query, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _HTTPError(400, f"Invalid {name} value: {raw!r}") from None
    if value < 0:
        raise _HTTPError(400, f"Invalid {name} value: {raw!r}")
    return value


def _validate_meta(meta: Any) -> None:
    if not isinstance(meta, dict):
        raise _HTTPError(400, "Request decode failed: Meta must be an object")
    if len(meta) > 64:
        raise _HTTPError(
            400, "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
        )
    for k, v in meta.items():
        if not isinstance(v, str):
            raise _HTTPError(400, f"Request decode failed: Meta[{k!r}] must be a string")
        if k.startswith("consul-"):
            raise _HTTPError(
                400, f"Invalid Service Meta: Key prefix 'consul-' is reserved for internal use: {k!r}"
            )
        if not _META_KEY.match(k):
            raise _HTTPError(400, f"Invalid Service Meta: Key contains invalid characters: {k!r}")
        if len(k) > 128 or not k:
            raise _HTTPError(400, f"Invalid Service Meta: Key too long (limit: 128 characters): {k!r}")
        if len(v) > 512:
            raise _HTTPError(400, f"Invalid Service Meta: Value is too long (limit: 512 characters): {k!r}")


_Route = Callable[[ConsulServer, str, dict[str, list[str]], bytes], tuple[int, dict[str, str], bytes]]

# Path prefix -> handler per method. A prefix ending in "/" passes the rest of the path (an ID, a key).
_ROUTES: list[tuple[str, dict[str, _Route]]] = [
    ("/v1/health/service/", {"GET": ConsulServer._health_service}),
    ("/v1/health/checks/", {"GET": ConsulServer._health_checks}),
    ("/v1/catalog/services", {"GET": ConsulServer._catalog_services}),
    ("/v1/catalog/service/", {"GET": ConsulServer._catalog_service}),
    ("/v1/catalog/nodes", {"GET": ConsulServer._catalog_nodes}),
    ("/v1/agent/self", {"GET": ConsulServer._agent_self}),
    ("/v1/agent/services", {"GET": ConsulServer._agent_services}),
    ("/v1/agent/service/register", {"PUT": ConsulServer._agent_register}),
    ("/v1/agent/service/deregister/", {"PUT": ConsulServer._agent_deregister}),
    ("/v1/agent/service/", {"GET": ConsulServer._agent_service}),
    ("/v1/agent/checks", {"GET": ConsulServer._agent_checks}),
    ("/v1/agent/check/register", {"PUT": ConsulServer._agent_check_register}),
    ("/v1/agent/check/deregister/", {"PUT": ConsulServer._agent_check_deregister}),
    ("/v1/agent/check/pass/", {"PUT": ConsulServer._check_pass}),
    ("/v1/agent/check/warn/", {"PUT": ConsulServer._check_warn}),
    ("/v1/agent/check/fail/", {"PUT": ConsulServer._check_fail}),
    ("/v1/agent/check/update/", {"PUT": ConsulServer._check_update}),
    (
        "/v1/kv/",
        {"GET": ConsulServer._kv_get, "PUT": ConsulServer._kv_put, "DELETE": ConsulServer._kv_delete},
    ),
    ("/v1/status/leader", {"GET": ConsulServer._status_leader}),
    ("/v1/status/peers", {"GET": ConsulServer._status_peers}),
]
