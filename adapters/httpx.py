"""httpx client transports that send every request through the mesh.

The app calls the logical service and the mesh picks the route, the destination and the endpoint, keeps the
logical ``Host``, and applies retries, timeouts, circuit breaking, outlier detection, fault injection,
mirroring, header operations, propagation and telemetry::

    mesh = libmesh.Mesh.from_paths("mesh/", workload=libmesh.Workload(name="productpage", ...))
    with httpx.Client(transport=MeshTransport(mesh)) as client:
        client.get("http://reviews:9080/reviews/1")

    async with httpx.AsyncClient(transport=AsyncMeshTransport(mesh)) as client:
        await client.get("http://reviews:9080/reviews/1")

Wrapping a transport is httpx's documented seam: pass ``transport=`` to use your own inner transport (TLS
settings, limits, proxies). Without one, each destination whose DestinationRule sizes its connection pool
gets its own httpx pool, as an Envoy cluster has: ``tcp.maxConnections`` caps its connections,
``http.idleTimeout`` closes connections idle that long, and ``http.maxRequestsPerConnection: 1`` turns
keep-alive off (httpx cannot close a connection after any other number of requests, so larger values are
not applied). The other destinations share one default pool. With your own transport, its pool settings
stand and these fields are not applied.

The route timeout covers the whole response, body included, as Envoy's does: once the call's deadline has
passed, reading the rest of the body raises ``httpx.ReadTimeout``.

Responses the mesh makes itself (no route, fault abort, overflow, timeout...)
carry ``x-libmesh-response-flags`` with Envoy's response flags; so do upstream responses whose call set a
flag (``URX``, ``DI``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from types import FunctionType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import httpcore
import httpx

from libmesh.errors import CallerDeadlineExceeded
from libmesh.mesh import Mesh
from libmesh.policy.engine import CallPlan, Deliver, MirrorSend, Reply, Send, Sleep
from libmesh.policy.outcome import Failure, Flag, Outcome
from libmesh.routing.call import Call
from libmesh.routing.decision import HeaderOps

from ._server import FAULT_HEADER, note_injected_fault

if TYPE_CHECKING:
    from libmesh.routing.policy import PoolSettings
    from libmesh.telemetry.tracing import MeshSpan

__all__ = ["FLAGS_HEADER", "AsyncMeshTransport", "MeshTransport"]

#: Response header naming Envoy's response flags for the call (``UO``, ``UT``, ``NR``, ``FI``...).
FLAGS_HEADER = "x-libmesh-response-flags"
_PEER_HEADER = "x-libmesh-peer"
#: Seconds ``close()`` waits for mirrored copies still in flight.
_MIRROR_DRAIN = 1.0
_BODY_TIMEOUT = "the route timeout passed while the response body was being read"
T = TypeVar("T")


def _pool_limits(pool: PoolSettings | None) -> httpx.Limits | None:
    """The httpx pool limits a cluster's connection-pool settings ask for, or ``None`` when it sets none of
    the knobs an httpx pool has (the cluster then shares the default pool)."""
    if pool is None:
        return None
    # Istio cannot tell 0 from unset and treats both as "no limit".
    connections = pool.max_connections or None
    idle = pool.idle_timeout
    one_per_connection = pool.max_requests_per_connection == 1
    if connections is None and idle is None and not one_per_connection:
        return None
    default = httpx.Limits()
    keepalive = connections if connections is not None else default.max_keepalive_connections
    return httpx.Limits(
        max_connections=connections if connections is not None else default.max_connections,
        # No idle connection is kept, so each connection carries a single request.
        max_keepalive_connections=0 if one_per_connection else keepalive,
        keepalive_expiry=idle if idle is not None else default.keepalive_expiry,
    )


class _Pools(Generic[T]):
    """The inner transports of a mesh transport: the default one, and one per cluster whose DestinationRule
    sizes its connection pool. ``make`` builds a transport with given limits; ``None`` (the app passed its
    own transport) sends everything through the default one."""

    def __init__(self, default: T, make: Callable[[httpx.Limits], T] | None) -> None:
        self.default: T = default
        self._make: Callable[[httpx.Limits], T] | None = make
        # cluster name -> (the cluster's pool settings object, the limits made from it, its transport)
        self._by_cluster: dict[str, tuple[PoolSettings, httpx.Limits | None, T]] = {}
        self._made: list[T] = []
        self._lock = threading.Lock()

    def get(self, step: Send) -> T:
        """The transport for ``step``'s cluster."""
        pool, name = step.pool, step.cluster_name
        if self._make is None or pool is None or name is None:
            return self.default
        entry = self._by_cluster.get(name)
        # A cluster keeps its settings object for its life, so the identity check is the common case.
        if entry is not None and entry[0] is pool:
            return entry[2]
        return self._add(name, pool)

    def _add(self, name: str, pool: PoolSettings) -> T:
        assert self._make is not None
        limits = _pool_limits(pool)
        with self._lock:
            entry = self._by_cluster.get(name)
            if entry is not None and entry[1] == limits:
                # The cluster was rebuilt (new config) with the same pool limits: keep its connections.
                transport = entry[2]
            elif limits is None:
                transport = self.default
            else:
                # A transport replaced here may still carry responses being read: it is closed with the rest.
                transport = self._make(limits)
                self._made.append(transport)
            self._by_cluster[name] = (pool, limits, transport)
            return transport

    def all(self) -> list[T]:
        """Every transport to close: the default one and those made for clusters."""
        with self._lock:
            return [self.default, *self._made]


