"""What every Bookinfo service does the same way to join the mesh: its command line, its mesh (hot-reloaded
from the configuration directory, endpoints from the YAML or from Consul), the status endpoint and, when
asked, span export to files.

None of this is per-request code: the services below only call :func:`start` once and serve.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libmesh
from libmesh.config import load_paths
from libmesh.errors import ConfigError

try:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError:  # pragma: no cover - the telemetry extra is part of what make demo installs
    SpanExporter = object  # type: ignore[assignment,misc]

__all__ = [
    "STATUS_PATH",
    "Service",
    "config_version",
    "fastapi_app",
    "start",
    "status",
    "status_asgi",
    "status_wsgi",
    "with_admin",
]

log = logging.getLogger("bookinfo")

#: Where each service serves the mesh's status (for ratings: on its small HTTP server).
STATUS_PATH = "/libmesh/status"
#: Set to a directory to have every service write its finished spans there as JSON lines (tests read them).
SPANS_ENV = "BOOKINFO_SPANS_DIR"


@dataclass
class Service:
    """One started service: its mesh, workload, port and command-line options."""

    mesh: libmesh.Mesh
    workload: libmesh.Workload
    port: int
    options: argparse.Namespace


def start(app: str, argv: Sequence[str] | None, *, default_port: int, version: str = "v1") -> Service:
    """Parse the command line, set up logging and span export, and build the mesh of workload
    ``<app>-<version>`` from ``--config`` (a directory every service watches)."""
    parser = argparse.ArgumentParser(prog=f"python -m examples.bookinfo_py.{app}")
    parser.add_argument("--port", type=int, default=default_port, help=f"port on 127.0.0.1 ({default_port})")
    parser.add_argument("--config", required=True, type=Path, help="the mesh configuration directory")
    parser.add_argument("--version", default=version, help=f"the version label ({version})")
    parser.add_argument(
        "--consul",
        default=os.environ.get("BOOKINFO_CONSUL"),
        metavar="HOST:PORT",
        help="register in this Consul agent and take endpoints from it (env BOOKINFO_CONSUL)",
    )
    if app == "ratings":
        parser.add_argument("--http-port", type=int, default=9086, help="/metrics and status port (9086)")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"{app}-{options.version} %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    workload = libmesh.Workload(
        name=f"{app}-{options.version}",
        namespace="default",
        labels={"app": app, "version": options.version},
        service_account=f"bookinfo-{app}",
    )
    _export_spans(workload.name)
    mesh = _open_mesh(options.config, workload, consul=options.consul)
    if options.consul:
        _register(workload, options.port, options.consul)
    return Service(mesh, workload, options.port, options)


# --- the mesh, hot-reloaded -------------------------------------------------------------------------------


def _open_mesh(config_dir: Path, workload: libmesh.Workload, *, consul: str | None) -> libmesh.Mesh:
    registry = None
    if consul:
        from libmesh.discovery.consul import ChainedRegistry, ConsulRegistry
        from libmesh.discovery.static import StaticRegistry

        # ServiceEntries declare ports and protocols; Consul has the instances.
        static = StaticRegistry.from_config(load_paths([config_dir]), client_namespace=workload.namespace)
        registry = ChainedRegistry(static, ConsulRegistry(consul, namespace=workload.namespace, wait="2s"))
    kwargs: dict[str, Any] = {"registry": registry} if registry is not None else {}
    # Until libmesh's own watcher (Mesh.from_paths(..., watch=True)) lands, a small poller applies changes.
    mesh = libmesh.Mesh.from_paths(config_dir, workload=workload, **kwargs)
    _Reloader(mesh, config_dir).start()
    return mesh


class _Reloader(threading.Thread):
    """Applies every valid change of the directory's YAML files; an invalid one is logged and the last good
    configuration keeps serving. Stand-in for libmesh's watcher, with the same observable behaviour."""

    versions: dict[int, str] = {}

    def __init__(self, mesh: libmesh.Mesh, directory: Path) -> None:
        super().__init__(name="bookinfo-config-reload", daemon=True)
        self.mesh = mesh
        self.directory = directory
        self.signature = self._signature()
        _Reloader.versions[id(mesh)] = self._version()

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.suffix in (".yaml", ".yml"))

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in self._files():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _version(self) -> str:
        digest = hashlib.sha256()
        for p in self._files():
            digest.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        return digest.hexdigest()[:12]

    def run(self) -> None:
        stop = threading.Event()
        while not stop.wait(0.2):
            signature = self._signature()
            if signature == self.signature:
                continue
            self.signature = signature
            try:
                self.mesh.apply(load_paths([self.directory], namespace=self.mesh.namespace))
            except ConfigError as e:
                log.error("configuration change rejected, the last good one keeps serving:\n%s", e)
                continue
            except Exception:
                log.exception("configuration change rejected, the last good one keeps serving")
                continue
            _Reloader.versions[id(self.mesh)] = version = self._version()
            log.info("configuration %s applied", version)


