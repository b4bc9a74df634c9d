"""What the ASGI and WSGI middleware share: turning an inbound request into the mesh's view of it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libmesh.mesh import Mesh
from libmesh.routing.call import Call
from libmesh.telemetry.context import Activation, InboundContext, activate

if TYPE_CHECKING:
    from libmesh.telemetry.tracing import MeshSpan

__all__ = ["Inbound", "join_headers"]


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; repeated headers joined with ``,`` (as Envoy matches and forwards them)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


@dataclass(slots=True)
class Inbound:
    """One served request: its Call, the context activated for the app, its server span, and counters."""

    mesh: Mesh
    call: Call
    started: float
    activation: Activation
    span: MeshSpan | None
    request_bytes: int = 0
    response_bytes: int = 0
    status: int = 0

    @classmethod
    def begin(
        cls,
        mesh: Mesh,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        scheme: str,
        authority: str,
        client: str | None,
        peer_identity: str | None = None,
    ) -> Inbound:
        """Start serving: build the Call, the server span and the propagated context, and activate it for
        the app (contextvars: it follows asyncio tasks and the request's thread)."""
        started = mesh.clock()
        tracer = mesh.tracer
        span = None
        otel_context = None
        if tracer is not None:
            host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
            span = tracer.start_server_span(
                headers,
                method=method,
                path=path,
                scheme=scheme,
                host=host or authority,
                port=int(port) if port.isdigit() else None,
                client_address=client,
            )
            otel_context = span.context
        ctx = InboundContext.from_headers(
            headers,
            propagate=mesh.mesh_config.propagate_headers,
            otel_context=otel_context,
            now=time.monotonic(),
        )
        call = Call(
            authority=authority,
            path=path,
            method=method,
            scheme=scheme,
            headers=headers,
            source_address=client,
            peer_identity=peer_identity,
        )
        return cls(mesh, call, started, activate(ctx), span)

    def end(self, error: BaseException | None = None) -> None:
        """Finish: reset the context, end the span and record the request once."""
        try:
            self.activation.reset()
        finally:
            status = self.status or (500 if error is not None else 0)
            if self.span is not None:
                self.span.finish(status, error=error)
            self.mesh.record_inbound(
                self.call,
                status,
                duration_ms=(self.mesh.clock() - self.started) * 1000.0,
                request_bytes=self.request_bytes,
                response_bytes=self.response_bytes,
            )