def _call(mesh: Mesh, request: httpx.Request) -> tuple[Call, dict[str, str]]:
    """The mesh's view of ``request`` and the request's own headers (lower-case names, repeats joined)."""
    headers: dict[str, str] = {}
    for item in _header_items(request.headers):
        name = item[1].decode("latin-1")
        value = item[2].decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    url = request.url
    authority = headers.pop("host", None)
    scheme, port, target = _url_parts(url)
    call = Call(
        authority=authority or url.netloc.decode("ascii"),
        path=target,
        method=request.method,
        scheme=scheme,
        headers=mesh.call_headers(headers),
        port=port,
        source_address=mesh.source_address,
        deadline=_caller_deadline(mesh, request),
    )
    return call, headers


def _url_parts(url: httpx.URL) -> tuple[str, int | None, str]:
    """``url``'s scheme, port (``None`` for the scheme's default) and path with query, read from its parsed
    form when httpx keeps one (each public property is an interpreted call, three a request)."""
    if _URL_REFERENCE:
        ref = url._uri_reference
        path: str = ref.path or "/"
        query = ref.query
        return ref.scheme, ref.port, path if query is None else f"{path}?{query}"
    return url.scheme, url.port, url.raw_path.decode("ascii")


def _url_reference_known() -> bool:
    """Whether an ``httpx.URL`` keeps its parsed form as ``_uri_reference`` with the fields httpx 0.2x
    gives it: checked against the public properties on URLs that exercise each of them."""
    for text in ("http://a.example/", "https://a.example:8443/p/q?x=1&y", "http://[::1]:80/%20?", "http://h"):
        url = httpx.URL(text)
        ref = getattr(url, "_uri_reference", None)
        try:
            path = ref.path or "/"  # type: ignore[union-attr]
            query = ref.query  # type: ignore[union-attr]
            parts = (ref.scheme, ref.port, path if query is None else f"{path}?{query}")  # type: ignore[union-attr]
        except AttributeError:
            return False
        if parts != (url.scheme, url.port, url.raw_path.decode("ascii")):
            return False
    return True


_URL_REFERENCE = _url_reference_known()


def _caller_deadline(mesh: Mesh, request: httpx.Request) -> float | None:
    """When the app's client gives up: its read timeout from now. Behind a sidecar the app waits for the
    first response byte while the sidecar delays, retries and backs off, so that one timeout bounds the
    whole call (httpx's default is 5 s)."""
    timeouts = request.extensions.get("timeout")
    read = timeouts.get("read") if timeouts else None
    return None if read is None else mesh.clock() + read


def _span_parent(request: httpx.Request, own: dict[str, str]) -> Any:
    """The OpenTelemetry context the app set on the request itself (its own ``traceparent`` and/or
    ``baggage``), which the client span continues as a sidecar would; ``None`` (the current context: the
    inbound request being served) when the app set neither. ``own`` is the request's own headers."""
    headers = request.headers
    has_trace, has_baggage = "traceparent" in own, "baggage" in own
    if not has_trace and not has_baggage:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = otel_context.get_current()
    if has_trace:
        carrier = {name: headers[name] for name in ("traceparent", "tracestate") if name in headers}
        ctx = TraceContextTextMapPropagator().extract(carrier, context=ctx)
    if has_baggage:
        ctx = W3CBaggagePropagator().extract({"baggage": headers["baggage"]}, context=ctx)
    return ctx


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _rewrite_url(url: httpx.URL, host: str, port: int, path: str) -> httpx.URL:
    """``url`` sent to ``host:port`` with ``path`` (path and query).

    httpx re-parses and re-validates every component in ``copy_with`` (about 12 us a call). When only the
    host and port change, and the host is a plain name or IPv4 address from the registry, replacing the
    fields of the already-parsed URL is enough; anything else takes the public path. URLs are immutable, so
    the rewritten one is kept per (parsed URL, host, port) and shared: a service called on the same URLs
    gets each one rewritten once.
    """
    ref = getattr(url, "_uri_reference", None)
    key = (ref, host, port)
    try:
        cached = _URLS.get(key)
    except TypeError:  # an unhashable parsed form: no cache
        cached = None
    if cached is not None and cached[0] == path:
        return cached[1]
    replace = getattr(ref, "_replace", None)
    if replace is not None and path.encode("ascii") == url.raw_path and ":" not in host and "%" not in host:
        new = httpx.URL.__new__(httpx.URL)
        new._uri_reference = replace(host=host.lower(), port=port)
    else:
        new = url.copy_with(host=host, port=port, raw_path=path.encode("ascii"))
    if ref is not None:
        if len(_URLS) >= 2048:
            _URLS.clear()
        with contextlib.suppress(TypeError):
            _URLS[key] = (path, new)
    return new


_URLS: dict[tuple[Any, str, int], tuple[str, httpx.URL]] = {}


def _attempt_request(
    request: httpx.Request,
    step: Send | MirrorSend,
    path: str,
    headers: HeaderOps,
    trace: dict[str, str] | None = None,
    traced: frozenset[str] = frozenset(),
    peer: tuple[bytes, bytes] | None = None,
) -> httpx.Request:
    """The request for one attempt (or a mirror): sent to the step's address with the header edits applied,
    then ``trace`` (the client span's ``traceparent``/``tracestate``/``baggage``) written over them.
    ``traced`` names every header the tracer owns: the request's own and the edits' are dropped for it.
    ``peer`` is (this workload's identity header value, the value to send instead) when the endpoint may
    skip its answer (:class:`~libmesh.telemetry.exchange.PeerExchange`)."""
    items, extensions = _attempt_parts(request, step, headers, trace, traced, peer)
    url = _rewrite_url(request.url, step.host, step.port, path)
    return _derive(request, url, _make_headers(items), extensions)


