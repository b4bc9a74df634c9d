"""The sync mesh channel: a :class:`grpc.Channel` whose calls go through the mesh (see ``adapters/grpc.py``)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc

from libmesh.errors import CallerDeadlineExceeded
from libmesh.mesh import Mesh
from libmesh.policy.engine import CallPlan, Deliver, Reply, Send, Sleep, drive
from libmesh.policy.grpc_codes import CANCELLED, OK, UNKNOWN
from libmesh.policy.outcome import Outcome

from . import _grpc_common as common
from ._grpc_common import (
    ENDED_OK,
    HEADERS_OK,
    PEER_METADATA,
    STATUS_BY_CODE,
    ChannelPool,
    Conn,
    MeshRpcError,
    Target,
)

if TYPE_CHECKING:
    from libmesh.telemetry.tracing import MeshSpan

# grpc's classes are generic only in their type stubs.
if TYPE_CHECKING:
    _FutureBase = grpc.Future[Any]
    _StreamStreamMultiCallableBase = grpc.StreamStreamMultiCallable[Any, Any]
    _StreamUnaryMultiCallableBase = grpc.StreamUnaryMultiCallable[Any, Any]
    _UnaryStreamMultiCallableBase = grpc.UnaryStreamMultiCallable[Any, Any]
    _UnaryUnaryMultiCallableBase = grpc.UnaryUnaryMultiCallable[Any, Any]
else:
    _FutureBase = grpc.Future
    _StreamStreamMultiCallableBase = grpc.StreamStreamMultiCallable
    _StreamUnaryMultiCallableBase = grpc.StreamUnaryMultiCallable
    _UnaryStreamMultiCallableBase = grpc.UnaryStreamMultiCallable
    _UnaryUnaryMultiCallableBase = grpc.UnaryUnaryMultiCallable

__all__ = ["MeshChannel"]

Metadata = Sequence[tuple[str, str | bytes]] | None
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None
_NOTHING: Any = object()


def _identity(data: Any) -> Any:
    return data


class _Options:
    """The per-call options of grpc's multicallables, passed through to every attempt."""

    __slots__ = ("compression", "credentials", "deadline", "metadata", "wait_for_ready")

    def __init__(
        self,
        metadata: Metadata,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
        deadline: float | None,
    ) -> None:
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression
        self.deadline = deadline


class _Method:
    """What every call of one method shares: the channel, the path and the (de)serializers."""

    def __init__(
        self,
        channel: MeshChannel,
        method: str,
        serializer: Serializer,
        deserializer: Deserializer,
        registered: bool,
    ) -> None:
        self._info = common.MethodInfo(channel._target, method)
        self._channel = channel
        self._method = method
        self._ser: Callable[[Any], bytes] = serializer or _identity
        self._deser: Callable[[bytes], Any] = deserializer or _identity
        self._registered = registered

    def _begin(
        self,
        metadata: Metadata,
        timeout: float | None,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
        replayable: bool,
    ) -> tuple[CallPlan, MeshSpan | None, _Options]:
        mesh = self._channel.mesh
        deadline = None if timeout is None else mesh.clock() + timeout
        plan, span = self._info.start(mesh, metadata, replayable, deadline)
        return plan, span, _Options(metadata, credentials, wait_for_ready, compression, deadline)


