"""What the sync and asyncio gRPC channels share: the logical target, per-endpoint channels, metadata edits,
classifying an attempt's result, and recording a finished call. No waiting happens here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import grpc

from libmesh.errors import CallerDeadlineExceeded
from libmesh.mesh import Mesh
from libmesh.policy.engine import CallPlan, Deliver, Reply, Send, Sleep
from libmesh.policy.grpc_codes import (
    DEADLINE_EXCEEDED,
    GRPC_CODE_NAMES,
    OK,
    UNAVAILABLE,
    UNKNOWN,
    http_to_grpc,
)
from libmesh.policy.outcome import Failure, Flag, Outcome
from libmesh.routing.call import Call
from libmesh.routing.decision import HeaderOps

from ._server import FAULT_HEADER, Inbound, note_injected_fault

if TYPE_CHECKING:
    from libmesh.telemetry.tracing import MeshSpan

__all__ = [
    "FLAGS_METADATA",
    "PEER_METADATA",
    "ChannelPool",
    "Conn",
    "MeshRpcError",
    "Target",
]

#: Trailing metadata naming Envoy's response flags of a call the mesh answered itself (``UO``, ``FI``...).
FLAGS_METADATA: Final = "x-libmesh-response-flags"
#: Metadata carrying a workload's identity to its peer (Istio's metadata exchange).
PEER_METADATA: Final = "x-libmesh-peer"
#: Envoy's default idle timeout for upstream connections: a per-endpoint channel unused this long is closed.
DEFAULT_IDLE_TIMEOUT: Final = 3600.0
_SWEEP_EVERY: Final = 1.0

STATUS_BY_CODE: Final[dict[int, grpc.StatusCode]] = {s.value[0]: s for s in grpc.StatusCode}

#: The outcome of an attempt whose first response message arrived: its headers were a success; its final
#: status comes later (Envoy judges an attempt by its response headers too).
HEADERS_OK: Final = Outcome(status=200)
#: The outcome of an attempt that ended with OK.
ENDED_OK: Final = Outcome(status=200, grpc_status=OK)
_OUTCOMES: Final[dict[int, Outcome]] = {code: Outcome(status=200, grpc_status=code) for code in range(17)}
_CONNECT_FAILED = Outcome(failure=Failure.CONNECT)
_TIMED_OUT = Outcome(failure=Failure.TIMEOUT)
# Tolerance when telling the attempt's own deadline from a DEADLINE_EXCEEDED the server chose to send.
_DEADLINE_SLACK: Final = 0.005

C = TypeVar("C")


class Target:
    """The logical service a mesh channel calls: ``"ratings:9080"`` (``dns:///`` prefixes are accepted)."""

    __slots__ = ("authority", "host", "port")

    def __init__(self, target: str) -> None:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"a mesh channel needs a target such as 'ratings:9080', not {target!r}")
        text = target.strip()
        for prefix in ("dns:///", "dns:"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        if "/" in text or text.startswith(("unix:", "ipv4:", "ipv6:")):
            raise ValueError(
                f"mesh channel target {target!r}: name a service as host:port (e.g. 'ratings:9080'); "
                "the mesh picks the endpoints"
            )
        call = Call(authority=text, scheme="grpc")
        port = call.target_port
        if not 0 < port < 65536:
            raise ValueError(f"mesh channel target {target!r}: port {port} is out of range")
        self.host = call.host
        self.port = port
        self.authority = text


class Conn(Generic[C]):
    """One real channel to one endpoint (and authority), with its multicallables and use counts."""

    __slots__ = (
        "active",
        "callables",
        "channel",
        "closed",
        "idle_timeout",
        "key",
        "last_used",
    )

    def __init__(self, key: tuple[str, int, str], channel: C, idle_timeout: float, now: float) -> None:
        self.key = key
        self.channel = channel
        self.callables: dict[tuple[str, str], Any] = {}
        self.active = 0
        self.last_used = now
        self.idle_timeout = idle_timeout
        self.closed = False

    def callable(self, kind: str, method: str, registered: bool) -> Any:
        """The channel's raw-bytes multicallable of ``kind`` (``unary_unary``...) for ``method``, made once."""
        key = (kind, method)
        mc = self.callables.get(key)
        if mc is None:
            factory = getattr(self.channel, kind)
            mc = factory(method, None, None, _registered_method=registered)
            self.callables[key] = mc
        return mc


class ChannelPool(Generic[C]):
    """One real channel per (endpoint address, authority), made on first use; channels no call has used for
    the cluster's ``http.idleTimeout`` (Envoy's default 1 h) are closed. ``make(address, authority)`` builds a
    channel; ``close(channel)`` closes one."""

    def __init__(
        self,
        make: Callable[[str, str], C],
        close: Callable[[C], None],
        clock: Callable[[], float],
    ) -> None:
        self._make = make
        self._close = close
        self._clock = clock
        self._conns: dict[tuple[str, int, str], Conn[C]] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + _SWEEP_EVERY

    def acquire(self, step: Send) -> Conn[C]:
        """The channel for ``step``'s endpoint, counted as in use until :meth:`release`."""
        key = (step.host, step.port, step.authority)
        now = self._clock()
        with self._lock:
            conn = self._conns.get(key)
            if conn is None:
                conn = self._add(key, step, now)
            conn.active += 1
            conn.last_used = now
        if now >= self._next_sweep:
            self.sweep(now)
        return conn

    def _add(self, key: tuple[str, int, str], step: Send, now: float) -> Conn[C]:
        host, port, authority = key
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        pool = step.pool
        idle = pool.idle_timeout if pool is not None and pool.idle_timeout else DEFAULT_IDLE_TIMEOUT
        conn = Conn(key, self._make(address, authority), idle, now)
        self._conns[key] = conn
        return conn

    def release(self, conn: Conn[C]) -> None:
        """An attempt on ``conn`` is over."""
        now = self._clock()
        with self._lock:
            conn.active -= 1
            conn.last_used = now

    def sweep(self, now: float | None = None) -> int:
        """Close channels idle past their cluster's idle timeout; returns how many were closed."""
        now = self._clock() if now is None else now
        with self._lock:
            self._next_sweep = now + _SWEEP_EVERY
            idle = [c for c in self._conns.values() if c.active <= 0 and now - c.last_used >= c.idle_timeout]
            for c in idle:
                c.closed = True
                del self._conns[c.key]
        for c in idle:
            self._close(c.channel)
        return len(idle)

    def addresses(self) -> list[tuple[str, int, str]]:
        """The (host, port, authority) of every open channel."""
        with self._lock:
            return list(self._conns)

    def close_all(self) -> list[C]:
        """Forget every channel and return them (the caller closes them)."""
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for c in conns:
            c.closed = True
        return [c.channel for c in conns]


# --- the call ---------------------------------------------------------------------------------------------


def metadata_dict(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The app's metadata as the mesh routes on it: lower-case names, text values, repeats joined with ``,``
    (binary ``-bin`` values are sent but never matched)."""
    out: dict[str, str] = {}
    if not metadata:
        return out
    for name, value in metadata:
        if not isinstance(value, str):
            continue
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


class MethodInfo:
    """What every call of one method on one mesh channel shares, worked out once when the stub asks for the
    method: the path ``/package.Service/Method``, the logical authority, the client span's name, URL and rpc
    attributes, and the metadata the last attempt's header edits gave (most calls reuse it)."""

    __slots__ = ("_last", "authority", "host", "path", "port", "rpc_attributes", "span_name", "url")

    def __init__(self, target: Target, path: str) -> None:
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 2:
            raise ValueError(f"a gRPC method path looks like '/package.Service/Method', not {path!r}")
        self.path = path
        self.authority = target.authority
        self.host = target.host
        self.port = target.port
        self.span_name = path[1:]
        self.url = f"http://{target.authority}{path}"
        service, _, name = self.span_name.rpartition("/")
        self.rpc_attributes: tuple[tuple[str, str], ...] = (
            ("rpc.system", "grpc"),
            ("rpc.service", service),
            ("rpc.method", name),
        )
        # (header edits, identity value sent, the metadata entries they give, those entries' names)
        self._last: tuple[
            HeaderOps | None, str | None, tuple[tuple[str, str | bytes], ...], frozenset[str]
        ] = (
            None,
            None,
            (),
            frozenset(),
        )

    def start(
        self,
        mesh: Mesh,
        metadata: Sequence[tuple[str, str | bytes]] | None,
        replayable: bool,
        deadline: float | None = None,
    ) -> tuple[CallPlan, MeshSpan | None]:
        """The plan and the client span of one call with the app's ``metadata``; ``deadline`` is the
        caller's own (its ``timeout`` from now, on the mesh's clock), which no injected delay or retry
        back-off outlasts."""
        own = metadata_dict(metadata) if metadata else None
        call = Call(
            self.authority,
            self.path,
            "POST",
            "http",
            mesh.call_headers(own if own else _NO_HEADERS),
            self.port,
            "grpc",
            mesh.source_address,
            deadline=deadline,
        )
        plan = mesh.plan(call, body_replayable=replayable, protocol="grpc")
        tracer = mesh.tracer
        if tracer is None:
            return plan, None
        parent = tracer.extract(own) if own and ("traceparent" in own or "baggage" in own) else None
        span = tracer.start_client_span(
            method="POST", url=self.url, host=self.host, port=self.port, parent=parent, name=self.span_name
        )
        if span.sampled:
            for key, value in self.rpc_attributes:
                span.set_attribute(key, value)
        return plan, span

    def metadata(
        self,
        own: Sequence[tuple[str, str | bytes]] | None,
        edits: HeaderOps,
        span: MeshSpan | None,
        mesh: Mesh,
        peer_value: str | None = None,
    ) -> Sequence[tuple[str, str | bytes]]:
        """The metadata of one attempt: the app's own, with the route's edits, the propagated context and
        the client span's trace context (which replaces any the edits carry). ``peer_value``, when given,
        is sent as the identity entry instead (see :func:`asking`)."""
        trace: dict[str, str] | None = None
        tracer = mesh.tracer
        if span is not None and tracer is not None:
            trace = {}
            tracer.inject(span, trace)
        if own or edits.add or edits.remove:
            entries = attempt_metadata(own, edits, trace)
            return entries if peer_value is None else _with_peer(entries, peer_value)
        last = self._last
        if last[0] is edits and last[1] is peer_value:
            base, names = last[2], last[3]
        else:
            base = tuple((k, v) for k, v in edits.set.items() if k not in _RESERVED)
            if peer_value is not None:
                base = _with_peer(base, peer_value)
            names = frozenset(k for k, _ in base)
            self._last = (edits, peer_value, base, names)
        if not trace:
            return base
        if names.isdisjoint(trace):
            return base + tuple(trace.items())
        return tuple((k, v) for k, v in base if k not in trace) + tuple(trace.items())


def _with_peer(entries: Sequence[tuple[str, str | bytes]], value: str) -> tuple[tuple[str, str | bytes], ...]:
    """``entries`` with the identity entry's value replaced by ``value``."""
    return tuple((k, value) if k == PEER_METADATA else (k, v) for k, v in entries)


def asking(mesh: Mesh, step: Send) -> tuple[str | None, str | None]:
    """The attempt's endpoint key (``None``: no endpoint) and, when the endpoint may leave its identity
    out of its trailers because this workload heard it lately, the identity entry to send instead
    (Istio's metadata exchange with the answer left out; see :class:`~libmesh.telemetry.exchange.PeerExchange`)."""
    endpoint = step.endpoint
    if endpoint is None:
        return None, None
    key = endpoint.key
    return key, mesh.peer_exchange.request_value(key)


def reads_answer(mesh: Mesh, key: str | None, ask: str | None) -> bool:
    """Whether an attempt to endpoint ``key`` sent with ``ask`` (see :func:`asking`) needs its trailing
    metadata read to label it: not when the endpoint was asked to leave its identity out, nor when it
    lately answered with none (it is outside the mesh)."""
    return ask is None and (key is None or not mesh.peer_exchange.silent(key))


def answered_peer(mesh: Mesh, key: str | None, trailing: Iterable[Any] | None, asked: bool) -> str | None:
    """The identity to label an attempt to endpoint ``key`` with, from its trailing metadata (``None``:
    not read, as a call that ``asked`` the endpoint to leave it out need not)."""
    answered = metadata_value(trailing, PEER_METADATA)
    if key is None:
        return answered
    return mesh.peer_exchange.resolve(key, answered, asked)


_NO_HEADERS: Final[Mapping[str, str]] = {}


def attempt_metadata(
    own: Sequence[tuple[str, str | bytes]] | None,
    edits: HeaderOps,
    trace: Mapping[str, str] | None,
) -> list[tuple[str, str | bytes]]:
    """The metadata of one attempt when the app sent its own or the route adds or removes entries: the
    app's own, with the route's edits, the propagated context and the client span's ``trace`` context."""
    sets = edits.set
    drop = set(edits.remove) | set(sets)
    if trace:
        drop |= set(trace)
    out: list[tuple[str, str | bytes]] = [(k, v) for k, v in own or () if k.lower() not in drop]
    out.extend((k, v) for k, v in sets.items() if k not in _RESERVED and not (trace and k in trace))
    # An added value becomes one more entry: gRPC metadata keeps repeated entries, which the far side joins.
    out.extend((k, v) for k, v in edits.add.items() if k not in _RESERVED)
    if trace:
        out.extend(trace.items())
    return out


# Names gRPC owns or rejects as metadata; a route edit naming them cannot apply to a gRPC call.
_RESERVED: Final = frozenset({"host", "content-type", "te", "grpc-timeout", "grpc-encoding", "user-agent"})


def attempt_timeout(step_timeout: float | None, caller_deadline: float | None, now: float) -> float | None:
    """The attempt's deadline in seconds: the plan's (route timeout, per-try timeout, inbound deadline)
    capped by the caller's own."""
    if caller_deadline is None:
        return step_timeout
    left = max(0.0, caller_deadline - now)
    return left if step_timeout is None or left < step_timeout else step_timeout


def error_outcome(code: int, details: str | None, timeout: float | None, elapsed: float) -> Outcome:
    """Classify an attempt that ended with gRPC status ``code``: the attempt's own deadline passing is a
    timeout (Envoy's per-try or route timeout), a connection that could not be made a connect failure,
    anything else the status the server sent."""
    if code == DEADLINE_EXCEEDED and timeout is not None and elapsed >= timeout - _DEADLINE_SLACK:
        return _TIMED_OUT
    if code == UNAVAILABLE and details and "failed to connect" in details.lower():
        return _CONNECT_FAILED
    return _OUTCOMES.get(code) or Outcome(status=200, grpc_status=code)


def reply_code(step: Reply) -> int:
    """The gRPC status of a response the mesh makes itself: the fault's ``grpcStatus``, DEADLINE_EXCEEDED
    for a timeout (the route timeout is the call's deadline, as in proxyless gRPC), else the HTTP status as
    Envoy maps it (503 -> UNAVAILABLE, 404 -> UNIMPLEMENTED...)."""
    if step.grpc_status is not None:
        return step.grpc_status
    if step.status == 504 and "UT" in step.flags.split(","):
        return DEADLINE_EXCEEDED
    code = http_to_grpc(step.status)
    return UNKNOWN if code == OK else code


def reply_details(step: Reply, code: int) -> str:
    """The status message of a local reply: Envoy's body text, else the status name."""
    if step.body:
        return step.body.decode("utf-8", "replace")
    return GRPC_CODE_NAMES.get(code, "UNKNOWN")


def metadata_value(metadata: Iterable[Any] | None, name: str) -> str | None:
    """The first text value of ``name`` in received metadata (``None`` if absent)."""
    if not metadata:
        return None
    for item in metadata:
        key, value = item[0], item[1]
        if key == name:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def fault_marked(metadata: Iterable[Any] | None) -> bool:
    """Whether trailing metadata says the status is a fault injected further down the chain."""
    return metadata_value(metadata, FAULT_HEADER) is not None


def finish(
    plan: CallPlan,
    span: MeshSpan | None,
    code: int,
    *,
    request_messages: int,
    response_messages: int,
    request_bytes: int,
    response_bytes: int,
    peer: str | None = None,
    injected: bool = False,
) -> None:
    """Record a finished call once: metrics (``grpc_response_status``, message counts), access log, span."""
    plan.call.extensions["grpc"] = (code, request_messages, response_messages)
    timed_out = code == DEADLINE_EXCEEDED and plan.deadline is not None and plan.mesh.clock() >= plan.deadline
    if timed_out and "UT" not in plan.response_flags.split(","):
        # The route timeout (the call's deadline) ended a delivered stream: Envoy's UT.
        plan.flag(Flag.UPSTREAM_REQUEST_TIMEOUT)
    if code != OK and (injected or "FI" in plan.response_flags.split(",")):
        note_injected_fault()
    plan.done(200, request_bytes=request_bytes, response_bytes=response_bytes, peer=peer)
    if span is not None:
        span.set_attribute("rpc.grpc.status_code", code)
        span.finish(200, response_flags=plan.response_flags, error=None if code == OK else _name(code))


def _name(code: int) -> str:
    return GRPC_CODE_NAMES.get(code, str(code))


def edit_metadata(metadata: Sequence[tuple[str, Any]] | None, ops: HeaderOps) -> tuple[tuple[str, Any], ...]:
    """Received initial metadata with the route's response header edits applied."""
    drop = set(ops.remove) | set(ops.set)
    out = [(k, v) for k, v in metadata or () if k not in drop]
    out.extend(ops.set.items())
    out.extend(ops.add.items())
    return tuple(out)


class MeshRpcError(grpc.RpcError, grpc.Call):
    """The error a sync mesh channel raises for a response the mesh made itself (fault abort, overflow, no
    healthy upstream, timeout...). Like grpc's own errors it is a :class:`grpc.Call`: ``code()``,
    ``details()``, and ``trailing_metadata()`` with ``x-libmesh-response-flags``."""

    def __init__(self, code: int, details: str, flags: str) -> None:
        super().__init__(f"{_name(code)}: {details}")
        self._code = STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN)
        self._details = details
        self._trailing = ((FLAGS_METADATA, flags),)

    def code(self) -> grpc.StatusCode:
        """The call's status."""
        return self._code

    def details(self) -> str:
        """Why: Envoy's text for the local reply."""
        return self._details

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        """None was received."""
        return ()

    def trailing_metadata(self) -> Any:
        """The response flags."""
        return self._trailing

    def is_active(self) -> bool:
        """Never: the call is over."""
        return False

    def time_remaining(self) -> float | None:  # type: ignore[override]
        """No deadline applies any more."""
        return None

    def cancel(self) -> bool:
        """Nothing to cancel."""
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """The call is over; the callback is not added."""
        return False

    def __str__(self) -> str:
        return f"<MeshRpcError {self._code.name}: {self._details} (flags {self._trailing[0][1]})>"


def unary_call(
    mesh: Mesh,
    pool: ChannelPool[Any],
    info: MethodInfo,
    registered: bool,
    mirror: Callable[[Send, str, bytes, Any, bool], None],
    data: bytes,
    timeout: float | None,
    metadata: Sequence[tuple[str, str | bytes]] | None,
    credentials: Any,
    wait_for_ready: bool | None,
    compression: Any,
    want_call: bool,
) -> tuple[bytes, Any, HeaderOps | None]:
    """One sync unary call of ``info``'s method through the mesh, the request serialised as ``data``:
    (the response's bytes, grpc's call object or ``None`` when ``want_call`` is false and none was made,
    the route's response header edits or ``None``). Raises grpc's error for a failed upstream status, and
    :class:`MeshRpcError` for a response the mesh made itself. ``mirror(step, method, data, metadata,
    registered)`` sends a step's mirrors.

    The plan is stepped here rather than by ``engine.drive``: the same loop, compiled, without three
    closures and a generic call per step, which a unary call (the common case) pays on every call."""
    clock = mesh.clock
    deadline = None if timeout is None else clock() + timeout
    plan, span = info.start(mesh, metadata, True, deadline)
    method = info.path
    last: Any = None
    peer: str | None = None
    try:
        step = plan.first()
        while True:
            if isinstance(step, Send):
                last = None
                outcome: Outcome = ENDED_OK
                injected = False
                conn = pool.acquire(step)
                try:
                    mc = conn.callable("unary_unary", method, registered)
                    key, ask = asking(mesh, step)
                    md = info.metadata(metadata, step.headers, span, mesh, ask)
                    if step.mirrors:
                        mirror(step, method, data, md, registered)
                    started = clock()
                    t = attempt_timeout(step.timeout, deadline, started)
                    try:
                        # A plain call makes no grpc call object to read trailers from (about 10 us of
                        # interpreted code and a lock); it is enough when the trailers hold no identity to
                        # learn (see reads_answer).
                        if want_call or reads_answer(mesh, key, ask):
                            last = mc.with_call(data, t, md, credentials, wait_for_ready, compression)
                            peer = answered_peer(mesh, key, last[1].trailing_metadata(), ask is not None)
                        else:
                            last = (mc(data, t, md, credentials, wait_for_ready, compression), None)
                            peer = None if ask is None else answered_peer(mesh, key, None, True)
                    except grpc.RpcError as e:
                        err: Any = e
                        last = e
                        elapsed = clock() - started
                        outcome = error_outcome(err.code().value[0], err.details(), t, elapsed)
                        trailing = err.trailing_metadata()
                        injected = fault_marked(trailing)
                        # A failure need not come from the endpoint (a refused connection): only an
                        # endpoint asked to leave its identity out is labelled with the one known.
                        if ask is None:
                            peer = metadata_value(trailing, PEER_METADATA)
                        else:
                            peer = answered_peer(mesh, key, trailing, True)
                finally:
                    pool.release(conn)
                step = plan.sent(outcome, fault_injected=injected)
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
                step = plan.resume()
            elif isinstance(step, Reply):
                code, details = local_reply(plan, span, step)
                raise MeshRpcError(code, details, step.flags)
            else:
                assert isinstance(step, Deliver)
                ops = step.response_headers
                break
    except CallerDeadlineExceeded:
        code, details = caller_gave_up(plan, span)
        raise MeshRpcError(code, details, plan.response_flags) from None
    except MeshRpcError:
        raise
    except BaseException:
        plan.abandon()
        raise
    if isinstance(last, grpc.RpcError):
        failed: Any = last
        finish(
            plan,
            span,
            failed.code().value[0],
            request_messages=1,
            response_messages=0,
            request_bytes=len(data),
            response_bytes=0,
            peer=peer,
            injected=fault_marked(failed.trailing_metadata()),
        )
        raise failed
    response: bytes = last[0]
    finish(
        plan,
        span,
        OK,
        request_messages=1,
        response_messages=1,
        request_bytes=len(data),
        response_bytes=len(response),
        peer=peer,
    )
    return response, last[1], ops or None


def caller_gave_up(plan: CallPlan, span: MeshSpan | None) -> tuple[int, str]:
    """The caller's own deadline passed while the mesh was still waiting (an injected delay, a back-off):
    record the call as Envoy records a client that went away (``DC``) and give the DEADLINE_EXCEEDED the
    caller's gRPC library would have raised."""
    plan.abandon()
    if span is not None:
        span.finish(None, response_flags=plan.response_flags, error="DEADLINE_EXCEEDED")
    return DEADLINE_EXCEEDED, "Deadline Exceeded"


def local_reply(
    plan: CallPlan, span: MeshSpan | None, step: Reply, request_bytes: int = 0
) -> tuple[int, str]:
    """Record a local reply and return its (gRPC code, details)."""
    code = reply_code(step)
    finish(
        plan,
        span,
        code,
        request_messages=0,
        response_messages=0,
        request_bytes=request_bytes,
        response_bytes=0,
    )
    return code, reply_details(step, code)


# --- the server side ------------------------------------------------------------------------------------

# Statuses that mean the server failed (OpenTelemetry's rule for gRPC server spans).
_SERVER_ERRORS: Final = frozenset({2, 4, 12, 13, 14, 15})


def client_address(peer: str | None) -> str | None:
    """The client's IP address in grpc's peer string (``ipv4:127.0.0.1:5050``, ``ipv6:[::1]:5050``)."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")]
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return None


def message_size(message: Any) -> int:
    """A message's serialized size: a raw-bytes message's length (a method served without serializers), a
    protobuf message's ``ByteSize()`` (known without serializing again); 0 for a message of another kind,
    whose size the interceptor cannot know."""
    if isinstance(message, bytes):
        return len(message)
    # hasattr, not getattr with a default: in a compiled build the latter makes and drops an AttributeError
    # (its message formatted) for every message without the attribute.
    if hasattr(message, "ByteSize"):
        size: int = message.ByteSize()
        return size
    if isinstance(message, bytearray):
        return len(message)
    return message.nbytes if isinstance(message, memoryview) else 0


class ServerSide:
    """What the server interceptors (sync and asyncio) do around every call they serve: start it (the
    request's context activated for the servicer, its span) and end it (recorded once). Compiled, as the
    interceptors, which subclass grpc's classes, cannot be."""

    __slots__ = ("_last_peer", "mesh", "peer", "trailers")

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        identity = mesh.peer_header
        #: The identity entry the servicer context adds to trailers the servicer sets itself.
        self.peer: tuple[str, str] | None = (PEER_METADATA, identity) if identity else None
        #: The trailing metadata set up front on every call.
        self.trailers: tuple[tuple[str, str], ...] | None = ((PEER_METADATA, identity),) if identity else None
        # The last peer address grpc reported and the client address read from it: a connection makes many
        # calls, and they all come from the same address.
        self._last_peer: tuple[str | None, str | None] = (None, None)

    def begin(self, context: Any, method: str, span_name: str) -> Inbound:
        """Start serving ``method`` on grpc's servicer ``context``."""
        # The call's deadline, which gRPC keeps out of the metadata, is read when the app's context is built.
        headers = metadata_dict(context.invocation_metadata())
        peer = context.peer()
        last = self._last_peer
        if last[0] == peer:
            client = last[1]
        else:
            client = client_address(peer)
            self._last_peer = (peer, client)
        mesh = self.mesh
        return Inbound.begin(
            mesh,
            headers,
            method="POST",
            path=method,
            scheme="http",
            authority=mesh.local_service_host(),
            client=client,
            span_name=span_name,
            time_remaining=context.time_remaining,
        )

    def answer(self, inbound: Inbound) -> tuple[str, str] | None:
        """The identity entry to put in ``inbound``'s trailing metadata, or ``None`` when this workload has
        none or the caller said it knows it (see :class:`~libmesh.telemetry.exchange.PeerExchange`)."""
        peer = self.peer
        if peer is None or not self.mesh.peer_exchange.answers(inbound.headers.get(PEER_METADATA)):
            return None
        return peer

    def end(self, inbound: Inbound, ctx: Any, error: BaseException | None) -> None:
        """Finish the call ``begin`` started: ``ctx`` is the servicer context the servicer saw (it noted the
        status and counted the messages), ``error`` what the servicer raised, if anything."""
        code = ctx.code_set
        if code is None:
            code = OK if error is None else UNKNOWN
        span_error: BaseException | str | None = None
        if code != OK:
            ctx._mark_fault(code)
            if code in _SERVER_ERRORS:
                span_error = GRPC_CODE_NAMES.get(code, str(code))
        inbound.status = 200
        inbound.request_bytes = ctx.received_bytes
        inbound.response_bytes = ctx.sent_bytes
        inbound.end(
            span_error,
            grpc_status=code,
            request_messages=ctx.received,
            response_messages=ctx.sent,
        )


class UnaryBehavior:
    """The behaviour grpc's sync server calls for a method with one response: the servicer's, served
    inside the mesh. ``make_context`` wraps grpc's servicer context (noting the status, counting messages);
    ``count`` wraps a request stream so its messages are counted."""

    __slots__ = ("_count", "_inner", "_make_context", "_method", "_side", "_span_name", "_streaming")

    def __init__(
        self,
        side: ServerSide,
        inner: Callable[[Any, Any], Any],
        method: str,
        streaming: bool,
        make_context: Callable[[Any, Inbound, tuple[str, str] | None], Any],
        count: Callable[[Any, Any], Any],
    ) -> None:
        self._side = side
        self._inner = inner
        self._method = method
        self._span_name = method[1:]
        self._streaming = streaming
        self._make_context = make_context
        self._count = count

    def __call__(self, request: Any, context: Any) -> Any:
        side = self._side
        inbound = side.begin(context, self._method, self._span_name)
        peer = side.answer(inbound)
        ctx = self._make_context(context, inbound, peer)
        if peer is not None:
            context.set_trailing_metadata(side.trailers)
        if self._streaming:
            request = self._count(request, ctx)
        else:
            ctx.received = 1
            ctx.received_bytes = message_size(request)
        try:
            response = self._inner(request, ctx)
        except BaseException as e:
            side.end(inbound, ctx, e)
            raise
        code = ctx.code_set
        if code is None or code == OK:
            ctx.sent = 1
            ctx.sent_bytes = message_size(response)
        side.end(inbound, ctx, None)
        return response