def _attempt_parts(
    request: httpx.Request,
    step: Send | MirrorSend,
    headers: HeaderOps,
    trace: dict[str, str] | None,
    traced: frozenset[str],
    peer: tuple[bytes, bytes] | None,
) -> tuple[list[_HeaderItem], dict[str, Any]]:
    """The headers (as httpx.Headers keeps them) and extensions of one attempt (see
    :func:`_attempt_request`)."""
    drop, set_items, add = _edits(headers, traced)
    host = step.authority.encode("utf-8")
    # One pass over the request's headers, in order: an httpx.Headers edit scans every header per name.
    items: list[_HeaderItem] = []
    appended: set[bytes] = set()
    for item in _header_items(request.headers):
        name = item[1]
        if name == b"host":
            items.append((item[0], name, host))
            host = b""
        elif name in drop:
            continue
        elif name in add and name not in appended:
            items.append((item[0], name, item[2] + b"," + add[name]))
            appended.add(name)
        else:
            items.append(item)
    if host:
        items.insert(0, (b"Host", b"host", host))
    if peer is None:
        items.extend(set_items)
    else:
        # Only the identity the mesh set: a route that sets the header itself keeps its value.
        own, value = peer
        for item in set_items:
            items.append((item[0], item[1], value) if item[1] == _PEER and item[2] == own else item)
    if len(appended) < len(add):
        items.extend((name, name, value) for name, value in add.items() if name not in appended)
    if trace:
        items.extend(_item(name, value) for name, value in trace.items())
    extensions = dict(request.extensions)
    if isinstance(step, Send):
        extensions["timeout"] = _attempt_timeouts(extensions.get("timeout"), step)
    return items, extensions


def _core_request(
    request: httpx.Request, call: Call, step: Send, items: list[_HeaderItem], extensions: dict[str, Any]
) -> httpcore.Request | None:
    """The attempt as the httpcore request an ``httpx.HTTPTransport`` would make of it, built from what the
    mesh already has (the transport would read each part back through httpx's properties and check it
    again). ``None`` unless the attempt keeps the request's own target and goes to a plain host name or
    IPv4 address, the case :func:`_rewrite_url` handles without httpx's parser: a rewritten path is
    normalised and percent-encoded by httpx, an IPv6 or non-ASCII host encoded, and the transport's own path
    does that. ``call`` is the request as :func:`_call` read it (its scheme, and its target, which an
    unrewritten attempt's path is)."""
    host = step.host
    if not _CORE_LAYOUT or not host.isascii() or ":" in host or "%" in host or step.path != call.path:
        return None
    url = httpcore.URL.__new__(httpcore.URL)
    url.scheme = call.scheme.encode("ascii")
    url.host = host.lower().encode("ascii")
    url.port = step.port
    url.target = step.path.encode("ascii")
    core = httpcore.Request.__new__(httpcore.Request)
    core.method = request.method.encode("ascii")
    core.url = url
    core.headers = [(item[0], item[2]) for item in items]
    core.stream = request.stream
    core.extensions = extensions
    return core


def _core_layout_known() -> bool:
    """Whether httpcore's ``Request`` and ``URL`` keep their state as the plain attributes httpcore 1.x
    gives them: then :func:`_core_request` fills them in directly."""
    url = httpcore.URL(scheme=b"http", host=b"probe", port=80, target=b"/")
    request = httpcore.Request(b"GET", url, headers=[(b"A", b"1")], content=b"", extensions={})
    return (
        vars(url).keys() == {"scheme", "host", "port", "target"}
        and vars(request).keys() == {"method", "url", "headers", "stream", "extensions"}
        and request.headers == [(b"A", b"1")]
    )


_CORE_LAYOUT = _core_layout_known()


def _core_pool(transport: object) -> httpcore.ConnectionPool | None:
    """The httpcore pool behind ``transport`` when it is a plain ``httpx.HTTPTransport`` (whose
    ``handle_request`` only converts to and from httpcore, which the mesh does for less); ``None``
    otherwise: a subclass, another transport, or one whose ``handle_request`` something replaced
    (OpenTelemetry's httpx instrumentation, pytest-httpx, respx) is called through its own API."""
    if not _unpatched(transport, httpx.HTTPTransport, "handle_request"):
        return None
    pool = getattr(transport, "_pool", None)
    return pool if isinstance(pool, httpcore.ConnectionPool) else None


def _async_core_pool(transport: object) -> httpcore.AsyncConnectionPool | None:
    """The asyncio twin of :func:`_core_pool`."""
    if not _unpatched(transport, httpx.AsyncHTTPTransport, "handle_async_request"):
        return None
    pool = getattr(transport, "_pool", None)
    return pool if isinstance(pool, httpcore.AsyncConnectionPool) else None


def _unpatched(transport: object, cls: type, method: str) -> bool:
    """Whether ``transport`` is exactly a ``cls`` whose ``method`` is still httpx's own function: neither the
    class's nor the instance's was replaced (instrumentation wraps them in objects of its own, test mocks
    put functions from other modules there). Checked on every attempt, as they can be patched at any time."""
    if type(transport) is not cls or method in vars(transport):
        return False
    function = cls.__dict__.get(method)
    return function is not None and function is _HTTPX_OWN.get(cls)