class _UnaryUnary(_Method, _UnaryUnaryMultiCallableBase):
    """A unary-unary method through the mesh."""

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression, False)[0]

    def with_call(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> tuple[Any, grpc.Call]:
        response, call = self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)
        assert call is not None  # asked for
        return response, call

    def future(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return self._channel._submit(
            lambda: self.with_call(request, timeout, metadata, credentials, wait_for_ready, compression)
        )

    def _invoke(
        self,
        request: Any,
        timeout: float | None,
        metadata: Metadata,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
        want_call: bool = True,
    ) -> tuple[Any, grpc.Call | None]:
        """One unary call through the mesh: (response, grpc's call object, or ``None`` when ``want_call`` is
        false and the call was made without one)."""
        channel = self._channel
        response, rcall, ops = common.unary_call(
            channel.mesh,
            channel._pool,
            self._info,
            self._registered,
            channel._mirror,
            self._ser(request),
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
            want_call,
        )
        if ops is not None and rcall is not None:
            rcall = _EditedCall(rcall, ops)
        return self._deser(response), rcall


def _discard(result: Any) -> None:
    return None


def _injected(result: Any) -> bool:
    if isinstance(result, grpc.RpcError):
        err: Any = result
        return common.fault_marked(err.trailing_metadata())
    return False


class _EditedCall(grpc.Call):
    """A finished call whose initial metadata shows the route's response header edits."""

    def __init__(self, inner: Any, ops: Any) -> None:
        self._inner = inner
        self._ops = ops

    def initial_metadata(self) -> Any:
        return common.edit_metadata(self._inner.initial_metadata(), self._ops)

    def trailing_metadata(self) -> Any:
        return self._inner.trailing_metadata()

    def code(self) -> grpc.StatusCode:
        return self._inner.code()  # type: ignore[no-any-return]

    def details(self) -> str:
        return self._inner.details()  # type: ignore[no-any-return]

    def is_active(self) -> bool:
        return self._inner.is_active()  # type: ignore[no-any-return]

    def time_remaining(self) -> float | None:  # type: ignore[override]
        return self._inner.time_remaining()  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        return self._inner.cancel()  # type: ignore[no-any-return]

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return self._inner.add_callback(callback)  # type: ignore[no-any-return]


class _StreamUnary(_Method, _StreamUnaryMultiCallableBase):
    """A client-streaming method through the mesh. A request stream given as a list or tuple can be
    replayed, so the call may be retried; any other iterator is sent once and never retried."""

    def __call__(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return self._invoke(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)[0]

    def with_call(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> tuple[Any, grpc.Call]:
        return self._invoke(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)

    def future(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return self._channel._submit(
            lambda: self._invoke(
                request_iterator, timeout, metadata, credentials, wait_for_ready, compression
            )
        )

    def _invoke(
        self,
        requests: Iterable[Any],
        timeout: float | None,
        metadata: Metadata,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> tuple[Any, grpc.Call]:
        replayable = isinstance(requests, list | tuple)
        plan, span, opts = self._begin(
            metadata, timeout, credentials, wait_for_ready, compression, replayable
        )
        channel = self._channel
        pool = channel._pool
        mesh = channel.mesh
        clock = mesh.clock
        method, registered, ser = self._method, self._registered, self._ser
        sent = _Counter()

        def send(step: Send) -> tuple[Outcome, Any]:
            conn = pool.acquire(step)
            try:
                mc = conn.callable("stream_unary", method, registered)
                md = self._info.metadata(opts.metadata, step.headers, span, mesh)
                started = clock()
                t = common.attempt_timeout(step.timeout, opts.deadline, started)
                sent.reset()
                try:
                    response, rcall = mc.with_call(
                        sent.wrap(requests, ser),
                        timeout=t,
                        metadata=md,
                        credentials=opts.credentials,
                        wait_for_ready=opts.wait_for_ready,
                        compression=opts.compression,
                    )
                except grpc.RpcError as e:
                    err: Any = e
                    outcome = common.error_outcome(err.code().value[0], err.details(), t, clock() - started)
                    return outcome, e
                return ENDED_OK, (response, rcall)
            finally:
                pool.release(conn)

        def deliver(result: Any, step: Deliver) -> Any:
            if isinstance(result, grpc.RpcError):
                err: Any = result
                trailing = err.trailing_metadata()
                common.finish(
                    plan,
                    span,
                    err.code().value[0],
                    request_messages=sent.messages,
                    response_messages=0,
                    request_bytes=sent.bytes,
                    response_bytes=0,
                    peer=common.metadata_value(trailing, PEER_METADATA),
                    injected=common.fault_marked(trailing),
                )
                return result
            response, rcall = result
            common.finish(
                plan,
                span,
                OK,
                request_messages=sent.messages,
                response_messages=1,
                request_bytes=sent.bytes,
                response_bytes=len(response),
                peer=common.metadata_value(rcall.trailing_metadata(), PEER_METADATA),
            )
            if step.response_headers:
                rcall = _EditedCall(rcall, step.response_headers)
            return self._deser(response), rcall

        def reply(step: Reply) -> Any:
            code, details = common.local_reply(plan, span, step)
            return MeshRpcError(code, details, step.flags)

        result = drive(plan, send=send, reply=reply, deliver=deliver, discard=_discard, injected=_injected)
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]


class _Counter:
    """Request messages and bytes an attempt sent (the last attempt's, when retried)."""

    __slots__ = ("bytes", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def reset(self) -> None:
        self.messages = 0
        self.bytes = 0

    def wrap(self, requests: Iterable[Any], ser: Callable[[Any], bytes]) -> Iterator[bytes]:
        for message in requests:
            data = ser(message)
            self.messages += 1
            self.bytes += len(data)
            yield data


class _UnaryStream(_Method, _UnaryStreamMultiCallableBase):
    """A server-streaming method through the mesh."""

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        plan, span, opts = self._begin(metadata, timeout, credentials, wait_for_ready, compression, True)
        return _ResponseStream(self, "unary_stream", plan, span, opts, self._ser(request), None)


class _StreamStream(_Method, _StreamStreamMultiCallableBase):
    """A bidirectional-streaming method through the mesh (retried only when the requests are a list or
    tuple and no response message has arrived yet)."""

    def __call__(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        replayable = isinstance(request_iterator, list | tuple)
        plan, span, opts = self._begin(
            metadata, timeout, credentials, wait_for_ready, compression, replayable
        )
        return _ResponseStream(self, "stream_stream", plan, span, opts, None, request_iterator)


class _ResponseStream(grpc.Call):
    """The response stream of a server- or bidi-streaming call: an iterator of messages and a
    :class:`grpc.Call`.

    The attempt starts at once; whether it succeeded is decided by its first response message (or its end),
    which is when a failed attempt can still be retried, as Envoy retries only before response headers.
    After that the stream is the call's, and its final status is recorded when it ends.
    """

    def __init__(
        self,
        owner: _Method,
        kind: str,
        plan: CallPlan,
        span: MeshSpan | None,
        opts: _Options,
        request: bytes | None,
        requests: Iterable[Any] | None,
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._plan = plan
        self._span = span
        self._opts = opts
        self._request = request
        self._requests = requests
        self._sent = _Counter()
        self._lock = threading.RLock()
        self._rendezvous: Any = None
        self._conn: Conn[grpc.Channel] | None = None
        self._started = 0.0
        self._timeout: float | None = None
        self._first: Any = _NOTHING
        self._ended = False  # the delivered attempt already ended with OK
        self._local: MeshRpcError | None = None
        self._error: BaseException | None = None
        self._state = 0  # 0: attempt running, unresolved; 1: delivering; 2: over
        self._received = 0
        self._received_bytes = 0
        self._ops: Any = None
        self._cancelled = False
        self._guard(lambda: self._advance(plan.first()))

    # --- driving the plan ---------------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except CallerDeadlineExceeded:
            if self._conn is not None:
                self._owner._channel._pool.release(self._conn)
                self._conn = None
            code, details = common.caller_gave_up(self._plan, self._span)
            self._local = MeshRpcError(code, details, self._plan.response_flags)
            self._error = self._local
            self._state = 2
        except BaseException:
            self._abandon()
            raise

    def _advance(self, step: Any) -> None:
        plan = self._plan
        while True:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                step = plan.resume()
            elif isinstance(step, Send):
                self._start(step)
                return
            elif isinstance(step, Reply):
                code, details = common.local_reply(plan, self._span, step)
                self._local = MeshRpcError(code, details, step.flags)
                self._error = self._local
                self._state = 2
                return
            else:
                assert isinstance(step, Deliver)
                self._ops = step.response_headers or None
                self._state = 1
                if self._rendezvous is None or self._error is not None or self._ended:
                    self._end_attempt_now()
                return

    def _start(self, step: Send) -> None:
        owner = self._owner
        channel = owner._channel
        conn = channel._pool.acquire(step)
        self._conn = conn
        mc = conn.callable(self._kind, owner._method, owner._registered)
        opts = self._opts
        md = owner._info.metadata(opts.metadata, step.headers, self._span, channel.mesh)
        self._started = channel.mesh.clock()
        self._timeout = common.attempt_timeout(step.timeout, opts.deadline, self._started)
        if self._requests is not None:
            self._sent.reset()
            request: Any = self._sent.wrap(self._requests, owner._ser)
        else:
            request = self._request
            self._sent.messages, self._sent.bytes = 1, len(self._request or b"")
        self._first, self._ended, self._error = _NOTHING, False, None
        self._rendezvous = mc(
            request,
            timeout=self._timeout,
            metadata=md,
            credentials=opts.credentials,
            wait_for_ready=opts.wait_for_ready,
            compression=opts.compression,
        )

    def _resolve(self) -> None:
        """Wait for the running attempt's first message or end, and let the plan judge it."""
        with self._lock:
            while self._state == 0:
                self._guard(self._resolve_once)

    def _resolve_once(self) -> None:
        plan = self._plan
        outcome: Outcome
        try:
            self._first = next(self._rendezvous)
            outcome = HEADERS_OK
        except StopIteration:
            self._ended = True
            outcome = ENDED_OK
        except grpc.RpcError as e:
            err: Any = e
            self._error = e
            elapsed = plan.mesh.clock() - self._started
            outcome = common.error_outcome(err.code().value[0], err.details(), self._timeout, elapsed)
        finally:
            if self._conn is not None:
                self._owner._channel._pool.release(self._conn)
                self._conn = None
        if self._cancelled:
            self._error = self._error or _cancelled_error()
            self._first = _NOTHING
            self._abandon()
            return
        injected = self._error is not None and _injected(self._error)
        self._advance(plan.sent(outcome, fault_injected=injected))

    def _end_attempt_now(self) -> None:
        if self._error is not None and isinstance(self._error, grpc.RpcError):
            err: Any = self._error
            self._record(err.code().value[0], err.trailing_metadata())
        else:
            self._record(OK, self._rendezvous.trailing_metadata() if self._rendezvous is not None else None)
        self._state = 2

    def _record(self, code: int, trailing: Any) -> None:
        common.finish(
            self._plan,
            self._span,
            code,
            request_messages=self._sent.messages,
            response_messages=self._received,
            request_bytes=self._sent.bytes,
            response_bytes=self._received_bytes,
            peer=common.metadata_value(trailing, PEER_METADATA),
            injected=common.fault_marked(trailing),
        )

    def _abandon(self) -> None:
        if self._conn is not None:
            self._owner._channel._pool.release(self._conn)
            self._conn = None
        if self._state != 2:
            self._state = 2
            self._plan.abandon()

    # --- the iterator -------------------------------------------------------------------------------------

    def __iter__(self) -> _ResponseStream:
        return self

    def __next__(self) -> Any:
        if self._state == 0:
            self._resolve()
        if self._state == 2:
            if self._error is not None and self._first is _NOTHING:
                raise self._error
            if self._first is _NOTHING:
                raise StopIteration
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            self._received += 1
            self._received_bytes += len(first)
            return self._owner._deser(first)
        try:
            data = next(self._rendezvous)
        except StopIteration:
            self._record(OK, self._rendezvous.trailing_metadata())
            self._state = 2
            raise
        except grpc.RpcError as e:
            err: Any = e
            self._error = e
            self._record(err.code().value[0], err.trailing_metadata())
            self._state = 2
            raise
        self._received += 1
        self._received_bytes += len(data)
        return self._owner._deser(data)

    def __del__(self) -> None:
        # A stream dropped before its end gives back what it holds.
        if getattr(self, "_state", 2) != 2:
            try:
                if self._rendezvous is not None:
                    self._rendezvous.cancel()
                self._abandon()
            except Exception:
                return

    # --- grpc.Call ----------------------------------------------------------------------------------------

    def initial_metadata(self) -> Any:
        self._resolve()
        if self._local is not None:
            return ()
        md = self._rendezvous.initial_metadata()
        return common.edit_metadata(md, self._ops) if self._ops else md

    def trailing_metadata(self) -> Any:
        self._resolve()
        if self._local is not None:
            return self._local.trailing_metadata()
        return self._rendezvous.trailing_metadata()

    def code(self) -> grpc.StatusCode:
        self._resolve()
        if self._local is not None:
            return self._local.code()
        return self._rendezvous.code()  # type: ignore[no-any-return]

    def details(self) -> str:
        self._resolve()
        if self._local is not None:
            return self._local.details()
        return self._rendezvous.details()  # type: ignore[no-any-return]

    def is_active(self) -> bool:
        if self._state == 2 and self._local is not None:
            return False
        return self._rendezvous is not None and bool(self._rendezvous.is_active())

    def time_remaining(self) -> float | None:  # type: ignore[override]
        deadline = self._opts.deadline
        plan_deadline = self._plan.deadline
        if plan_deadline is not None and (deadline is None or plan_deadline < deadline):
            deadline = plan_deadline
        return None if deadline is None else max(0.0, deadline - self._plan.mesh.clock())

    def cancel(self) -> bool:
        """Cancel the call. Cancelled before its first response message, it is never retried and is
        recorded as Envoy records a downstream reset (code 0, flag ``DC``); later, with status CANCELLED."""
        if self._state == 2:
            return False
        self._cancelled = True
        if self._rendezvous is not None:
            self._rendezvous.cancel()
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self._rendezvous is None:
            return False
        return bool(self._rendezvous.add_callback(callback))


def _cancelled_error() -> MeshRpcError:
    return MeshRpcError(CANCELLED, "Locally cancelled by application!", "-")


class _FutureCall(_FutureBase, grpc.Call):
    """The result of ``future()``: the call runs on the channel's worker threads, in the caller's context."""

    def __init__(self, future: Future[tuple[Any, grpc.Call]]) -> None:
        self._future = future

    def cancel(self) -> bool:
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def running(self) -> bool:
        return self._future.running()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout)[0]

    def exception(self, timeout: float | None = None) -> Exception | None:
        error = self._future.exception(timeout)
        return error if isinstance(error, Exception) or error is None else Exception(error)

    def traceback(self, timeout: float | None = None) -> Any:
        error = self._future.exception(timeout)
        return None if error is None else error.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def _call(self) -> Any:
        error = self._future.exception()
        return error if error is not None else self._future.result()[1]

    def initial_metadata(self) -> Any:
        return self._call().initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call().trailing_metadata()

    def code(self) -> grpc.StatusCode:
        call = self._call()
        code: grpc.StatusCode = call.code() if hasattr(call, "code") else STATUS_BY_CODE[UNKNOWN]
        return code

    def details(self) -> str:
        return self._call().details()  # type: ignore[no-any-return]

    def is_active(self) -> bool:
        return not self._future.done()

    def time_remaining(self) -> float | None:  # type: ignore[override]
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._future.add_done_callback(lambda _: callback())
        return True


class MeshChannel(grpc.Channel):
    """A :class:`grpc.Channel` to a logical service whose every call goes through the mesh; make it with
    :func:`libmesh.adapters.grpc.channel`.

    ``options`` and ``credentials`` apply to each per-endpoint channel (``grpc.insecure_channel`` without
    credentials, ``grpc.secure_channel`` with them).
    """

    def __init__(
        self,
        mesh: Mesh,
        target: str,
        *,
        options: Sequence[tuple[str, Any]] = (),
        credentials: grpc.ChannelCredentials | None = None,
        compression: grpc.Compression | None = None,
    ) -> None:
        self.mesh = mesh
        self._target = Target(target)
        self._options = tuple(options)
        self._credentials = credentials
        self._compression = compression
        self._pool: ChannelPool[grpc.Channel] = ChannelPool(self._make, _close, mesh.clock)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._subscribers: list[Callable[[grpc.ChannelConnectivity], None]] = []
        self._mirrors: set[Any] = set()

    @property
    def target(self) -> str:
        """The logical service this channel calls (``host:port``)."""
        return self._target.authority

    def _make(self, address: str, authority: str) -> grpc.Channel:
        options = list(self._options)
        if authority != address and not any(k == "grpc.default_authority" for k, _ in options):
            options.append(("grpc.default_authority", authority))
        if self._credentials is not None:
            return grpc.secure_channel(address, self._credentials, options, self._compression)
        return grpc.insecure_channel(address, options, self._compression)

    def endpoints(self) -> list[tuple[str, int, str]]:
        """The (address, port, authority) of the per-endpoint channels open now."""
        return self._pool.addresses()

    def close_idle(self) -> int:
        """Close per-endpoint channels idle past their idle timeout now (this also happens as calls are
        made); returns how many were closed."""
        return self._pool.sweep()

    def _mirror(self, step: Send, method: str, data: bytes, md: Any, registered: bool) -> None:
        for m in step.mirrors:
            shadow = Send(m.host, m.port, m.authority, step.path, step.headers, step.timeout, None, 0)
            conn = self._pool.acquire(shadow)
            try:
                future = conn.callable("unary_unary", method, registered).future(
                    data, timeout=step.timeout, metadata=md
                )
            finally:
                self._pool.release(conn)
            self._mirrors.add(future)
            future.add_done_callback(self._mirrors.discard)

    def _submit(self, fn: Callable[[], tuple[Any, grpc.Call]]) -> _FutureCall:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="libmesh-grpc")
            executor = self._executor
        ctx = contextvars.copy_context()
        return _FutureCall(executor.submit(ctx.run, fn))

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> grpc.UnaryUnaryMultiCallable[Any, Any]:
        return _UnaryUnary(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> grpc.UnaryStreamMultiCallable[Any, Any]:
        return _UnaryStream(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def stream_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> grpc.StreamUnaryMultiCallable[Any, Any]:
        return _StreamUnary(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def stream_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> grpc.StreamStreamMultiCallable[Any, Any]:
        return _StreamStream(
            self, method, request_serializer, response_deserializer, bool(_registered_method)
        )

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """The mesh channel is always ready to route (endpoint channels connect on demand), so ``callback``
        is told READY at once."""
        self._subscribers.append(callback)
        callback(grpc.ChannelConnectivity.READY)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def close(self) -> None:
        """Close every per-endpoint channel and the worker threads of ``future()`` calls. Mirrored copies
        still on their way get up to a second to arrive first (closing a channel cancels what it carries)."""
        deadline = time.monotonic() + 1.0
        for future in list(self._mirrors):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(Exception):  # a mirror's result never matters
                future.exception(timeout=left)
        for channel in self._pool.close_all():
            channel.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def __enter__(self) -> MeshChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(channel: grpc.Channel) -> None:
    channel.close()
