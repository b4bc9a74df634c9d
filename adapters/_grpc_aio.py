"""The asyncio mesh channel: a :class:`grpc.aio.Channel` whose calls go through the mesh (see
``adapters/grpc.py``). It takes the same decisions as the sync channel, from the same plan; only waiting
differs."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from libmesh.errors import CallerDeadlineExceeded
from libmesh.mesh import Mesh
from libmesh.policy.engine import CallPlan, Deliver, Reply, Send, Sleep
from libmesh.policy.grpc_codes import OK
from libmesh.policy.outcome import Outcome

from . import _grpc_common as common
from ._grpc_common import (
    ENDED_OK,
    FLAGS_METADATA,
    HEADERS_OK,
    PEER_METADATA,
    STATUS_BY_CODE,
    ChannelPool,
    Conn,
    Target,
)

if TYPE_CHECKING:
    from libmesh.telemetry.tracing import MeshSpan

# grpc's classes are generic only in their type stubs.
if TYPE_CHECKING:
    _StreamStreamCallBase = grpc.aio.StreamStreamCall[Any, Any]
    _StreamStreamMultiCallableBase = grpc.aio.StreamStreamMultiCallable[Any, Any]
    _StreamUnaryCallBase = grpc.aio.StreamUnaryCall[Any, Any]
    _StreamUnaryMultiCallableBase = grpc.aio.StreamUnaryMultiCallable[Any, Any]
    _UnaryStreamCallBase = grpc.aio.UnaryStreamCall[Any, Any]
    _UnaryStreamMultiCallableBase = grpc.aio.UnaryStreamMultiCallable[Any, Any]
    _UnaryUnaryCallBase = grpc.aio.UnaryUnaryCall[Any, Any]
    _UnaryUnaryMultiCallableBase = grpc.aio.UnaryUnaryMultiCallable[Any, Any]
else:
    _StreamStreamCallBase = grpc.aio.StreamStreamCall
    _StreamStreamMultiCallableBase = grpc.aio.StreamStreamMultiCallable
    _StreamUnaryCallBase = grpc.aio.StreamUnaryCall
    _StreamUnaryMultiCallableBase = grpc.aio.StreamUnaryMultiCallable
    _UnaryStreamCallBase = grpc.aio.UnaryStreamCall
    _UnaryStreamMultiCallableBase = grpc.aio.UnaryStreamMultiCallable
    _UnaryUnaryCallBase = grpc.aio.UnaryUnaryCall
    _UnaryUnaryMultiCallableBase = grpc.aio.UnaryUnaryMultiCallable

__all__ = ["AioMeshChannel"]

Metadata = Any
_NOTHING: Any = object()
_EOF: Any = grpc.aio.EOF
# Call states.
_NEW, _RUNNING, _DELIVERING, _OVER = 0, 1, 2, 3


def _identity(data: Any) -> Any:
    return data


class _WireMetadata(grpc.aio.Metadata):
    """An attempt's metadata as grpc.aio takes it without converting it: grpc turns a tuple into a
    ``Metadata`` (an ordered dict of lists, entry by entry) and then back into a tuple, about 6 us of a
    loopback call. This one is built from the tuple and iterates it; any other use sees a full
    ``Metadata``, made on first need. Its entries must have distinct names: ``Metadata`` groups repeated
    names, and this one would send them in the order given."""

    def __init__(self, entries: tuple[tuple[str, str | bytes], ...]) -> None:
        # The base class's store is made only if something other than grpc's call reads it.
        self._entries: tuple[tuple[str, str | bytes], ...] | None = entries

    def __getattr__(self, name: str) -> Any:
        # Reached only while ``_metadata`` (the base class's store) has not been made.
        entries = self.__dict__.get("_entries")
        if name != "_metadata" or entries is None:
            raise AttributeError(name)
        store: OrderedDict[str, list[str | bytes]] = OrderedDict()
        for key, value in entries:
            store.setdefault(key, []).append(value)
        self.__dict__["_metadata"] = store
        self._entries = None
        return store

    def __iter__(self) -> Iterator[tuple[str, str | bytes]]:
        entries = self._entries
        return super().__iter__() if entries is None else iter(entries)

    def __len__(self) -> int:
        entries = self._entries
        return super().__len__() if entries is None else len(entries)


class _Method:
    """What every call of one method shares: the channel, the path, the (de)serializers and the kind."""

    kind = ""
    request_streaming = False
    response_streaming = False

    def __init__(
        self,
        channel: AioMeshChannel,
        method: str,
        serializer: Callable[[Any], bytes] | None,
        deserializer: Callable[[bytes], Any] | None,
        registered: bool,
    ) -> None:
        self.info = common.MethodInfo(channel._target, method)
        self.channel = channel
        self.method = method
        self.ser: Callable[[Any], bytes] = serializer or _identity
        self.deser: Callable[[bytes], Any] = deserializer or _identity
        self.registered = registered

    def __call__(
        self,
        request: Any = None,
        *,
        timeout: float | None = None,
        metadata: Metadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return _CALL_TYPES[self.kind](
            self, request, timeout, metadata, credentials, wait_for_ready, compression
        )


class _UnaryUnary(_Method, _UnaryUnaryMultiCallableBase):
    kind = "unary_unary"


class _UnaryStream(_Method, _UnaryStreamMultiCallableBase):
    kind = "unary_stream"
    response_streaming = True


class _StreamUnary(_Method, _StreamUnaryMultiCallableBase):  # type: ignore[misc]
    kind = "stream_unary"
    request_streaming = True


class _StreamStream(_Method, _StreamStreamMultiCallableBase):  # type: ignore[misc]
    kind = "stream_stream"
    request_streaming = True
    response_streaming = True


class _Counter:
    __slots__ = ("bytes", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0


async def _counted(
    requests: Iterable[Any] | AsyncIterable[Any], ser: Callable[[Any], bytes], n: _Counter
) -> AsyncIterator[bytes]:
    if isinstance(requests, AsyncIterable):
        async for message in requests:
            data = ser(message)
            n.messages += 1
            n.bytes += len(data)
            yield data
    else:
        for message in requests:
            data = ser(message)
            n.messages += 1
            n.bytes += len(data)
            yield data


class _AioCall:
    """One call through the mesh, for all four kinds: the plan is stepped with asyncio waits, exactly as
    :func:`~libmesh.policy.engine.drive_async` does, with two things only a gRPC call needs: the attempt is
    judged by its first response message (or its end), after which it is never retried, and requests may be
    written with ``write()`` while the call runs.

    The call starts when it is first awaited, read, iterated or written to.
    """

    def __init__(
        self,
        method: _Method,
        request: Any,
        timeout: float | None,
        metadata: Metadata,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> None:
        self._m = method
        channel = method.channel
        mesh = channel.mesh
        self._metadata = metadata
        self._credentials = credentials
        self._wait_for_ready = wait_for_ready
        self._compression = compression
        self._deadline = None if timeout is None else mesh.clock() + timeout
        if method.request_streaming:
            self._requests: Any = request
            self._request: bytes | None = None
            replayable = isinstance(request, list | tuple)
        else:
            self._requests = None
            self._request = method.ser(request)
            replayable = True
        self._plan: CallPlan
        self._span: MeshSpan | None
        self._plan, self._span = method.info.start(mesh, metadata, replayable, self._deadline)
        self._sent = _Counter()
        # Every other attribute starts at its class-level default below, set per call only when it changes.

    _state = _NEW
    _busy = False
    _wake: asyncio.Future[None] | None = None
    _inner: Any = None
    _conn: Conn[grpc.aio.Channel] | None = None
    _started = 0.0
    _timeout: float | None = None
    _first: Any = _NOTHING
    _response: Any = _NOTHING
    _error: BaseException | None = None
    _local: grpc.aio.AioRpcError | None = None
    _received = 0
    _received_bytes = 0
    _ops: Any = None
    _cancelled = False
    _callbacks: list[Callable[[Any], None]] | None = None
    _key: str | None = None
    _ask: str | None = None

    # --- stepping the plan -------------------------------------------------------------------------------

    async def _settle(self, state: int) -> None:
        """Advance the call until it reaches ``state`` (one stepper at a time; others wait for it)."""
        while self._state < state:
            if self._busy:
                if self._wake is None:
                    self._wake = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._wake)
                continue
            self._busy = True
            try:
                if self._state == _NEW:
                    await self._advance(self._plan.first())
                else:
                    await self._resolve()
            except CallerDeadlineExceeded:
                self._release()
                code, details = common.caller_gave_up(self._plan, self._span)
                flags = grpc.aio.Metadata((FLAGS_METADATA, self._plan.response_flags))
                self._local = grpc.aio.AioRpcError(
                    STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(), flags, details
                )
                self._error = self._local
                self._over()
            except BaseException:
                self._abandon()
                raise
            finally:
                self._busy = False
                wake, self._wake = self._wake, None
                if wake is not None and not wake.done():
                    wake.set_result(None)

    async def _advance(self, step: Any) -> None:
        plan = self._plan
        while True:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                step = plan.resume()
            elif isinstance(step, Send):
                self._start(step)
                self._state = _RUNNING
                return
            elif isinstance(step, Reply):
                code, details = common.local_reply(plan, self._span, step)
                trailing = grpc.aio.Metadata((FLAGS_METADATA, step.flags))
                self._local = grpc.aio.AioRpcError(
                    STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(), trailing, details
                )
                self._error = self._local
                self._over()
                return
            else:
                assert isinstance(step, Deliver)
                self._ops = step.response_headers or None
                if self._m.response_streaming and self._error is None and self._first is not _NOTHING:
                    self._state = _DELIVERING
                else:
                    await self._record_end()
                return

    def _start(self, step: Send) -> None:
        m = self._m
        channel = m.channel
        conn = channel._pool.acquire(step)
        self._conn = conn
        mc = conn.callable(m.kind, m.method, m.registered)
        key, ask = common.asking(channel.mesh, step)
        self._key, self._ask = key, ask
        md: Any = m.info.metadata(self._metadata, step.headers, self._span, channel.mesh, ask)
        if not self._metadata and not step.headers.add:
            # Distinct names (the route's edits and the trace context), so grpc's own grouping by name
            # would send them in this order too.
            md = _WireMetadata(md if isinstance(md, tuple) else tuple(md))
        if step.mirrors and m.kind == "unary_unary":
            channel._mirror(step, m.method, self._request, md, m.registered)
        self._started = channel.mesh.clock()
        self._timeout = common.attempt_timeout(step.timeout, self._deadline, self._started)
        if m.request_streaming:
            self._sent = _Counter()
            request: Any = None if self._requests is None else _counted(self._requests, m.ser, self._sent)
        else:
            request = self._request
            self._sent.messages, self._sent.bytes = 1, len(request or b"")
        self._first, self._response, self._error = _NOTHING, _NOTHING, None
        self._inner = mc(
            request,
            timeout=self._timeout,
            metadata=md,
            credentials=self._credentials,
            wait_for_ready=self._wait_for_ready,
            compression=self._compression,
        )

    async def _resolve(self) -> None:
        """Wait for the running attempt's first message (a unary call: its response) or its end."""
        plan = self._plan
        inner = self._inner
        outcome: Outcome
        try:
            if self._m.response_streaming:
                first = await inner.read()
                if first is _EOF:
                    outcome = ENDED_OK
                else:
                    self._first = first
                    outcome = HEADERS_OK
            else:
                self._response = await inner
                outcome = ENDED_OK
        except grpc.aio.AioRpcError as e:
            self._error = e
            elapsed = plan.mesh.clock() - self._started
            outcome = common.error_outcome(e.code().value[0], e.details(), self._timeout, elapsed)
        finally:
            self._release()
        if self._cancelled:
            raise asyncio.CancelledError
        injected = False
        if self._error is not None:
            injected = common.fault_marked(await inner.trailing_metadata())
        await self._advance(plan.sent(outcome, fault_injected=injected))

    def _release(self) -> None:
        if self._conn is not None:
            self._m.channel._pool.release(self._conn)
            self._conn = None

    async def _record_end(self) -> None:
        inner = self._inner
        code = OK
        trailing = None
        peer = None
        if inner is not None:
            ask = self._ask
            if self._error is not None:
                code = self._error.code().value[0]  # type: ignore[attr-defined]
            # An endpoint asked to leave its identity out is labelled with the one known, without grpc
            # building a Metadata of its trailers for us to read (see common.asking).
            mesh = self._m.channel.mesh
            reads = common.reads_answer(mesh, self._key, ask)
            if code != OK or reads:
                trailing = await inner.trailing_metadata()
            if ask is not None:
                peer = common.answered_peer(mesh, self._key, trailing, True)
            elif reads and code == OK:
                peer = common.answered_peer(mesh, self._key, trailing, False)
            else:
                # A failure need not come from the endpoint (a refused connection): it teaches nothing.
                peer = common.metadata_value(trailing, PEER_METADATA)
        if self._response is not _NOTHING:
            self._received, self._received_bytes = 1, len(self._response)
        common.finish(
            self._plan,
            self._span,
            code,
            request_messages=self._sent.messages,
            response_messages=self._received,
            request_bytes=self._sent.bytes,
            response_bytes=self._received_bytes,
            peer=peer,
            injected=code != OK and common.fault_marked(trailing),
        )
        self._over()

    def _over(self) -> None:
        self._state = _OVER
        callbacks, self._callbacks = self._callbacks, None
        for cb in callbacks or ():
            cb(self)

    def _abandon(self) -> None:
        self._release()
        if self._state != _OVER:
            if self._inner is not None:
                self._inner.cancel()
            self._plan.abandon()
            self._over()

    # --- responses ---------------------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        await self._settle(_OVER)
        if self._error is not None:
            raise self._error
        return self._m.deser(self._response)

    async def read(self) -> Any:
        """The next response message, or ``grpc.aio.EOF`` at the end of the stream."""
        await self._settle(_DELIVERING)
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            self._received += 1
            self._received_bytes += len(first)
            return self._m.deser(first)
        if self._state == _OVER:
            if self._error is not None:
                raise self._error
            return _EOF
        try:
            data = await self._inner.read()
        except grpc.aio.AioRpcError as e:
            self._error = e
            await self._record_end()
            raise
        except asyncio.CancelledError:
            self._abandon()
            raise
        if data is _EOF:
            await self._record_end()
            return _EOF
        self._received += 1
        self._received_bytes += len(data)
        return self._m.deser(data)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            message = await self.read()
            if message is _EOF:
                return
            yield message

    # --- requests ----------------------------------------------------------------------------------------

    async def write(self, request: Any) -> None:
        """Send one request message (calls made without a request iterator)."""
        await self._settle(_RUNNING)
        if self._local is not None:
            raise self._local
        data = self._m.ser(request)
        self._sent.messages += 1
        self._sent.bytes += len(data)
        await self._inner.write(data)

    async def done_writing(self) -> None:
        """No more request messages."""
        await self._settle(_RUNNING)
        if self._inner is not None and self._local is None:
            await self._inner.done_writing()

    # --- grpc.aio.Call -----------------------------------------------------------------------------------

    async def initial_metadata(self) -> Any:
        await self._settle(_DELIVERING)
        if self._inner is None or self._local is not None:
            return grpc.aio.Metadata()
        md = await self._inner.initial_metadata()
        return grpc.aio.Metadata(*common.edit_metadata(md, self._ops)) if self._ops else md

    async def trailing_metadata(self) -> Any:
        await self._settle(_DELIVERING)
        if self._local is not None:
            return self._local.trailing_metadata()
        return await self._inner.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        await self._settle(_DELIVERING)
        if self._local is not None:
            return self._local.code()
        return await self._inner.code()  # type: ignore[no-any-return]

    async def details(self) -> str:
        await self._settle(_DELIVERING)
        if self._local is not None:
            return self._local.details() or ""
        return await self._inner.details()  # type: ignore[no-any-return]

    async def wait_for_connection(self) -> None:
        await self._settle(_RUNNING)
        if self._inner is not None and self._local is None:
            await self._inner.wait_for_connection()

    def cancel(self) -> bool:
        """Cancel the call (never retried afterwards)."""
        if self._state == _OVER:
            return False
        self._cancelled = True
        if self._inner is not None:
            self._inner.cancel()
        if not self._busy:
            self._error = asyncio.CancelledError()
            self._abandon()
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._state == _OVER

    def time_remaining(self) -> float | None:
        deadline = self._deadline
        plan_deadline = self._plan.deadline
        if plan_deadline is not None and (deadline is None or plan_deadline < deadline):
            deadline = plan_deadline
        return None if deadline is None else max(0.0, deadline - self._plan.mesh.clock())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self._state == _OVER:
            callback(self)
        else:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append(callback)