def _httpx_own(cls: type, method: str) -> Any:
    """``cls``'s ``method`` if it is httpx's own function as imported (``None`` when something replaced it
    before libmesh was imported: such a transport is never bypassed)."""
    function = cls.__dict__.get(method)
    own = type(function) is FunctionType and function.__module__.partition(".")[0] == "httpx"
    return function if own else None


_HTTPX_OWN: dict[type, Any] = {
    httpx.HTTPTransport: _httpx_own(httpx.HTTPTransport, "handle_request"),
    httpx.AsyncHTTPTransport: _httpx_own(httpx.AsyncHTTPTransport, "handle_async_request"),
}


_CORE_ERRORS: dict[type[BaseException], type[httpx.TransportError] | None] = {}


def _core_error(exc: BaseException) -> type[httpx.TransportError] | None:
    """The httpx exception an ``httpx.HTTPTransport`` raises for httpcore's ``exc`` (the same name: httpx
    mirrors httpcore's exceptions), or ``None`` for any other exception, which is raised as it is."""
    kind = type(exc)
    if kind in _CORE_ERRORS:
        return _CORE_ERRORS[kind]
    mapped: type[httpx.TransportError] | None = None
    for cls in kind.__mro__:
        if cls.__module__.partition(".")[0] != "httpcore":
            continue
        target = getattr(httpx, cls.__name__, None)
        if isinstance(target, type) and issubclass(target, httpx.TransportError):
            mapped = target
            break
    _CORE_ERRORS[kind] = mapped
    return mapped


def _core_httpx_error(exc: Exception) -> httpx.TransportError | None:
    """The httpx error to raise for httpcore's ``exc`` (see :func:`_core_error`), or ``None``."""
    mapped = _core_error(exc)
    return None if mapped is None else mapped(str(exc))


def _send_core(pool: httpcore.ConnectionPool, request: httpcore.Request) -> httpx.Response:
    """Send ``request`` through ``pool`` as ``httpx.HTTPTransport.handle_request`` does."""
    try:
        response = pool.handle_request(request)
    except Exception as e:
        mapped = _core_httpx_error(e)
        if mapped is None:
            raise
        raise mapped from e
    return _core_response(response, _CoreStream(cast("Iterable[bytes]", response.stream)))


async def _send_core_async(pool: httpcore.AsyncConnectionPool, request: httpcore.Request) -> httpx.Response:
    """The asyncio twin of :func:`_send_core`."""
    try:
        response = await pool.handle_async_request(request)
    except Exception as e:
        mapped = _core_httpx_error(e)
        if mapped is None:
            raise
        raise mapped from e
    return _core_response(response, _AsyncCoreStream(cast("AsyncIterable[bytes]", response.stream)))


def _sending(
    inner: httpx.AsyncBaseTransport,
    pool: httpcore.AsyncConnectionPool | None,
    core: httpcore.Request | None,
    request: httpx.Request,
    step: Send,
    items: list[_HeaderItem],
    extensions: dict[str, Any],
) -> Awaitable[httpx.Response]:
    """An async attempt's response, to await: from httpcore directly when ``core`` was made for ``pool``,
    else through ``inner``'s own API."""
    if core is not None and pool is not None:
        return _send_core_async(pool, core)
    return inner.handle_async_request(_httpx_attempt(request, step, items, extensions))


def _core_response(
    response: httpcore.Response, stream: httpx.SyncByteStream | httpx.AsyncByteStream
) -> httpx.Response:
    """httpcore's response as the ``httpx.Response`` the transport would have made of it. Its headers are
    laid out as httpx keeps them here, as ``httpx.Headers`` would from httpcore's byte pairs (and then
    copied by ``Response`` without a second look): ``Headers(pairs)`` checks and converts each name and value
    through three calls."""
    headers: Any = response.headers
    if _ITEMS:
        headers = _make_headers([(name, name.lower(), value) for name, value in response.headers])
    return httpx.Response(
        status_code=response.status, headers=headers, stream=stream, extensions=response.extensions
    )


class _CoreStream(httpx.SyncByteStream):
    """httpcore's response body as httpx's transport passes it on: its errors raised as httpx's."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except Exception as e:
            mapped = _core_httpx_error(e)
            if mapped is None:
                raise
            raise mapped from e

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class _AsyncCoreStream(httpx.AsyncByteStream):
    """The asyncio twin of :class:`_CoreStream`."""

    def __init__(self, inner: AsyncIterable[bytes]) -> None:
        self._inner = inner

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _AsyncCoreChunks(self._inner.__aiter__())

    async def aclose(self) -> None:
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()


class _AsyncCoreChunks:
    """The chunks of an :class:`_AsyncCoreStream` (an iterator class: the compiled build cannot compile an
    async generator)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> _AsyncCoreChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as e:
            mapped = _core_httpx_error(e)
            if mapped is None:
                raise
            raise mapped from e


# (name as sent, lower-case name, value): the item httpx.Headers keeps per header.
_HeaderItem = tuple[bytes, bytes, bytes]


def _item(name: str, value: str) -> _HeaderItem:
    raw = name.encode("latin-1")
    return raw, raw.lower(), value.encode("utf-8")


def _items_layout_known() -> bool:
    """Whether httpx.Headers keeps its items as ``_list`` of (name, lower-case name, value) byte triples, as
    httpx 0.2x does. Then headers are read and built through that list (building ``httpx.Headers`` from pairs
    costs several microseconds a request); otherwise only the public API is used."""
    probe = httpx.Headers([(b"X-Probe", b"1")])
    return vars(probe) == {"_list": [(b"X-Probe", b"x-probe", b"1")], "_encoding": None}


_ITEMS = _items_layout_known()


