"""Shared pieces of the data-plane acceptance tests: recording upstreams (Starlette and Flask), mesh
configuration snippets, and sync/async callers that go through libmesh's real httpx transports.

Nothing of libmesh's request path is replaced here: the upstreams are real servers on 127.0.0.1 and the
callers use :class:`~libmesh.adapters.httpx.MeshTransport` / :class:`AsyncMeshTransport` unchanged.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from flask import Flask, Response, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import libmesh
from libmesh.adapters.httpx import FLAGS_HEADER, AsyncMeshTransport, MeshTransport
from libmesh.config import load_yaml
from libmesh.telemetry.context import DEADLINE_HEADER, parse_deadline_ms
from libmesh.telemetry.context import current as current_context

T = TypeVar("T")
Mode = Literal["sync", "async"]
#: Both client flavours; tests parametrize over it.
MODES: tuple[Mode, ...] = ("sync", "async")
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


# --- upstreams ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as an upstream received it."""

    index: int
    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Answer:
    """How an upstream answers one request: a status, after ``delay`` seconds, with extra headers."""

    status: int = 200
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)


Responder = Callable[[Seen], Answer]


def ok(seen: Seen) -> Answer:
    """Always 200."""
    return Answer()


def always(status: int) -> Responder:
    """Always ``status``."""
    return lambda seen: Answer(status)


def every_other(status: int) -> Responder:
    """A deterministic 50 % failure: the 1st, 3rd, 5th... request this upstream receives gets ``status``."""
    return lambda seen: Answer(status if seen.index % 2 == 0 else 200)


def first(n: int, answer: Answer) -> Responder:
    """The first ``n`` requests get ``answer``, later ones 200."""
    return lambda seen: answer if seen.index < n else Answer()


def slow(seconds: float, status: int = 200) -> Responder:
    """Every request waits ``seconds`` before ``status``."""
    return lambda seen: Answer(status, delay=seconds)


class Upstream:
    """A server that records every request and answers as ``respond`` says, with a JSON body describing
    what it received: ``{"upstream": name, "method", "path", "host", "headers", "body"}``.

    Serve it with :meth:`asgi` (Starlette, under uvicorn) or :meth:`wsgi` (Flask, under werkzeug).
    """

    def __init__(self, name: str, respond: Responder = ok) -> None:
        self.name = name
        self.respond = respond
        self._lock = threading.Lock()
        self.seen: list[Seen] = []

    def record(self, method: str, path: str, host: str, headers: Mapping[str, str], body: bytes) -> Seen:
        """Count one request and return it with its index."""
        with self._lock:
            seen = Seen(len(self.seen), method, path, host, dict(headers), body, time.monotonic())
            self.seen.append(seen)
        return seen

    @property
    def count(self) -> int:
        """Requests received so far."""
        return len(self.seen)

    def reset(self) -> None:
        """Forget the requests received."""
        with self._lock:
            self.seen.clear()

    def _payload(self, seen: Seen) -> dict[str, Any]:
        return {
            "upstream": self.name,
            "method": seen.method,
            "path": seen.path,
            "host": seen.host,
            "headers": dict(seen.headers),
            "body": seen.body.decode("latin-1"),
        }

    def asgi(self) -> Starlette:
        """The upstream as a Starlette app."""

        async def handle(req: Request) -> JSONResponse:
            body = await req.body()
            raw = req.scope.get("raw_path", b"").decode("latin-1") or req.url.path
            query = req.scope.get("query_string", b"").decode("latin-1")
            path = f"{raw}?{query}" if query else raw
            headers = {k.lower(): v for k, v in req.headers.items()}
            seen = self.record(req.method, path, headers.get("host", ""), headers, body)
            answer = self.respond(seen)
            if answer.delay:
                await asyncio.sleep(answer.delay)
            return JSONResponse(self._payload(seen), answer.status, dict(answer.headers))

        return Starlette(routes=[Route("/{path:path}", handle, methods=_METHODS)])

    def wsgi(self) -> Flask:
        """The upstream as a Flask app."""
        app = Flask(f"upstream-{self.name}")

        @app.route("/", defaults={"path": ""}, methods=_METHODS)
        @app.route("/<path:path>", methods=_METHODS)
        def handle(path: str) -> Response:
            body = request.get_data()
            raw = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
            headers = {k.lower(): v for k, v in request.headers.items()}
            seen = self.record(request.method, raw, headers.get("host", ""), headers, body)
            answer = self.respond(seen)
            if answer.delay:
                time.sleep(answer.delay)
            response = app.json.response(self._payload(seen))
            response.status_code = answer.status
            response.headers.update(dict(answer.headers))
            return response

        return app


# --- configuration --------------------------------------------------------------------------------------


