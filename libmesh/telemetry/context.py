"""The inbound request's context, carried to every outbound call the app makes while serving it.

A sidecar only sees bytes, so the app has to copy ``x-request-id``, the trace headers and any header used
for routing from each request to its outbound calls (Istio issue #1380). In process we can do it for the
app: the server middleware builds an :class:`InboundContext` from the request headers and activates it in
a :mod:`contextvars` variable; the client transport reads it back with :func:`current` and adds
:meth:`InboundContext.headers_to_forward` and the remaining deadline to the outbound request.

Which headers travel: ``traceparent``, ``tracestate``, ``baggage``, ``x-request-id`` (generated when the
request has none, as Envoy does) and the names MeshConfig lists in ``propagateHeaders`` (``end-user``...).

**Deadlines.** The time left travels between services in ``x-libmesh-deadline-ms``: the remaining
milliseconds when the request is sent, as a non-negative integer. Being relative, it needs no clock
agreement between hosts; the receiver turns it into an absolute deadline on its own monotonic clock on
arrival (the network time in between is not counted, so the deadline is slightly generous). gRPC's own
``grpc-timeout`` (``200m``, ``5S``, ...) is honoured on inbound too; when both are present the earlier
deadline wins. Every outbound call's timeout is capped by what remains (:func:`remaining_deadline`).

**asyncio.** Each request runs in its own task, and tasks copy the context when they are created, so
coroutines started with ``asyncio.gather``/``create_task``/``TaskGroup`` during a request carry it.
``asyncio.to_thread`` copies it too; ``loop.run_in_executor`` does not (use :func:`wrap`).

**Threads.** A WSGI server (Flask) runs each request on one thread and the middleware activates the
context on it. A thread the app starts itself begins with an empty context, so calls made from it carry
nothing from the request unless the target is wrapped: ``threading.Thread(target=wrap(work))`` or
``submit(executor, work, arg)``.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext

try:
    from opentelemetry import context as _otel
except ImportError:  # pragma: no cover - opentelemetry is part of the telemetry extra
    _otel = None  # type: ignore[assignment]


def _otel_variable() -> contextvars.ContextVar[OtelContext] | None:
    """The context variable behind OpenTelemetry's current context, when its runtime context is the stock
    one (``ContextVarsRuntimeContext``, which only gets, sets and resets that variable); ``None`` otherwise
    (another runtime context was configured), and then only OpenTelemetry's public functions are used.
    Reading the variable directly spares every request two interpreted calls to read it, and the server
    two to set it and two to reset it."""
    runtime = getattr(_otel, "_RUNTIME_CONTEXT", None)
    if type(runtime).__name__ != "ContextVarsRuntimeContext":
        return None
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, contextvars.ContextVar) else None


_OTEL_VARIABLE: Final = _otel_variable()


def otel_current() -> OtelContext:
    """OpenTelemetry's current context (``opentelemetry.context.get_current()``)."""
    if _OTEL_VARIABLE is not None:
        return _OTEL_VARIABLE.get()
    assert _otel is not None
    return _otel.get_current()


__all__ = [
    "DEADLINE_HEADER",
    "FORWARDED_HEADERS",
    "GRPC_TIMEOUT_HEADER",
    "REQUEST_ID_HEADER",
    "Activation",
    "InboundContext",
    "PendingContext",
    "activate",
    "current",
    "deadline_header_value",
    "effective_timeout",
    "format_grpc_timeout",
    "headers_to_forward",
    "new_request_id",
    "parse_deadline_ms",
    "parse_grpc_timeout",
    "remaining_deadline",
    "submit",
    "wrap",
]

_random_bits = random.getrandbits

P = ParamSpec("P")
R = TypeVar("R")

#: The header carrying the caller's remaining deadline in whole milliseconds.
DEADLINE_HEADER: Final = "x-libmesh-deadline-ms"
#: gRPC's timeout header, read on inbound requests.
GRPC_TIMEOUT_HEADER: Final = "grpc-timeout"
#: Envoy's request id header, generated when an inbound request has none.
REQUEST_ID_HEADER: Final = "x-request-id"
#: Headers always forwarded from an inbound request to its outbound calls.
FORWARDED_HEADERS: Final[tuple[str, ...]] = ("traceparent", "tracestate", "baggage", REQUEST_ID_HEADER)