def _header_items(headers: httpx.Headers) -> list[_HeaderItem]:
    if _ITEMS:
        items: list[_HeaderItem] = headers._list
        return items
    return [(name, name.lower(), value) for name, value in headers.raw]


def _make_headers(items: list[_HeaderItem]) -> httpx.Headers:
    if _ITEMS:
        # Not httpx.Headers(): with no argument it still asks two ABCs whether None is a mapping.
        out = httpx.Headers.__new__(httpx.Headers)
        out._list = items
        out._encoding = None
        return out
    return httpx.Headers([(name, value) for name, _, value in items])


_Edits = tuple[frozenset[bytes], list[tuple[bytes, bytes, bytes]], dict[bytes, bytes]]
_EDITS: dict[tuple[int, frozenset[str]], tuple[HeaderOps, _Edits]] = {}


def _edits(ops: HeaderOps, traced: frozenset[str]) -> _Edits:
    """``ops`` as byte-level edits: names to drop (removed, set, or owned by the tracer: ``traced``), pairs
    to set, values to append; the tracer's headers are left out of the last two, since the client span's
    context replaces the inbound request's. Cached by identity, since the engine hands out the same
    ``HeaderOps`` for every call of a route."""
    key = (id(ops), traced)
    cached = _EDITS.get(key)
    if cached is not None and cached[0] is ops:
        return cached[1]
    owned = frozenset(name.encode("latin-1").lower() for name in traced)
    set_items = [_item(name, value) for name, value in ops.set.items()]
    set_items = [item for item in set_items if item[1] not in owned]
    drop = (
        frozenset(name.encode("latin-1").lower() for name in ops.remove)
        | {lower for _, lower, _ in set_items}
        | owned
    )
    add = {
        lower: value.encode("utf-8")
        for lower, value in ((name.encode("latin-1").lower(), value) for name, value in ops.add.items())
        if lower not in owned
    }
    edits = (drop, set_items, add)
    if len(_EDITS) >= 1024:
        _EDITS.clear()
    _EDITS[key] = (ops, edits)
    return edits


def _attempt_timeouts(current: Any, step: Send) -> dict[str, float | None]:
    """The httpx timeouts of one attempt: the app's own, tightened by the attempt's time left and the
    cluster's connect timeout (the mesh never loosens what the app asked for)."""
    timeouts: dict[str, float | None] = dict(current) if current else {}
    if step.timeout is not None:
        limit = step.timeout
        for key in ("connect", "read", "write", "pool"):
            value = timeouts.get(key)
            timeouts[key] = limit if value is None else min(value, limit)
    connect = step.connect_timeout
    if connect is not None:
        value = timeouts.get("connect")
        timeouts["connect"] = connect if value is None else min(value, connect)
    return timeouts


def _derive(
    request: httpx.Request, url: httpx.URL, headers: httpx.Headers, extensions: dict[str, Any]
) -> httpx.Request:
    """A copy of ``request`` with a new URL, headers and extensions, sharing its body stream.

    ``httpx.Request()`` would normalise and re-default every header again (the original was prepared when
    the client built it); copying the prepared request skips that.
    """
    if not _REQUEST_STATE or type(request) is not httpx.Request:
        return httpx.Request(
            request.method, url, headers=headers, stream=request.stream, extensions=extensions
        )
    new = httpx.Request.__new__(httpx.Request)
    new.__dict__.update(request.__dict__)
    new.url = url
    new.headers = headers
    new.extensions = extensions
    return new


def _request_state_known() -> bool:
    """Whether an ``httpx.Request`` keeps its state as plain attributes, as httpx 0.2x does: then
    :func:`_derive` copies them instead of building and normalising a new request."""
    state = getattr(httpx.Request("GET", "http://probe/"), "__dict__", None)
    return state is not None and {"method", "url", "headers", "stream", "extensions"} <= state.keys()


_REQUEST_STATE = _request_state_known()


def _classify(exc: httpx.TransportError) -> Failure:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return Failure.CONNECT
    if isinstance(exc, httpx.TimeoutException):
        return Failure.TIMEOUT
    return Failure.RESET


_GRPC_STATUS = b"grpc-status"
_FAULT = FAULT_HEADER.encode("latin-1")
_PEER = _PEER_HEADER.encode("latin-1")


def _outcome(response: httpx.Response, mesh: Mesh, endpoint: str | None, asked: bool) -> Outcome:
    """The attempt's outcome, reading the response headers the mesh needs in one pass (a ``Headers`` lookup
    scans and decodes every header each time). The destination's identity is resolved through the mesh's
    exchange for ``endpoint`` (``asked``: the request let it skip its answer)."""
    grpc: int | None = None
    injected = False
    peer: str | None = None
    for item in _header_items(response.headers):
        name, raw_value = item[1], item[2]
        if name == _GRPC_STATUS:
            grpc = int(raw_value) if raw_value.isdigit() else None
        elif name == _FAULT:
            injected = True
        elif name == _PEER:
            peer = raw_value.decode("latin-1")
    if endpoint is not None:
        peer = mesh.peer_exchange.resolve(endpoint, peer, asked)
    response.extensions["libmesh"] = (injected, peer)
    if grpc is None:
        status = response.status_code
        outcome = _STATUS_OUTCOMES.get(status)
        if outcome is None:
            outcome = _STATUS_OUTCOMES[status] = Outcome(status=status)
        return outcome
    return Outcome(status=response.status_code, grpc_status=grpc)


