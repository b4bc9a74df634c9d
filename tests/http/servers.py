"""Real servers on 127.0.0.1 for the data-plane tests: uvicorn (ASGI) and werkzeug (WSGI) in threads."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

import uvicorn
from werkzeug.serving import WSGIRequestHandler, make_server


def _socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose protocol says TCP, and
    # without it Nagle's algorithm and delayed ACKs add about 40 ms to every keep-alive response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextmanager
def uvicorn_server(app: Any) -> Iterator[int]:
    """Serve an ASGI app on 127.0.0.1 in a thread; yields the port."""
    sock = _socket()
    port = sock.getsockname()[1]
    # A short graceful shutdown: tests leave slow handlers running after their client gave up, and the
    # suite should not wait for them.
    config = uvicorn.Config(
        app,
        interface="asgi3",
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without its per-request log line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@contextmanager
def werkzeug_server(app: Any) -> Iterator[int]:
    """Serve a WSGI app on 127.0.0.1 with werkzeug's threaded server; yields the port."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound then closed), for connect-failure tests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class _Swappable:
    """An ASGI or WSGI app that forwards to whichever app is installed now (``None``: 503), so one running
    server can serve test after test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.app
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"no app"})

    def wsgi(self, environ: Any, start_response: Any) -> Any:
        app = self.app
        if app is None:
            start_response("503 Service Unavailable", [])
            return [b"no app"]
        return app(environ, start_response)


class ServerPool:
    """Running servers (uvicorn for ASGI, werkzeug for WSGI) lent to tests one app at a time.

    Starting and stopping a server costs a fifth of a second; lending a running one costs nothing. A lent
    server serves the app it is given until :meth:`release_all`, when it goes back to the pool idle::

        pool = ServerPool()
        port = pool.serve(app, "asgi")
        ...
        pool.release_all()
        pool.close()
    """

    def __init__(self) -> None:
        self._running: list[AbstractContextManager[int]] = []
        self._idle: dict[str, list[tuple[_Swappable, int]]] = {"asgi": [], "wsgi": []}
        self._lent: list[tuple[str, _Swappable, int]] = []

    def serve(self, app: Any, kind: str = "asgi") -> int:
        """Serve ``app`` (an ASGI app for ``kind="asgi"``, a WSGI app for ``"wsgi"``); returns the port."""
        idle = self._idle[kind]
        if idle:
            slot, port = idle.pop()
        else:
            slot = _Swappable()
            server = uvicorn_server(slot.asgi) if kind == "asgi" else werkzeug_server(slot.wsgi)
            port = server.__enter__()
            self._running.append(server)
        slot.app = app
        self._lent.append((kind, slot, port))
        return port

    def release_all(self) -> None:
        """Take every lent server back (they answer 503 until lent again)."""
        for kind, slot, port in self._lent:
            slot.app = None
            self._idle[kind].append((slot, port))
        self._lent.clear()

    def close(self) -> None:
        """Stop every server, all at once (each takes a fifth of a second to notice)."""
        stoppers = [threading.Thread(target=s.__exit__, args=(None, None, None)) for s in self._running]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(15)
        self._running.clear()


@contextmanager
def _raw_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads each request and hands the connection to ``answer`` before
    closing it; yields the port."""
    sock = _socket()
    port = sock.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                with suppress(OSError):
                    conn.recv(65536)
                with suppress(OSError):
                    answer(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _reset(conn: socket.socket) -> None:
    # Linger 0: close() sends a TCP RST instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _short_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)


def reset_server() -> AbstractContextManager[int]:
    """A TCP server on 127.0.0.1 that reads each request and resets the connection before any response
    (Envoy's "disconnect/reset before headers"); yields the port."""
    return _raw_server(_reset)


def short_body_server() -> AbstractContextManager[int]:
    """A TCP server on 127.0.0.1 that answers each request with a 200 promising 100 bytes of body, sends
    10 and closes the connection; yields the port."""
    return _raw_server(_short_body)


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connecting hangs: its listen queue is full and nobody accepts, so the
    kernel drops further connection attempts (a connect timeout, unlike a closed port's refusal)."""
    sock = _socket()
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        while True:
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except OSError:
                filler.close()
                break
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        sock.close()
