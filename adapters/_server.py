"""What the ASGI and WSGI middleware share: turning an inbound request into the mesh's view of it."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

from libmesh.mesh import Mesh
from libmesh.routing.call import Call
from libmesh.telemetry.context import Activation, PendingContext, activate

if TYPE_CHECKING:
    from libmesh.telemetry.tracing import MeshSpan

__all__ = ["FAULT_HEADER", "Inbound", "join_headers", "note_injected_fault"]

#: Response header a served request answers an error with when one of its own outbound calls met an injected
#: fault: the caller's mesh then does not retry it, so an abort injected one hop down keeps its rate instead
#: of being retried away (Istio issue #25160).
FAULT_HEADER: Final = "x-libmesh-fault-injected"


class _FaultNote:
    """Whether an outbound call made while serving one request met an injected fault."""

    __slots__ = ("injected",)

    def __init__(self) -> None:
        self.injected = False


# The note of the request being served; asyncio tasks and wrapped threads share it through the context.
_FAULT_NOTE: Final[contextvars.ContextVar[_FaultNote | None]] = contextvars.ContextVar(
    "libmesh_fault_note", default=None
)


def note_injected_fault() -> None:
    """Record that an outbound call of the request being served ended with an injected fault (locally, or
    marked so by the next hop). Outside a served request this does nothing."""
    note = _FAULT_NOTE.get()
    if note is not None:
        note.injected = True


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; repeated headers joined with ``,`` (as Envoy matches and forwards them)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


class Inbound:
    """One served request: the context activated for the app, its server span, and counters. Only what
    the app may need while it runs is made up front; the request's :class:`Call` and its propagated
    context (:class:`~libmesh.telemetry.context.PendingContext`) are built when first read."""

    __slots__ = (
        "_call",
        "activation",
        "authority",
        "client",
        "fault_note",
        "fault_token",
        "headers",
        "mesh",
        "method",
        "path",
        "peer_identity",
        "request_bytes",
        "response_bytes",
        "scheme",
        "span",
        "started",
        "status",
    )

    def __init__(
        self,
        mesh: Mesh,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        scheme: str,
        authority: str,
        client: str | None,
        peer_identity: str | None,
        started: float,
        span: MeshSpan | None,
        activation: Activation,
    ) -> None:
        self.mesh = mesh
        self.headers = headers
        self.method = method
        self.path = path
        self.scheme = scheme
        self.authority = authority
        self.client = client
        self.peer_identity = peer_identity
        self.started = started
        self.span = span
        self.activation = activation
        self.request_bytes = 0
        self.response_bytes = 0
        self.status = 0
        self.fault_note = _FaultNote()
        self.fault_token: contextvars.Token[_FaultNote | None] | None = None
        self._call: Call | None = None

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
        span_name: str | None = None,
        time_remaining: Callable[[], float | None] | None = None,
    ) -> Inbound:
        """Start serving: start the server span and activate the request's context for the app
        (contextvars: it follows asyncio tasks and the request's thread). ``span_name`` replaces the
        server span's default name (gRPC spans are named ``package.Service/Method``); ``time_remaining``
        reads a deadline the transport keeps out of the headers (gRPC's)."""
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
                name=span_name,
            )
            otel_context = span.context
        pending = PendingContext(
            headers,
            propagate=mesh.mesh_config.propagate_headers,
            otel_context=otel_context,
            arrival=time.monotonic(),
            time_remaining=time_remaining,
        )
        # Inbound(...), not cls(...): a compiled build calls a named class directly, and a class object
        # through Python's generic keyword-argument parsing.
        inbound = Inbound(
            mesh,
            headers,
            method=method,
            path=path,
            scheme=scheme,
            authority=authority,
            client=client,
            peer_identity=peer_identity,
            started=started,
            span=span,
            activation=activate(pending),
        )
        inbound.fault_token = _FAULT_NOTE.set(inbound.fault_note)
        return inbound

    @property
    def call(self) -> Call:
        """The request as the mesh models it (built on first read)."""
        call = self._call
        if call is None:
            call = Call(
                authority=self.authority,
                path=self.path,
                method=self.method,
                scheme=self.scheme,
                headers=self.headers,
                source_address=self.client,
                peer_identity=self.peer_identity,
            )
            self._call = call
        return call

    def fault_marked(self, status: int) -> bool:
        """Whether the response, with ``status``, should carry :data:`FAULT_HEADER`: it is an error and one of
        this request's outbound calls met an injected fault."""
        return status >= 400 and self.fault_note.injected

    def end(
        self,
        error: BaseException | str | None = None,
        *,
        grpc_status: int | None = None,
        request_messages: int = 0,
        response_messages: int = 0,
    ) -> None:
        """Finish: reset the context, end the span and record the request once. A gRPC call gives its final
        ``grpc_status`` and message counts (``error`` then names a failed status for the span)."""
        try:
            if self.fault_token is not None:
                _FAULT_NOTE.reset(self.fault_token)
                self.fault_token = None
            self.activation.reset()
        finally:
            status = self.status or (500 if error is not None else 0)
            if self.span is not None:
                self.span.finish(status, error=error)
            if grpc_status is None:
                self.mesh.record_inbound(
                    self.headers,
                    self.peer_identity,
                    status,
                    duration_ms=(self.mesh.clock() - self.started) * 1000.0,
                    request_bytes=self.request_bytes,
                    response_bytes=self.response_bytes,
                )
            else:
                self.mesh.record_inbound(
                    self.headers,
                    self.peer_identity,
                    status,
                    duration_ms=(self.mesh.clock() - self.started) * 1000.0,
                    request_bytes=self.request_bytes,
                    response_bytes=self.response_bytes,
                    protocol="grpc",
                    grpc_status=grpc_status,
                    request_messages=request_messages,
                    response_messages=response_messages,
                )