# Outcomes are immutable and a plain response's depends on its status only: one per status code (at most
# a few hundred; racing threads may both add one, which is harmless).
_STATUS_OUTCOMES: dict[int, Outcome] = {}


def _injected(response: httpx.Response) -> bool:
    facts = response.extensions.get("libmesh")
    return bool(facts[0]) if facts is not None else FAULT_HEADER in response.headers


def _peer(response: httpx.Response) -> str | None:
    facts = response.extensions.get("libmesh")
    peer: str | None = facts[1] if facts is not None else response.headers.get(_PEER_HEADER)
    return peer


def _note_fault(plan: CallPlan, response: httpx.Response) -> None:
    # The request being served (if any) met an injected fault: here, or marked by the next hop.
    if "FI" in plan.response_flags.split(",") or _injected(response):
        note_injected_fault()


def _local(request: httpx.Request, plan: CallPlan, step: Reply) -> httpx.Response:
    headers = dict(step.headers)
    headers[FLAGS_HEADER] = step.flags
    headers["content-type"] = "text/plain"
    if step.grpc_status is not None and request.headers.get("content-type", "").startswith(
        "application/grpc"
    ):
        # Envoy answers a gRPC request's local reply in gRPC terms, and any other request as plain HTTP.
        headers["grpc-status"] = str(step.grpc_status)
        headers["content-type"] = "application/grpc"
    plan.done(step.status, request_bytes=_content_length(request), response_bytes=len(step.body))
    return httpx.Response(step.status, headers=headers, content=step.body, request=request)


def _content_length(request: httpx.Request) -> int:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else 0


def _finalise(response: httpx.Response, plan: CallPlan, step: Deliver) -> None:
    ops = step.response_headers
    for name in ops.remove:
        if name in response.headers:
            del response.headers[name]
    for name, value in ops.set.items():
        response.headers[name] = value
    for name, value in ops.add.items():
        response.headers[name] = f"{response.headers[name]},{value}" if name in response.headers else value
    if plan.response_flags != "-":
        response.headers[FLAGS_HEADER] = plan.response_flags


def _begin(mesh: Mesh, request: httpx.Request) -> tuple[CallPlan, MeshSpan | None, int]:
    """What both transports do first: the call's plan, its client span, and the request body's size."""
    call, own = _call(mesh, request)
    plan = mesh.plan(call, body_replayable=_replayable(request))
    tracer = mesh.tracer
    span = None
    if tracer is not None:
        span = tracer.start_client_span(
            method=request.method,
            url=request.url,
            host=call.host,
            port=call.target_port,
            parent=_span_parent(request, own),
        )
    length = own.get("content-length", "")
    return plan, span, int(length) if length.isdigit() else 0


class _Meter:
    """What both counting streams keep: the call's plan, the bytes seen so far, and recording the call once
    when the body is closed. (Held, not inherited: a compiled class takes one base, here httpx's stream.)"""

    __slots__ = ("bytes", "done", "peer", "plan", "request_bytes", "status")

    def __init__(self, plan: CallPlan, status: int, request_bytes: int, peer: str | None) -> None:
        self.plan = plan
        self.status = status
        self.request_bytes = request_bytes
        self.peer = peer
        self.bytes = 0
        self.done = False

    def record(self) -> None:
        if not self.done:
            self.done = True
            self.plan.done(
                self.status, request_bytes=self.request_bytes, response_bytes=self.bytes, peer=self.peer
            )


class _CountingStream(httpx.SyncByteStream):
    """Passes the upstream body through, counting bytes, and records the call when it is closed."""

    def __init__(
        self, inner: httpx.SyncByteStream, plan: CallPlan, status: int, request_bytes: int, peer: str | None
    ):
        self._meter = _Meter(plan, status, request_bytes, peer)
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        meter = self._meter
        deadline = meter.plan.deadline
        if deadline is None:
            for chunk in self._inner:
                meter.bytes += len(chunk)
                yield chunk
            return
        # Each blocking read is already bounded by the attempt's read timeout (what the call had left when
        # the attempt began); the call's own deadline is enforced between reads.
        clock = meter.plan.mesh.clock
        try:
            for chunk in self._inner:
                if clock() >= deadline:
                    raise httpx.ReadTimeout(_BODY_TIMEOUT)
                meter.bytes += len(chunk)
                yield chunk
        except httpx.TimeoutException:
            meter.plan.flag(Flag.UPSTREAM_REQUEST_TIMEOUT)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._meter.record()


class _AsyncCountingStream(httpx.AsyncByteStream):
    """The asyncio twin of :class:`_CountingStream`."""

    def __init__(
        self, inner: httpx.AsyncByteStream, plan: CallPlan, status: int, request_bytes: int, peer: str | None
    ):
        self._meter = _Meter(plan, status, request_bytes, peer)
        self._inner = inner

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _AsyncChunks(self._meter, self._inner.__aiter__())

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._meter.record()


class _AsyncChunks:
    """The chunks of an :class:`_AsyncCountingStream`, counted, each read bounded by the call's deadline.
    (An iterator class rather than an async generator, which the compiled build cannot compile.)"""

    def __init__(self, meter: _Meter, chunks: AsyncIterator[bytes]) -> None:
        self._meter = meter
        self._chunks = chunks

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        meter = self._meter
        plan = meter.plan
        deadline = plan.deadline
        if deadline is None:
            chunk = await self._chunks.__anext__()
        else:
            remaining = deadline - plan.mesh.clock()
            if remaining <= 0:
                plan.flag(Flag.UPSTREAM_REQUEST_TIMEOUT)
                raise httpx.ReadTimeout(_BODY_TIMEOUT)
            try:
                # Only the read is under the timeout: the consumer runs outside it, between chunks.
                async with asyncio.timeout(remaining):
                    chunk = await self._chunks.__anext__()
            except TimeoutError:
                plan.flag(Flag.UPSTREAM_REQUEST_TIMEOUT)
                raise httpx.ReadTimeout(_BODY_TIMEOUT) from None
        meter.bytes += len(chunk)
        return chunk