def service_entry(
    host: str,
    endpoints: Sequence[tuple[int, Mapping[str, str]]],
    *,
    port: int = 9080,
    name: str | None = None,
    weights: Sequence[int] | None = None,
) -> str:
    """A ServiceEntry for ``host`` on ``port`` with STATIC endpoints on 127.0.0.1: ``(real port, labels)``,
    with the endpoint ``weights`` when given."""
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: ServiceEntry",
        f"metadata: {{name: {name or host.split('.')[0]}}}",
        "spec:",
        f"  hosts: [{host}]",
        f"  ports: [{{number: {port}, name: http, protocol: HTTP}}]",
        "  resolution: STATIC",
        "  endpoints:",
    ]
    for i, (real_port, labels) in enumerate(endpoints):
        label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
        weight = f", weight: {weights[i]}" if weights is not None else ""
        lines.append(
            f"  - {{address: 127.0.0.1, ports: {{http: {real_port}}}, labels: {{{label_text}}}{weight}}}"
        )
    return "\n".join(lines)


def make_mesh(*docs: str, app: str = "productpage", version: str = "v1", **kwargs: Any) -> libmesh.Mesh:
    """A mesh for workload ``{app}-{version}`` in ``default`` from YAML documents (each dedented)."""
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in docs if d.strip())
    config = load_yaml(text)
    workload = libmesh.Workload(
        name=f"{app}-{version}",
        namespace="default",
        labels={"app": app, "version": version},
        service_account=app,
    )
    return libmesh.Mesh(config, workload=workload, **kwargs)


# --- calling through the mesh ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One request to send."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None


@dataclass(frozen=True)
class Result:
    """A response as the caller saw it, read in full, with the wall time the call took and, from
    :func:`call_many`, the ``time.monotonic()`` it started at (the clock :attr:`Seen.at` is on; 0.0 where
    a caller did not record it)."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float
    started: float = 0.0

    @property
    def flags(self) -> str:
        """Envoy's response flags of the call (``-`` when the mesh set none)."""
        return self.headers.get(FLAGS_HEADER, "-")

    def json(self) -> Any:
        """The body as JSON."""
        return httpx.Response(self.status, content=self.body).json()

    @property
    def upstream(self) -> str | None:
        """Which :class:`Upstream` answered (``None`` for a response the mesh made)."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("upstream") if isinstance(data, dict) else None


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop (the suite has no async test plugin)."""
    return asyncio.run(coro)


def _sync_one(client: httpx.Client, r: Req) -> Result:
    start = time.monotonic()
    response = client.request(r.method, r.url, headers=dict(r.headers), content=r.content)
    return Result(response.status_code, response.headers, response.content, time.monotonic() - start, start)


async def _async_one(client: httpx.AsyncClient, r: Req) -> Result:
    start = time.monotonic()
    response = await client.request(r.method, r.url, headers=dict(r.headers), content=r.content)
    return Result(response.status_code, response.headers, response.content, time.monotonic() - start, start)


def call_many(
    mesh: libmesh.Mesh,
    mode: Mode,
    reqs: Sequence[Req],
    *,
    concurrency: int = 1,
    linger: Callable[[], bool] | None = None,
) -> list[Result]:
    """Send ``reqs`` through the mesh with one client of the given flavour, ``concurrency`` at a time
    (threads sharing one ``httpx.Client``, or tasks sharing one ``httpx.AsyncClient``).

    ``linger``: keep the client open until it returns true (at most 3 s), for work the transport finishes
    in the background (mirrored requests)."""
    if mode == "sync":
        with httpx.Client(transport=MeshTransport(mesh)) as client:
            if concurrency == 1:
                results = [_sync_one(client, r) for r in reqs]
            else:
                with ThreadPoolExecutor(concurrency) as pool:
                    results = list(pool.map(lambda r: _sync_one(client, r), reqs))
            deadline = time.monotonic() + 3.0
            while linger is not None and not linger() and time.monotonic() < deadline:
                time.sleep(0.01)
            return results

    async def main() -> list[Result]:
        async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
            if concurrency == 1:
                results = [await _async_one(client, r) for r in reqs]
            else:
                gate = asyncio.Semaphore(concurrency)

                async def one(r: Req) -> Result:
                    async with gate:
                        return await _async_one(client, r)

                results = list(await asyncio.gather(*(one(r) for r in reqs)))
            deadline = time.monotonic() + 3.0
            while linger is not None and not linger() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return results

    return run(main())


def call(mesh: libmesh.Mesh, mode: Mode, url: str, **kwargs: Any) -> Result:
    """Send one request through the mesh (see :class:`Req` for the keyword arguments)."""
    return call_many(mesh, mode, [Req(url, **kwargs)])[0]


# --- a service in the middle ----------------------------------------------------------------------------