def config_version(mesh: libmesh.Mesh) -> str:
    """The version of the configuration ``mesh`` serves."""
    version = getattr(mesh, "config_version", None)
    return version if isinstance(version, str) else _Reloader.versions.get(id(mesh), "")


def status(mesh: libmesh.Mesh) -> dict[str, Any]:
    """The mesh's status as JSON-able data (at least ``config_version`` and the workload)."""
    own = getattr(mesh, "status", None)
    if callable(own):
        data = dict(own())
        data.setdefault("config_version", config_version(mesh))
        return data
    return {
        "config_version": config_version(mesh),
        "workload": mesh.workload.name,
        "labels": dict(mesh.workload.labels),
        "clusters": {name: len(c.endpoints) for name, c in mesh.clusters().items()},
    }


def fastapi_app(title: str) -> Any:
    """A FastAPI app whose own OpenTelemetry instrumentation (FastAPI 0.16x and later) is off: libmesh's
    middleware already makes the server span, continuing the caller's trace, and a second one would start
    a trace of its own."""
    from fastapi import FastAPI

    try:
        return FastAPI(title=title, telemetry={"tracing": False, "metrics": False, "auto_configure": False})
    except TypeError:  # a FastAPI without native telemetry
        return FastAPI(title=title)


def with_admin(mesh: libmesh.Mesh, app: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """An ASGI app serving ``/metrics`` and the status endpoint of ``mesh`` and passing every other request to
    ``app`` (404 without one). The two admin paths stay outside the app's mesh middleware, as Istio's
    merged-metrics port is outside the inbound listener, so scrapes are not counted as requests to the
    service::

        uvicorn.run(with_admin(mesh, fastapi_app), host="127.0.0.1", port=9080)
    """
    from libmesh.adapters.asgi import metrics_app

    admin = {"/metrics": metrics_app(mesh), STATUS_PATH: status_asgi(mesh)}

    async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        target = admin.get(scope.get("path", "")) if scope["type"] == "http" else None
        if target is not None:
            await target(scope, receive, send)
        elif app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return dispatch


def status_asgi(mesh: libmesh.Mesh) -> Callable[..., Any]:
    """An ASGI app answering with :func:`status` as JSON (libmesh's own when it has one)."""
    from libmesh.adapters import asgi

    own = getattr(asgi, "status_app", None)
    if own is not None:
        return own(mesh)  # type: ignore[no-any-return]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps(status(mesh), indent=1).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def status_wsgi(mesh: libmesh.Mesh) -> Callable[..., Any]:
    """A WSGI app answering with :func:`status` as JSON (libmesh's own when it has one)."""
    from libmesh.adapters import wsgi

    own = getattr(wsgi, "status_app", None)
    if own is not None:
        return own(mesh)  # type: ignore[no-any-return]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.dumps(status(mesh), indent=1).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


# --- Consul -----------------------------------------------------------------------------------------------


def _register(workload: libmesh.Workload, port: int, consul: str) -> None:
    from libmesh.discovery.consul import Registration, register_workload

    # No health check: the instance passes at once (a real deployment would add HealthCheck.tcp()).
    registration = Registration.from_workload(workload, port, address="127.0.0.1")
    register_workload(registration, address=consul, at_exit=True)


# --- spans to files ---------------------------------------------------------------------------------------


def _export_spans(service: str) -> None:
    directory = os.environ.get(SPANS_ENV)
    if not directory:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(_JsonLinesExporter(Path(directory), service)))
    trace.set_tracer_provider(provider)


class _JsonLinesExporter(SpanExporter):
    """Writes each finished span as one JSON line to ``<dir>/<service>-<pid>.jsonl``."""

    def __init__(self, directory: Path, service: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{service}-{os.getpid()}.jsonl"
        self.service = service
        self.lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        lines = []
        for s in spans:
            parent = s.parent
            lines.append(
                json.dumps(
                    {
                        "service": self.service,
                        "name": s.name,
                        "kind": s.kind.name,
                        "trace_id": f"{s.context.trace_id:032x}",
                        "span_id": f"{s.context.span_id:016x}",
                        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
                        "attributes": {
                            k: v for k, v in (s.attributes or {}).items() if isinstance(v, (str, int))
                        },
                        "start": s.start_time,
                        "end": s.end_time,
                    }
                )
            )
        with self.lock, self.path.open("a") as f:
            f.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
