"""OpenTelemetry spans for the calls libmesh carries: a SERVER span per inbound request, a CLIENT span per
outbound call, W3C ``traceparent``/``tracestate`` and ``baggage`` on the wire.

::

    tracer = Tracer(sampling=1.0)                      # 1 % of new traces, as Istio samples by default
    span = tracer.start_server_span(headers, method="GET", path="/reviews/1", host="reviews", port=9080)
    with activate(InboundContext.from_headers(headers, otel_context=span.context)):
        ...                                            # the app runs; its outbound calls:
        out = tracer.start_client_span(method="GET", url="http://ratings:9080/ratings/1")
        tracer.inject(out, outbound_headers)
        ...
        out.finish(200)
    span.finish(200)

The sampling decision is libmesh's own, made before the TracerProvider is asked for anything: a request
whose trace is not sampled gets a non-recording span that still carries the trace id (and a fresh span
id), so the trace continues downstream with its ``sampled`` flag off and costs a few random numbers. The
default decision is OpenTelemetry's ``ParentBased(TraceIdRatioBased(sampling / 100))``: follow the
caller's flag, and sample a new trace when the low 64 bits of its id fall under the ratio. Leave the
provider's own sampler at its default (parent-based, always on) so that the two agree.

A span handed to the provider is recorded and exported by it; with no SDK installed (the API's no-op
provider) the span is replaced by a non-recording one so that propagation still works.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Final

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from .. import __version__
from .context import otel_current

if TYPE_CHECKING:
    from ..config.resources import TracingSettings

__all__ = ["DEFAULT_SAMPLING_PERCENT", "MeshSpan", "Tracer", "w3c_propagator"]

#: Istio's default sampling percentage (``meshConfig.defaultConfig.tracing.sampling``).
DEFAULT_SAMPLING_PERCENT: Final = 1.0

_TRACE_ID_LIMIT: Final = (1 << 64) - 1
_UNSAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_EMPTY: Final = Context()
# OpenTelemetry's key for the current span in a Context (read once, rather than imported from a private
# module).
_SPAN_KEY: Final = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, _EMPTY)))
# Its key for the baggage: a context without it has no baggage to write.
_BAGGAGE_KEY: Final = next(iter(otel_baggage.set_baggage("probe", "1", _EMPTY)))

_AttributesFactory = Callable[[], dict[str, AttributeValue]]
# An unrecorded span's trace id, span id, sampled flag, trace state and base context.
_Quiet = tuple[int, int, bool, "TraceState | None", Context]

_LOWER_HEX: Final = "0123456789abcdef"


def _parse_traceparent(traceparent: str) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) from a W3C ``traceparent``, or ``None`` when it is invalid (the request
    then starts a new trace, as the W3C recommendation says)."""
    # version-traceid-parentid-flags in lower-case hex; a later version may append "-" and more fields.
    # Checked by hand: a regular expression here cost a few microseconds a request in situ.
    text = traceparent.strip()
    size = len(text)
    if size < 55 or text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    version, trace_hex, span_hex, flags_hex = text[:2], text[3:35], text[36:52], text[53:55]
    if (version + trace_hex + span_hex + flags_hex).strip(_LOWER_HEX):
        return None
    if size > 55 and (version == "00" or text[55] != "-" or "\n" in text):
        return None
    if version == "ff":
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags_hex, 16) & 1)


def _remote_parent(traceparent: str, tracestate: str | None) -> SpanContext | None:
    """The caller's span from W3C trace context headers, or ``None`` when ``traceparent`` is invalid."""
    parsed = _parse_traceparent(traceparent)
    if parsed is None:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    flags = _SAMPLED if parsed[2] else _UNSAMPLED
    return SpanContext(parsed[0], parsed[1], is_remote=True, trace_flags=flags, trace_state=state)


