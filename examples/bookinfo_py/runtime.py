"""What every Bookinfo service does the same way to join the mesh: its command line, its mesh (hot-reloaded
from the configuration directory, endpoints from the YAML or from Consul), ``/metrics`` and the status
endpoint beside the app, and, when asked, span export to files.

None of this is per-request code: the services only call :func:`start` once and serve.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libmesh

from .topology import Ports

try:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError:  # pragma: no cover - the telemetry extra is part of what make demo installs
    SpanExporter = object  # type: ignore[assignment,misc]

__all__ = ["STATUS_PATH", "Service", "fastapi_app", "start", "with_admin"]

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
        http_port = Ports().ratings_http
        parser.add_argument(
            "--http-port", type=int, default=http_port, help=f"/metrics and status ({http_port})"
        )
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
    mesh = _open_mesh(options.config, workload, options.port, consul=options.consul)
    return Service(mesh, workload, options.port, options)


# --- the mesh, hot-reloaded -------------------------------------------------------------------------------


def _open_mesh(
    config_dir: Path, workload: libmesh.Workload, port: int, *, consul: str | None
) -> libmesh.Mesh:
    kwargs: dict[str, Any] = {}
    if consul:
        from libmesh.discovery.consul import ConsulRegistry, Registration

        # ServiceEntries declare ports and protocols; Consul has the instances. The server adapters register
        # this one when the server starts (ASGI lifespan, WSGI wrap, gRPC register_server) and deregister it
        # when it stops; no health check, so it passes at once (a deployment would add HealthCheck.tcp()).
        os.environ["CONSUL_HTTP_ADDR"] = consul
        kwargs["discovery"] = ConsulRegistry(consul, namespace=workload.namespace, wait="2s")
        kwargs["registration"] = Registration.from_workload(workload, port, address="127.0.0.1")
    # watch=True: every valid change of the directory is swapped in, an invalid one is logged and rejected.
    return libmesh.Mesh.from_paths(config_dir, workload=workload, watch=True, **kwargs)


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
    from libmesh.adapters.asgi import metrics_app, status_app

    admin = {"/metrics": metrics_app(mesh), STATUS_PATH: status_app(mesh)}

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