def _arrival(deadline_ms: str | None) -> float | None:
    """When the request being served reached libmesh's server middleware (``time.monotonic()``), read back
    from the deadline the middleware set then (arrival + the deadline header's value); ``None`` without one.

    A nested call's timing is measured from there, the clock its inherited deadline runs on: timed from the
    handler's own start, it would lose whatever the server spent before the handler ran (tens of
    milliseconds on a loaded machine)."""
    ctx = current_context()
    timeout = None if deadline_ms is None else parse_deadline_ms(deadline_ms)
    if ctx is None or ctx.deadline is None or timeout is None:
        return None
    return ctx.deadline - timeout


class Relay:
    """A service inside the mesh (server middleware on, its own :class:`~libmesh.Mesh`) that calls
    ``target`` through the mesh's client transport on every request, copying no header itself, and answers
    ``{"inbound": <its request headers>, "outbound": [<one entry per call>]}`` where an entry is
    ``{"status", "flags", "elapsed", "body", "since_arrival"}`` (``since_arrival``: seconds from the moment
    the relay's middleware received the request, when its deadline started, to the end of the call; ``None``
    for a request without a deadline header). ``fanout`` calls are made concurrently (asyncio tasks, or
    threads started with :func:`libmesh.telemetry.context.wrap` under WSGI). Every entry is also kept in
    :attr:`calls`. With ``pass_status`` the relay answers with the status its first call got (an app that
    propagates a failure), else 200.
    """

    def __init__(
        self, mesh: libmesh.Mesh, target: str, *, fanout: int = 1, pass_status: bool = False
    ) -> None:
        self.mesh = mesh
        self.target = target
        self.fanout = fanout
        self.pass_status = pass_status
        self.calls: list[dict[str, Any]] = []
        self._async_client: httpx.AsyncClient | None = None
        self._sync_client = httpx.Client(transport=MeshTransport(mesh))

    def _entry(
        self, status: int, headers: httpx.Headers, body: bytes, elapsed: float, arrived: float | None
    ) -> dict[str, Any]:
        try:
            decoded: Any = httpx.Response(status, content=body).json()
        except ValueError:
            decoded = body.decode("latin-1")
        entry = {
            "status": status,
            "flags": headers.get(FLAGS_HEADER, "-"),
            "elapsed": elapsed,
            "body": decoded,
            "since_arrival": None if arrived is None else time.monotonic() - arrived,
        }
        self.calls.append(entry)
        return entry

    def asgi(self) -> Any:
        """The relay as a Starlette app wrapped in libmesh's ASGI middleware."""
        from libmesh.adapters.asgi import MeshMiddleware

        async def handle(req: Request) -> JSONResponse:
            # One client for the relay's life (the server's event loop outlives it), as an app would keep.
            if self._async_client is None:
                self._async_client = httpx.AsyncClient(transport=AsyncMeshTransport(self.mesh))
            client = self._async_client
            arrived = _arrival(req.headers.get(DEADLINE_HEADER))

            async def one() -> dict[str, Any]:
                start = time.monotonic()
                r = await client.get(self.target)
                return self._entry(r.status_code, r.headers, r.content, time.monotonic() - start, arrived)

            outbound = await asyncio.gather(*(one() for _ in range(self.fanout)))
            status = outbound[0]["status"] if self.pass_status else 200
            return JSONResponse({"inbound": dict(req.headers), "outbound": list(outbound)}, status)

        app = Starlette(routes=[Route("/{path:path}", handle, methods=_METHODS)])
        app.add_middleware(MeshMiddleware, mesh=self.mesh)
        return app

    def wsgi(self) -> Flask:
        """The relay as a Flask app wrapped in libmesh's WSGI middleware."""
        from libmesh.adapters.wsgi import MeshMiddleware
        from libmesh.telemetry.context import wrap

        app = Flask("relay")

        @app.route("/", defaults={"path": ""}, methods=_METHODS)
        @app.route("/<path:path>", methods=_METHODS)
        def handle(path: str) -> Response:
            outbound: list[dict[str, Any]] = []
            lock = threading.Lock()
            client = self._sync_client
            arrived = _arrival(request.headers.get(DEADLINE_HEADER))

            def one() -> None:
                start = time.monotonic()
                r = client.get(self.target)
                entry = self._entry(r.status_code, r.headers, r.content, time.monotonic() - start, arrived)
                with lock:
                    outbound.append(entry)

            if self.fanout == 1:
                one()
            else:
                threads = [threading.Thread(target=wrap(one)) for _ in range(self.fanout)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            inbound = {k.lower(): v for k, v in request.headers.items()}
            response = app.json.response({"inbound": inbound, "outbound": outbound})
            response.status_code = outbound[0]["status"] if self.pass_status else 200
            return response

        app.wsgi_app = MeshMiddleware(app.wsgi_app, mesh=self.mesh)  # type: ignore[method-assign]
        return app