# Longest deadline accepted from the network (about 115 days): larger values are treated as none.
_MAX_DEADLINE_MS: Final = 10_000_000_000
_EMPTY_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InboundContext:
    """What an inbound request passes on to the calls made while serving it.

    ``headers`` maps lower-case header names to the values to forward; ``otel_context`` is the
    OpenTelemetry context of the request's server span (``None`` without tracing); ``deadline`` is the
    absolute deadline on the :func:`time.monotonic` clock, or ``None`` for none.
    """

    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY_HEADERS)
    otel_context: OtelContext | None = None
    deadline: float | None = None

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, str],
        *,
        propagate: Iterable[str] = (),
        otel_context: OtelContext | None = None,
        generate_request_id: bool = True,
        now: float | None = None,
    ) -> InboundContext:
        """The context of an inbound request with ``headers`` (lower-case names; join repeated headers with
        commas first). ``propagate`` lists the extra header names to forward (MeshConfig
        ``propagateHeaders``, any case). ``now`` is the arrival time on the monotonic clock (default: now);
        the deadline is measured from it."""
        forward: dict[str, str] = {}
        for name in FORWARDED_HEADERS:
            value = headers.get(name)
            if value is not None:
                forward[name] = value
        for name in propagate:
            key = name.lower()
            value = headers.get(key)
            if value is not None:
                forward[key] = value
        if generate_request_id and REQUEST_ID_HEADER not in forward:
            forward[REQUEST_ID_HEADER] = new_request_id()
        deadline = None
        timeout = _inbound_timeout(headers)
        if timeout is not None:
            deadline = (time.monotonic() if now is None else now) + timeout
        return cls(MappingProxyType(forward), otel_context, deadline)

    @property
    def request_id(self) -> str | None:
        """The request's ``x-request-id``."""
        return self.headers.get(REQUEST_ID_HEADER)

    def headers_to_forward(self) -> dict[str, str]:
        """A fresh dict of the headers every outbound call should carry (without the deadline header,
        which is computed when each call is sent: see :func:`deadline_header_value`)."""
        return dict(self.headers)

    def remaining(self, clock: Callable[[], float] = time.monotonic) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` when there is no deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - clock())


def _inbound_timeout(headers: Mapping[str, str]) -> float | None:
    timeout = None
    raw = headers.get(DEADLINE_HEADER)
    if raw is not None:
        timeout = parse_deadline_ms(raw)
    raw = headers.get(GRPC_TIMEOUT_HEADER)
    if raw is not None:
        grpc_timeout = parse_grpc_timeout(raw)
        if grpc_timeout is not None and (timeout is None or grpc_timeout < timeout):
            timeout = grpc_timeout
    return timeout


def new_request_id() -> str:
    """A random (version 4) UUID in its text form, as Envoy generates for ``x-request-id``. The id names a
    request in logs and traces and guards nothing, so it comes from :mod:`random` (a third of the cost of
    :func:`os.urandom`, which is a system call) without building a :class:`uuid.UUID`."""
    h = f"{_random_bits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class PendingContext:
    """An inbound request's :class:`InboundContext`, built the first time something reads it.

    Most served requests make no outbound call, so the server adapters activate this instead of the
    context itself: reading the forwarded headers, generating an ``x-request-id`` and working out the
    deadline then happen only for a request whose app calls out (:func:`current` builds it once, from
    the request's arrival time). ``time_remaining`` gives the seconds a transport's own deadline leaves
    (gRPC's ``context.time_remaining``), read when the context is built::

        with activate(PendingContext(headers, propagate=("end-user",), arrival=time.monotonic())):
            ...   # current() builds the InboundContext here, if the app makes a call
    """

    __slots__ = ("_arrival", "_built", "_headers", "_otel", "_propagate", "_time_remaining")

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        propagate: tuple[str, ...] = (),
        otel_context: OtelContext | None = None,
        arrival: float,
        time_remaining: Callable[[], float | None] | None = None,
    ) -> None:
        self._headers = headers
        self._propagate = propagate
        self._otel = otel_context
        self._arrival = arrival
        self._time_remaining = time_remaining
        self._built: InboundContext | None = None

    @property
    def otel_context(self) -> OtelContext | None:
        """The OpenTelemetry context of the request's server span (activated at once, unlike the rest)."""
        return self._otel

    def resolve(self) -> InboundContext:
        """The request's :class:`InboundContext`, built on the first call and kept."""
        built = self._built
        if built is not None:
            return built
        built = InboundContext.from_headers(
            self._headers, propagate=self._propagate, otel_context=self._otel, now=self._arrival
        )
        if self._time_remaining is not None:
            left = self._time_remaining()
            if left is not None:
                deadline = time.monotonic() + max(0.0, left)
                if built.deadline is None or deadline < built.deadline:
                    built = InboundContext(built.headers, built.otel_context, deadline)
        self._built = built
        return built


# --- the current context ---------------------------------------------------------------------------------

_CURRENT: Final[contextvars.ContextVar[InboundContext | PendingContext | None]] = contextvars.ContextVar(
    "libmesh_inbound_context", default=None
)


def current() -> InboundContext | None:
    """The inbound context active in this task or thread, or ``None`` outside a request."""
    return _resolved(_CURRENT.get())


def _resolved(ctx: InboundContext | PendingContext | None) -> InboundContext | None:
    return ctx.resolve() if isinstance(ctx, PendingContext) else ctx


class Activation:
    """An active :class:`InboundContext`, returned by :func:`activate`. Undo it with :meth:`reset` (in the
    same task or thread), or use it as a context manager::

        with activate(ctx):
            ...
    """

    __slots__ = ("_otel_token", "_token", "activated")

    def __init__(self, ctx: InboundContext | PendingContext | None) -> None:
        self.activated = ctx
        self._token = _CURRENT.set(ctx)
        # The request's span also becomes OpenTelemetry's current context, so spans the app starts itself
        # are children of it and libmesh's client spans are children of those.
        otel_ctx = ctx.otel_context if ctx is not None else None
        token: object = None
        if otel_ctx is not None:
            if _OTEL_VARIABLE is not None:
                token = _OTEL_VARIABLE.set(otel_ctx)
            elif _otel is not None:
                token = _otel.attach(otel_ctx)
        self._otel_token = token

    def reset(self) -> None:
        """Restore what was active before."""
        token = self._otel_token
        if token is not None:
            self._otel_token = None
            if _OTEL_VARIABLE is not None:
                _OTEL_VARIABLE.reset(token)  # type: ignore[arg-type]
            elif _otel is not None:
                _otel.detach(token)  # type: ignore[arg-type]
        _CURRENT.reset(self._token)

    @property
    def context(self) -> InboundContext | None:
        """The activated context (a :class:`PendingContext` is built on this read)."""
        return _resolved(self.activated)

    def __enter__(self) -> InboundContext | None:
        return self.context

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.reset()


def activate(ctx: InboundContext | PendingContext | None) -> Activation:
    """Make ``ctx`` the current inbound context now (``None`` detaches from any request), and its
    OpenTelemetry context the current one. Returns the :class:`Activation` that undoes it."""
    return Activation(ctx)


def headers_to_forward() -> dict[str, str]:
    """The current inbound context's headers to forward (empty outside a request)."""
    ctx = current()
    return {} if ctx is None else dict(ctx.headers)


def remaining_deadline(clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds left before the current inbound request's deadline, or ``None`` when there is none."""
    ctx = current()
    return None if ctx is None else ctx.remaining(clock)


def effective_timeout(timeout: float | None, clock: Callable[[], float] = time.monotonic) -> float | None:
    """An outbound call's timeout capped by the current request's remaining deadline (``None``: neither
    limits it). A result of 0 means the deadline has already passed."""
    remaining = remaining_deadline(clock)
    if remaining is None:
        return timeout
    return remaining if timeout is None else min(timeout, remaining)


# --- the deadline headers --------------------------------------------------------------------------------


def deadline_header_value(seconds: float) -> str:
    """The :data:`DEADLINE_HEADER` value for ``seconds`` left: whole milliseconds, rounded down (so the
    receiver never believes it has more time than the sender), never negative."""
    return str(max(0, int(seconds * 1000)))


def parse_deadline_ms(value: str) -> float | None:
    """Seconds from a :data:`DEADLINE_HEADER` value, or ``None`` when it is not a non-negative integer of
    milliseconds (an invalid header is ignored, never an error)."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 11:
        return None
    millis = int(text)
    if millis > _MAX_DEADLINE_MS:
        return None
    return millis / 1000.0


_GRPC_UNITS: Final[dict[str, float]] = {
    "H": 3600.0,
    "M": 60.0,
    "S": 1.0,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
}


def parse_grpc_timeout(value: str) -> float | None:
    """Seconds from a ``grpc-timeout`` value (1 to 8 digits and a unit: ``H``, ``M``, ``S``, ``m``
    milliseconds, ``u`` microseconds, ``n`` nanoseconds), or ``None`` when it is malformed."""
    text = value.strip()
    if len(text) < 2 or len(text) > 9:
        return None
    digits, unit = text[:-1], text[-1]
    scale = _GRPC_UNITS.get(unit)
    if scale is None or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits) * scale


def format_grpc_timeout(seconds: float) -> str:
    """A ``grpc-timeout`` value for ``seconds``: the finest unit whose count fits gRPC's 8 digits, rounded
    down (``0n`` for no time left)."""
    nanos = max(0, round(seconds * 1e9))
    for unit, per in _GRPC_NANOS:
        count = nanos // per
        if count < 100_000_000:
            return f"{count}{unit}"
    return "99999999H"


_GRPC_NANOS: Final[tuple[tuple[str, int], ...]] = (
    ("n", 1),
    ("u", 1_000),
    ("m", 1_000_000),
    ("S", 1_000_000_000),
    ("M", 60_000_000_000),
    ("H", 3_600_000_000_000),
)


# --- threads ---------------------------------------------------------------------------------------------


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to the caller's context: every call runs in a copy of the context as it was when
    :func:`wrap` was called (the inbound request, its span, and any other context variables), on whatever
    thread calls it. Each call gets its own copy, so the wrapper may run on several threads at once."""
    snapshot = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return snapshot.copy().run(fn, *args, **kwargs)

    run.__wrapped__ = fn  # type: ignore[attr-defined]
    run.__doc__ = fn.__doc__
    return run


def submit(executor: Executor, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
    """``executor.submit(fn, *args, **kwargs)`` with the caller's context carried into the worker thread."""
    return executor.submit(wrap(fn), *args, **kwargs)