class _QuietSpan(NonRecordingSpan):
    """The OpenTelemetry span of an unrecorded :class:`MeshSpan`: a non-recording span whose
    :class:`SpanContext` is built the first time something asks for it. An unsampled request puts one
    in OpenTelemetry's current context, so spans the app starts join the trace, and most never ask."""

    def __init__(self, quiet: _Quiet) -> None:  # NonRecordingSpan's __init__ wants the built context
        self._quiet = quiet
        self._built: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        built = self._built
        if built is None:
            trace_id, span_id, sampled, state, _ = self._quiet
            built = SpanContext(trace_id, span_id, False, _SAMPLED if sampled else _UNSAMPLED, state)
            self._built = built
        return built

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"


def w3c_propagator() -> TextMapPropagator:
    """W3C Trace Context and W3C Baggage together: what libmesh reads and writes on the wire."""
    return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


class MeshSpan:
    """A span libmesh started, recording or not. ``context`` is the OpenTelemetry context with this span
    current (and the parent's baggage): the parent for children and what :meth:`Tracer.inject` writes."""

    __slots__ = ("_context", "_quiet", "_span", "kind")

    def __init__(
        self, span: Span | None, context: Context | None, kind: SpanKind, quiet: _Quiet | None = None
    ) -> None:
        self._span = span
        self._context = context
        self._quiet = quiet
        self.kind = kind

    @classmethod
    def _unrecorded(cls, quiet: _Quiet, kind: SpanKind) -> MeshSpan:
        """A span that only carries the trace onwards. Most requests are not sampled, and most of those
        never need OpenTelemetry objects for their span: they are made on first use of :attr:`span` or
        :attr:`context`, and :meth:`Tracer.inject` writes the ids directly."""
        return cls(None, None, kind, quiet)

    @property
    def span(self) -> Span:
        """The OpenTelemetry span (a non-recording one when the trace is not sampled)."""
        span = self._span
        if span is None:
            assert self._quiet is not None
            span = _QuietSpan(self._quiet)
            self._span = span
        return span

    @property
    def context(self) -> Context:
        """The OpenTelemetry context with this span current, on top of the parent's baggage."""
        ctx = self._context
        if ctx is None:
            assert self._quiet is not None
            base = self._quiet[4]
            # Context({...}) is what set_span_in_context makes from an empty base, without its copies.
            ctx = (
                Context({_SPAN_KEY: self.span})
                if base is _EMPTY
                else trace.set_span_in_context(self.span, base)
            )
            self._context = ctx
        return ctx

    @property
    def sampled(self) -> bool:
        """The trace's ``sampled`` flag: the span is recorded and exported (unless no OpenTelemetry SDK is
        installed, in which case the flag is only passed on)."""
        if self._quiet is not None:
            return self._quiet[2]
        return self.span.get_span_context().trace_flags.sampled

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits (what ``traceparent`` carries)."""
        if self._quiet is not None:
            return format(self._quiet[0], "032x")
        return format(self.span.get_span_context().trace_id, "032x")

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set an attribute when the span is recorded (nothing otherwise)."""
        if self._quiet is None and self.span.is_recording():
            self.span.set_attribute(key, value)

    def finish(
        self,
        status_code: int | None = None,
        *,
        response_flags: str = "-",
        error: BaseException | str | None = None,
        upstream_cluster: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """End the span with the call's outcome: the HTTP status (``None`` when there was no response), the
        Envoy response flags, and the error that ended it. Following the HTTP conventions, a client span is
        an error for any status from 400 and a server span from 500, or when there is no response;
        ``error.type`` is the exception's class name, the given string, or the status code."""
        if self._quiet is not None:
            return
        span = self.span
        if not span.is_recording():
            return
        failed = status_code is None or status_code >= (400 if self.kind is SpanKind.CLIENT else 500)
        if status_code is not None:
            span.set_attribute("http.response.status_code", status_code)
        if response_flags and response_flags != "-":
            span.set_attribute("response_flags", response_flags)
        if upstream_cluster:
            span.set_attribute("upstream_cluster", upstream_cluster)
        if error is not None or failed:
            if isinstance(error, BaseException):
                error_type = type(error).__qualname__
                span.record_exception(error)
            elif error:
                error_type = error
            elif status_code is not None:
                error_type = str(status_code)
            else:
                error_type = response_flags if response_flags and response_flags != "-" else "_OTHER"
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end_time_ns)