class _AioUnaryUnaryCall(_AioCall, _UnaryUnaryCallBase):
    """``await`` it for the response."""


class _AioUnaryStreamCall(_AioCall, _UnaryStreamCallBase):
    """Iterate it (``async for``) or ``read()`` it."""


class _AioStreamUnaryCall(_AioCall, _StreamUnaryCallBase):
    """``write()`` requests (or pass an iterator) and ``await`` the response."""


class _AioStreamStreamCall(_AioCall, _StreamStreamCallBase):
    """``write()``/``read()``, or pass an iterator and ``async for`` the responses."""


_CALL_TYPES: dict[str, Callable[..., _AioCall]] = {
    "unary_unary": _AioUnaryUnaryCall,
    "unary_stream": _AioUnaryStreamCall,
    "stream_unary": _AioStreamUnaryCall,
    "stream_stream": _AioStreamStreamCall,
}


class AioMeshChannel(grpc.aio.Channel):
    """A :class:`grpc.aio.Channel` to a logical service whose every call goes through the mesh; make it
    with :func:`libmesh.adapters.grpc.aio_channel`. ``options`` and ``credentials`` apply to each
    per-endpoint channel."""

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
        self._pool: ChannelPool[grpc.aio.Channel] = ChannelPool(self._make, self._close_one, mesh.clock)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = asyncio.Event() if _has_loop() else None

    @property
    def target(self) -> str:
        """The logical service this channel calls (``host:port``)."""
        return self._target.authority

    def _make(self, address: str, authority: str) -> grpc.aio.Channel:
        options = list(self._options)
        if authority != address and not any(k == "grpc.default_authority" for k, _ in options):
            options.append(("grpc.default_authority", authority))
        if self._credentials is not None:
            return grpc.aio.secure_channel(address, self._credentials, options, self._compression)
        return grpc.aio.insecure_channel(address, options, self._compression)

    def _close_one(self, channel: grpc.aio.Channel) -> None:
        self._track(asyncio.ensure_future(channel.close()))

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def endpoints(self) -> list[tuple[str, int, str]]:
        """The (address, port, authority) of the per-endpoint channels open now."""
        return self._pool.addresses()

    def close_idle(self) -> int:
        """Close per-endpoint channels idle past their idle timeout now (this also happens as calls are
        made); returns how many were closed."""
        return self._pool.sweep()

    def _mirror(self, step: Send, method: str, data: bytes | None, md: Any, registered: bool) -> None:
        for m in step.mirrors:
            shadow = Send(m.host, m.port, m.authority, step.path, step.headers, step.timeout, None, 0)
            conn = self._pool.acquire(shadow)
            mc = conn.callable("unary_unary", method, registered)
            self._track(
                asyncio.ensure_future(self._shadow(mc(data, timeout=step.timeout, metadata=md), conn))
            )

    async def _shadow(self, call: Any, conn: Conn[grpc.aio.Channel]) -> None:
        try:
            await call
        except Exception:  # a mirror never fails the call
            return
        finally:
            self._pool.release(conn)

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return _UnaryUnary(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        return _UnaryStream(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        return _StreamUnary(self, method, request_serializer, response_deserializer, bool(_registered_method))

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        return _StreamStream(
            self, method, request_serializer, response_deserializer, bool(_registered_method)
        )

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """READY while open: the mesh channel is always ready to route (endpoint channels connect on
        demand); SHUTDOWN once closed."""
        if self._closed is not None and self._closed.is_set():
            return grpc.ChannelConnectivity.SHUTDOWN
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Returns when the state differs from ``last_observed_state`` (READY only changes on close)."""
        if self.get_state() != last_observed_state or self._closed is None:
            return
        await self._closed.wait()

    async def channel_ready(self) -> None:
        """Ready at once (see :meth:`get_state`)."""
        return None

    async def close(self, grace: float | None = None) -> None:
        """Close every per-endpoint channel (calls in flight get ``grace`` seconds). Mirrored copies still on
        their way get up to a second to arrive first, as the httpx transports give them (closing a channel
        cancels what it carries)."""
        if self._closed is not None:
            self._closed.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        channels = self._pool.close_all()
        if channels:
            await asyncio.gather(*(c.close(grace) for c in channels), return_exceptions=True)

    async def __aenter__(self) -> AioMeshChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
