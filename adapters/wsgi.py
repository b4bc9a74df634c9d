"""WSGI middleware (Flask and any WSGI app): inbound telemetry, trace continuation and context propagation.

::

    app = Flask(__name__)
    app.wsgi_app = MeshMiddleware(app.wsgi_app, mesh=mesh)

The context is activated in the thread serving the request, so calls the app makes through
:class:`~libmesh.adapters.httpx.MeshTransport` while handling it carry the trace context, the propagated
headers and the remaining deadline. A thread the app starts itself inherits nothing unless it is started
through :func:`libmesh.telemetry.context.wrap` or ``submit``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from libmesh.mesh import Mesh

from ._server import FAULT_HEADER, Inbound, join_headers

__all__ = ["MeshMiddleware", "metrics_app", "status_app"]

log = logging.getLogger("libmesh")

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_PEER_HEADER = "x-libmesh-peer"


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    pairs = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            pairs.append((key[5:].replace("_", "-"), str(value)))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            pairs.append((key.replace("_", "-"), str(environ[key])))
    return join_headers(pairs)


class _Body:
    """The app's response iterable, counting bytes and ending the request when the server closes it."""

    def __init__(self, inner: Iterable[bytes], inbound: Inbound) -> None:
        self._inner = inner
        self._inbound = inbound
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._inbound.response_bytes += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            if not self._ended:
                self._ended = True
                self._inbound.end()


class MeshMiddleware:
    """WSGI middleware serving ``app`` inside the mesh (see the module docstring)."""

    def __init__(self, app: WSGIApp, mesh: Mesh) -> None:
        self.app = app
        self.mesh = mesh
        #: The Consul registration made now when ``mesh.registration`` asks for one (a WSGI server has no
        #: startup or shutdown hook: the workload is deregistered at interpreter exit, or by closing this).
        self.registered: Any = None
        registration = mesh.registration
        if registration is not None:
            from libmesh.discovery.consul import register_workload

            try:
                self.registered = register_workload(registration, at_exit=True)
            except Exception as e:  # the app still serves; it is just not discoverable
                log.error("libmesh: registering %s in Consul failed: %s", registration.id, e)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = _headers(environ)
        path = (
            environ.get("RAW_URI")
            or environ.get("REQUEST_URI")
            or (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/"))
        )
        query = environ.get("QUERY_STRING")
        if query and "?" not in path:
            path = f"{path}?{query}"
        authority = (
            headers.get("host") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
        )
        length = environ.get("CONTENT_LENGTH")
        inbound = Inbound.begin(
            self.mesh,
            headers,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            scheme=environ.get("wsgi.url_scheme", "http"),
            authority=authority,
            client=environ.get("REMOTE_ADDR"),
        )
        inbound.request_bytes = int(length) if length and str(length).isdigit() else 0
        # The caller may already know who answers (see PeerExchange): then the identity is left out.
        peer = self.mesh.peer_header if self.mesh.peer_exchange.answers(headers.get(_PEER_HEADER)) else None

        def recording_start_response(status: str, response_headers: list[tuple[str, str]], *args: Any) -> Any:
            inbound.status = int(status.split(" ", 1)[0])
            if peer is not None:
                response_headers = [*response_headers, (_PEER_HEADER, peer)]
            if inbound.fault_marked(inbound.status):
                response_headers = [*response_headers, (FAULT_HEADER, "true")]
            return start_response(status, response_headers, *args)

        try:
            result = self.app(environ, recording_start_response)
        except BaseException as e:
            inbound.end(e)
            raise
        return _Body(result, inbound)


def metrics_app(mesh: Mesh) -> WSGIApp:
    """A WSGI app answering with the mesh's Prometheus exposition (mount it at ``/metrics``)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body, content_type = mesh.metrics_exposition(environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


def status_app(mesh: Mesh) -> WSGIApp:
    """A WSGI app answering with :meth:`Mesh.status` as JSON (mount it at e.g. ``/libmesh/status``; read
    it with ``libmesh status URL``)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = json.dumps(mesh.status(), indent=2, sort_keys=True).encode("utf-8")
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app