class Tracer:
    """Starts libmesh's server and client spans on ``provider`` (default: the global TracerProvider) and
    moves trace context in and out of header dicts (lower-case names).

    ``sampling`` is the percentage (0-100) of new traces to record; ``sampler`` replaces the decision
    entirely with any OpenTelemetry :class:`~opentelemetry.sdk.trace.sampling.Sampler`. ``attributes`` are
    set on every recorded span (for instance ``istio.canonical_service``, ``istio.namespace``);
    ``propagator`` replaces the W3C trace context + baggage pair.
    """

    def __init__(
        self,
        provider: trace.TracerProvider | None = None,
        *,
        sampling: float = DEFAULT_SAMPLING_PERCENT,
        sampler: Sampler | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        if not 0.0 <= sampling <= 100.0:
            raise ValueError(f"sampling must be a percentage between 0 and 100, not {sampling}")
        self.sampling = sampling
        self.sampler: Sampler = sampler or ParentBased(TraceIdRatioBased(sampling / 100.0))
        self._custom_sampler = sampler is not None
        self._bound = TraceIdRatioBased.get_bound_for_rate(sampling / 100.0)
        provider = provider if provider is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer("libmesh", __version__)
        self._attributes: dict[str, AttributeValue] = dict(attributes or {})
        self.propagator: TextMapPropagator = propagator or w3c_propagator()
        # With the default propagator, W3C headers are read and written directly: OpenTelemetry's generic
        # propagator path costs several microseconds per request.
        self._w3c = propagator is None
        self._baggage = W3CBaggagePropagator()
        self._fields = frozenset(self.propagator.fields)

    @classmethod
    def from_settings(
        cls,
        settings: TracingSettings | None,
        provider: trace.TracerProvider | None = None,
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> Tracer | None:
        """The tracer MeshConfig's ``telemetry.tracing`` asks for, or ``None`` when ``enabled: false``.
        Absent settings mean Istio's default: tracing on at 1 % sampling."""
        if settings is not None and settings.enabled is False:
            return None
        sampling = (
            DEFAULT_SAMPLING_PERCENT if settings is None or settings.sampling is None else settings.sampling
        )
        return cls(provider, sampling=sampling, attributes=attributes, propagator=propagator)

    @property
    def fields(self) -> frozenset[str]:
        """The header names this tracer's propagator writes (``traceparent``, ``tracestate``, ``baggage`` for
        W3C): an outbound call's own values for them are replaced by :meth:`inject`."""
        return self._fields

    # --- propagation ---------------------------------------------------------------------------------

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The OpenTelemetry context carried by inbound ``headers`` (an empty one when they carry none)."""
        if not self._w3c:
            for name in self._fields:
                if name in headers:
                    return self.propagator.extract(headers)
            return _EMPTY
        ctx = _EMPTY
        traceparent = headers.get("traceparent")
        if traceparent is not None:
            parent = _remote_parent(traceparent, headers.get("tracestate"))
            if parent is not None:
                ctx = trace.set_span_in_context(NonRecordingSpan(parent), _EMPTY)
        if "baggage" in headers:
            ctx = self._baggage.extract(headers, context=ctx)
        return ctx

    def inject(self, span: MeshSpan | Context | None, headers: MutableMapping[str, str]) -> None:
        """Write ``traceparent``/``tracestate``/``baggage`` for ``span`` (or a context; the current one when
        ``None``) into outbound ``headers``, replacing any inbound values already there."""
        if headers:
            for name in self._fields:
                # Membership first: ``pop`` on a case-insensitive header map looks the name up twice.
                if name in headers:
                    del headers[name]
        if isinstance(span, MeshSpan) and span._quiet is not None and self._w3c:
            trace_id, span_id, sampled, state, base = span._quiet
            headers["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
            if state:
                headers["tracestate"] = state.to_header()
            if _BAGGAGE_KEY in base:
                self._baggage.inject(headers, context=base)
            return
        if isinstance(span, MeshSpan):
            ctx = span.context
            span_context = span.span.get_span_context()
        else:
            ctx = span if span is not None else otel_current()
            span_context = trace.get_current_span(ctx).get_span_context()
        if not self._w3c:
            self.propagator.inject(headers, context=ctx)
            return
        if span_context.is_valid:
            flags = "01" if span_context.trace_flags.sampled else "00"
            headers["traceparent"] = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags}"
            if span_context.trace_state:
                headers["tracestate"] = span_context.trace_state.to_header()
        if _BAGGAGE_KEY in ctx:
            self._baggage.inject(headers, context=ctx)

    # --- spans ---------------------------------------------------------------------------------------

    def start_server_span(
        self,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        scheme: str = "http",
        host: str | None = None,
        port: int | None = None,
        client_address: str | None = None,
        protocol_version: str | None = None,
        route: str | None = None,
        name: str | None = None,
        start_time_ns: int | None = None,
    ) -> MeshSpan:
        """A SERVER span for an inbound request, child of the trace its ``headers`` carry.

        ``path`` is the request target (query included); ``route`` the matched route template, if any.
        The span is named ``"{method} {route}"`` (or ``"{method}"``) unless ``name`` is given.
        """
        trace_id = None
        if self._w3c and not self._custom_sampler:
            # The default decision, made from the ids alone: an unsampled request (most of them) then
            # needs no OpenTelemetry object until something reads its span.
            traceparent = headers.get("traceparent")
            parsed = None if traceparent is None else _parse_traceparent(traceparent)
            tracestate = None
            if parsed is None:
                trace_id = random.getrandbits(128) or 1
                sampled = trace_id & _TRACE_ID_LIMIT < self._bound
            else:
                trace_id, _, sampled = parsed
                tracestate = headers.get("tracestate")
            if not sampled:
                state = TraceState.from_header([tracestate]) if tracestate else None
                quiet = (trace_id, random.getrandbits(64) or 1, False, state, self._inbound_baggage(headers))
                return MeshSpan._unrecorded(quiet, SpanKind.SERVER)
        remote, base = self._inbound(headers)
        span_name = name or (f"{method} {route}" if route else method)

        # A partial, not a nested function: a closure would put this method's locals on the heap on every
        # call in a compiled build, recorded or not.
        attributes = partial(
            _server_attributes,
            headers,
            method,
            path,
            scheme,
            host,
            port,
            client_address,
            protocol_version,
            route,
        )
        return self._start(span_name, remote, base, SpanKind.SERVER, attributes, start_time_ns, trace_id)

    def start_client_span(
        self,
        *,
        method: str,
        url: object,
        host: str | None = None,
        port: int | None = None,
        protocol_version: str | None = None,
        resend_count: int = 0,
        parent: Context | None = None,
        name: str | None = None,
        start_time_ns: int | None = None,
    ) -> MeshSpan:
        """A CLIENT span for an outbound call, child of ``parent`` (default: the current OpenTelemetry
        context, which the server middleware sets to the inbound request's span). ``resend_count`` numbers
        retries (0 for the first attempt). ``url`` is the full URL, or any object whose ``str()`` is: it is
        made a string only for a span that is recorded."""
        parent_ctx = parent if parent is not None else otel_current()
        # An empty context (a call made outside any request or span) has no parent to look up.
        parent_span = trace.get_current_span(parent_ctx).get_span_context() if parent_ctx else None

        attributes = partial(_client_attributes, method, url, host, port, protocol_version, resend_count)
        return self._start(
            name or method,
            parent_span if parent_span is not None and parent_span.is_valid else None,
            parent_ctx,
            SpanKind.CLIENT,
            attributes,
            start_time_ns,
        )

    def _inbound(self, headers: Mapping[str, str]) -> tuple[SpanContext | None, Context]:
        """The caller's span and the rest of the inbound context (baggage), kept apart so that an
        unsampled request never builds a context for a parent it only needs the ids of."""
        if not self._w3c:
            ctx = self.extract(headers)
            carried = trace.get_current_span(ctx).get_span_context()
            return (carried if carried.is_valid else None), ctx
        traceparent = headers.get("traceparent")
        remote = None if traceparent is None else _remote_parent(traceparent, headers.get("tracestate"))
        return remote, self._inbound_baggage(headers)

    def _inbound_baggage(self, headers: Mapping[str, str]) -> Context:
        """The W3C ``baggage`` inbound ``headers`` carry, as a context (the empty one without any)."""
        return self._baggage.extract(headers, context=_EMPTY) if "baggage" in headers else _EMPTY

    def _start(
        self,
        name: str,
        parent: SpanContext | None,
        base: Context,
        kind: SpanKind,
        attributes: _AttributesFactory,
        start_time_ns: int | None,
        new_trace_id: int | None = None,
    ) -> MeshSpan:
        """Start a span under ``parent`` (``None``: a new trace, ``new_trace_id`` if the caller drew it
        already); ``base`` is the context the span's own context is built on (the parent's baggage, and for
        a client span the parent itself)."""
        if parent is not None:
            trace_id = parent.trace_id
        else:
            trace_id = new_trace_id if new_trace_id is not None else (random.getrandbits(128) or 1)
        if self._custom_sampler:
            result = self.sampler.should_sample(_with_parent(parent, base), trace_id, name, kind)
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
        elif parent is not None:
            sampled = parent.trace_flags.sampled
        else:
            sampled = trace_id & _TRACE_ID_LIMIT < self._bound
        if sampled:
            attrs = attributes()
            if self._attributes:
                attrs.update(self._attributes)
            span = self._tracer.start_span(
                name,
                context=_with_parent(parent, base),
                kind=kind,
                attributes=attrs,
                start_time=start_time_ns,
            )
            if span.is_recording():
                return MeshSpan(span, trace.set_span_in_context(span, base), kind)
        # Not sampled, or no SDK to record it: a span that only carries the trace onwards.
        state = parent.trace_state if parent is not None else None
        return MeshSpan._unrecorded((trace_id, random.getrandbits(64) or 1, sampled, state, base), kind)


def _server_attributes(
    headers: Mapping[str, str],
    method: str,
    path: str,
    scheme: str,
    host: str | None,
    port: int | None,
    client_address: str | None,
    protocol_version: str | None,
    route: str | None,
) -> dict[str, AttributeValue]:
    """A recorded SERVER span's attributes (OpenTelemetry's HTTP semantic conventions)."""
    path_only, _, query = path.partition("?")
    attrs: dict[str, AttributeValue] = {
        "http.request.method": method,
        "url.path": path_only,
        "url.scheme": scheme,
    }
    if query:
        attrs["url.query"] = query
    _set_server_address(attrs, host, port, protocol_version)
    if client_address:
        attrs["client.address"] = client_address
    if route:
        attrs["http.route"] = route
    user_agent = headers.get("user-agent")
    if user_agent:
        attrs["user_agent.original"] = user_agent
    request_id = headers.get("x-request-id")
    if request_id:
        attrs["guid:x-request-id"] = request_id
    return attrs


def _client_attributes(
    method: str,
    url: object,
    host: str | None,
    port: int | None,
    protocol_version: str | None,
    resend_count: int,
) -> dict[str, AttributeValue]:
    """A recorded CLIENT span's attributes; ``url`` becomes a string only here."""
    attrs: dict[str, AttributeValue] = {"http.request.method": method, "url.full": str(url)}
    _set_server_address(attrs, host, port, protocol_version)
    if resend_count:
        attrs["http.request.resend_count"] = resend_count
    return attrs


def _set_server_address(
    attrs: dict[str, AttributeValue], host: str | None, port: int | None, protocol_version: str | None
) -> None:
    """The server's address and the protocol version, the attributes both span kinds carry when known."""
    if host:
        attrs["server.address"] = host
    if port is not None:
        attrs["server.port"] = port
    if protocol_version:
        attrs["network.protocol.version"] = protocol_version


def _with_parent(parent: SpanContext | None, base: Context) -> Context:
    """``base`` with ``parent`` as its current span (as OpenTelemetry's samplers and SDK expect it)."""
    if parent is None or (trace.get_current_span(base).get_span_context() is parent):
        return base
    return trace.set_span_in_context(NonRecordingSpan(parent), base)