def _httpx_attempt(
    request: httpx.Request, step: Send, items: list[_HeaderItem], extensions: dict[str, Any]
) -> httpx.Request:
    """The attempt as an ``httpx.Request`` (for a transport called through its own API), from its parts."""
    url = _rewrite_url(request.url, step.host, step.port, step.path)
    return _derive(request, url, _make_headers(items), extensions)


def _traced_parts(
    mesh: Mesh, request: httpx.Request, span: MeshSpan | None, step: Send, peer: tuple[bytes, bytes] | None
) -> tuple[list[_HeaderItem], dict[str, Any]]:
    """The headers and extensions of one attempt, carrying the client span's trace context."""
    tracer = mesh.tracer
    if tracer is None:
        return _attempt_parts(request, step, step.headers, None, frozenset(), peer)
    # Into a plain dict first: editing httpx.Headers costs a scan per name.
    trace: dict[str, str] = {}
    tracer.inject(span, trace)
    return _attempt_parts(request, step, step.headers, trace, tracer.fields, peer)


def _asking(mesh: Mesh, own: bytes, step: Send) -> tuple[str | None, tuple[bytes, bytes] | None]:
    """The attempt's endpoint key (``None``: no endpoint, a passthrough) and, when the endpoint may skip
    its identity answer, what its identity header is sent as instead (see :func:`_attempt_request`)."""
    endpoint = step.endpoint
    if endpoint is None:
        return None, None
    key = endpoint.key
    value = mesh.peer_exchange.request_value(key)
    return key, None if value is None else (own, value.encode("latin-1"))


def _deliver(response: httpx.Response, plan: CallPlan, step: Deliver, request_bytes: int) -> httpx.Response:
    """The upstream response as the call's: edits applied, its body counted for the call's record."""
    _finalise(response, plan, step)
    inner = response.stream
    assert isinstance(inner, httpx.SyncByteStream)
    response.stream = _CountingStream(inner, plan, response.status_code, request_bytes, _peer(response))
    return response


def _deliver_async(
    response: httpx.Response, plan: CallPlan, step: Deliver, request_bytes: int
) -> httpx.Response:
    """The asyncio twin of :func:`_deliver`."""
    _finalise(response, plan, step)
    inner = response.stream
    assert isinstance(inner, httpx.AsyncByteStream)
    response.stream = _AsyncCountingStream(inner, plan, response.status_code, request_bytes, _peer(response))
    return response


class MeshTransport(httpx.BaseTransport):
    """A sync httpx transport applying the mesh's policy to every request (see the module docstring).

    ``transport`` is the inner transport that really sends (default: ``httpx.HTTPTransport()``, plus one per
    destination whose DestinationRule sizes its connection pool).
    """

    def __init__(self, mesh: Mesh, transport: httpx.BaseTransport | None = None) -> None:
        self.mesh = mesh
        self._own_peer = (mesh.peer_header or "").encode("latin-1")
        self._inner = transport or httpx.HTTPTransport()
        self._pools: _Pools[httpx.BaseTransport] = _Pools(
            self._inner, None if transport is not None else _sync_transport
        )
        self._mirror_pool: ThreadPoolExecutor | None = None
        self._mirrors_in_flight: set[Future[None]] = set()
        self._mirror_lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        plan, span, request_bytes = _begin(self.mesh, request)
        # The plan is stepped here, as engine.drive does, rather than through drive's callbacks: closures
        # would cost every request their allocation and, compiled, put this method's locals on the heap.
        status = 0
        last: httpx.Response | None = None
        try:
            try:
                step = plan.first()
                while True:
                    if isinstance(step, Send):
                        if last is not None:
                            last.close()
                            last = None
                        outcome, last = self._send(request, plan.call, span, step)
                        step = plan.sent(outcome, fault_injected=last is not None and _injected(last))
                    elif isinstance(step, Sleep):
                        time.sleep(step.seconds)
                        step = plan.resume()
                    elif isinstance(step, Reply):
                        if last is not None:
                            last.close()
                            last = None
                        result = _local(request, plan, step)
                        break
                    else:
                        assert last is not None
                        result = _deliver(last, plan, step, request_bytes)
                        last = None
                        break
            except BaseException:
                plan.abandon()
                if last is not None:
                    last.close()
                raise
            status = result.status_code
            if status >= 400:
                _note_fault(plan, result)
        except CallerDeadlineExceeded as e:
            # What the app's client raises when its sidecar has not answered within its read timeout.
            raise httpx.ReadTimeout(str(e), request=request) from None
        finally:
            if span is not None:
                span.finish(status, response_flags=plan.response_flags)
        return result

    def _send(
        self, request: httpx.Request, call: Call, span: MeshSpan | None, step: Send
    ) -> tuple[Outcome, httpx.Response | None]:
        """One attempt: its request sent through the destination's pool; a transport error is an outcome."""
        mesh = self.mesh
        endpoint, peer = _asking(mesh, self._own_peer, step)
        if step.mirrors:
            self._mirror(request, step)
        inner = self._pools.get(step)
        items, extensions = _traced_parts(mesh, request, span, step, peer)
        pool = _core_pool(inner)
        core = None if pool is None else _core_request(request, call, step, items, extensions)
        try:
            if core is not None and pool is not None:
                response = _send_core(pool, core)
            else:
                response = inner.handle_request(_httpx_attempt(request, step, items, extensions))
        except httpx.TransportError as e:
            return Outcome(failure=_classify(e)), None
        return _outcome(response, mesh, endpoint, peer is not None), response

    def _mirror(self, request: httpx.Request, step: Send) -> None:
        with self._mirror_lock:
            if self._mirror_pool is None:
                self._mirror_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="libmesh-mirror")
            pool = self._mirror_pool
        for m in step.mirrors:
            shadow = _attempt_request(request, m, step.path, step.headers)
            future = pool.submit(self._send_shadow, shadow)
            with self._mirror_lock:
                self._mirrors_in_flight.add(future)
            future.add_done_callback(self._mirror_done)

    def _mirror_done(self, future: Future[None]) -> None:
        with self._mirror_lock:
            self._mirrors_in_flight.discard(future)

    def _send_shadow(self, request: httpx.Request) -> None:
        try:
            self._inner.handle_request(request).close()
        except Exception:  # a mirror never fails the call
            return

    def close(self) -> None:
        # Mirrored copies still on their way get a moment to finish (Envoy drains them too), never more.
        with self._mirror_lock:
            pending = list(self._mirrors_in_flight)
        if pending:
            futures_wait(pending, timeout=_MIRROR_DRAIN)
        if self._mirror_pool is not None:
            self._mirror_pool.shutdown(wait=False)
        for transport in self._pools.all():
            transport.close()


class AsyncMeshTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`MeshTransport` (same decisions; waits with asyncio)."""

    def __init__(self, mesh: Mesh, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.mesh = mesh
        self._own_peer = (mesh.peer_header or "").encode("latin-1")
        self._inner = transport or httpx.AsyncHTTPTransport()
        self._pools: _Pools[httpx.AsyncBaseTransport] = _Pools(
            self._inner, None if transport is not None else _async_transport
        )
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        plan, span, request_bytes = _begin(self.mesh, request)
        # Stepped inline, as the sync transport does (and for the same reasons), not by drive_async.
        status = 0
        last: httpx.Response | None = None
        try:
            try:
                step = plan.first()
                while True:
                    if isinstance(step, Send):
                        if last is not None:
                            await last.aclose()
                            last = None
                        outcome, last = await self._send(request, plan.call, span, step)
                        step = plan.sent(outcome, fault_injected=last is not None and _injected(last))
                    elif isinstance(step, Sleep):
                        await asyncio.sleep(step.seconds)
                        step = plan.resume()
                    elif isinstance(step, Reply):
                        if last is not None:
                            await last.aclose()
                            last = None
                        result = _local(request, plan, step)
                        break
                    else:
                        assert last is not None
                        result = _deliver_async(last, plan, step, request_bytes)
                        last = None
                        break
            except BaseException:
                plan.abandon()
                if last is not None:
                    # Closing only returns the connection to the pool; a second cancellation may interrupt it.
                    with contextlib.suppress(BaseException):
                        await last.aclose()
                raise
            status = result.status_code
            if status >= 400:
                _note_fault(plan, result)
        except CallerDeadlineExceeded as e:
            # What the app's client raises when its sidecar has not answered within its read timeout.
            raise httpx.ReadTimeout(str(e), request=request) from None
        finally:
            if span is not None:
                span.finish(status, response_flags=plan.response_flags)
        return result

    async def _send(
        self, request: httpx.Request, call: Call, span: MeshSpan | None, step: Send
    ) -> tuple[Outcome, httpx.Response | None]:
        """One attempt; a transport error or the attempt's own timeout is an outcome."""
        mesh = self.mesh
        endpoint, peer = _asking(mesh, self._own_peer, step)
        for m in step.mirrors:
            shadow = _attempt_request(request, m, step.path, step.headers)
            task = asyncio.ensure_future(self._send_shadow(shadow))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        inner = self._pools.get(step)
        items, extensions = _traced_parts(mesh, request, span, step, peer)
        pool = _async_core_pool(inner)
        core = None if pool is None else _core_request(request, call, step, items, extensions)
        try:
            # The awaitable is made where it is awaited, so that nothing can leave it never awaited.
            if step.timeout is not None and step.policy_timeout:
                # asyncio.timeout rather than wait_for: no task per attempt (8 us against 3 us). A limit that
                # is only the caller's own timeout is left to the transport, which has it in the attempt's
                # timeouts, as it would without the mesh.
                async with asyncio.timeout(step.timeout):
                    response = await _sending(inner, pool, core, request, step, items, extensions)
            else:
                response = await _sending(inner, pool, core, request, step, items, extensions)
        except TimeoutError:
            return Outcome(failure=Failure.TIMEOUT), None
        except httpx.TransportError as e:
            return Outcome(failure=_classify(e)), None
        return _outcome(response, mesh, endpoint, peer is not None), response

    async def _send_shadow(self, request: httpx.Request) -> None:
        try:
            response = await self._inner.handle_async_request(request)
            await response.aclose()
        except Exception:  # a mirror never fails the call
            return

    async def aclose(self) -> None:
        if self._shadow_tasks:
            await asyncio.wait(list(self._shadow_tasks), timeout=_MIRROR_DRAIN)
        for transport in self._pools.all():
            await transport.aclose()


def _sync_transport(limits: httpx.Limits) -> httpx.BaseTransport:
    return httpx.HTTPTransport(limits=limits)


def _async_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(limits=limits)
