"""Server interceptors for grpcio (sync and asyncio): inbound telemetry, trace continuation and context
propagation for the servicer (see ``adapters/grpc.py``)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

import grpc
import grpc.aio

from libmesh.mesh import Mesh
from libmesh.policy.grpc_codes import OK

from ._grpc_common import ServerSide, UnaryBehavior, message_size
from ._server import FAULT_HEADER, Inbound

__all__ = ["AioServerInterceptor", "ServerInterceptor"]

_FAULT: Final = (FAULT_HEADER, "true")


def _status_code(code: Any) -> int | None:
    if code is None:
        return None
    if isinstance(code, grpc.StatusCode):
        return int(code.value[0])
    return int(code)


class _Context:
    """A :class:`grpc.ServicerContext` that passes everything to the real one and notes the status, so the
    interceptor learns how the call ended without reading grpc's private state. Trailing metadata the
    servicer sets is sent together with the mesh's own (the workload's identity, the fault marker). It also
    counts the messages received and sent."""

    __slots__ = (
        "_inbound",
        "_inner",
        "_peer",
        "code_set",
        "marked",
        "received",
        "received_bytes",
        "sent",
        "sent_bytes",
        "trailing",
    )

    def __init__(self, inner: Any, inbound: Inbound, peer: tuple[str, str] | None) -> None:
        self._inner = inner
        self._inbound = inbound
        self._peer = peer
        self.code_set: int | None = None
        self.marked = False
        self.trailing: tuple[Any, ...] = ()
        self.received = 0
        self.sent = 0
        self.received_bytes = 0
        self.sent_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _trailers(self, fault: bool) -> list[tuple[str, Any]]:
        out = list(self.trailing)
        if self._peer is not None:
            out.append(self._peer)
        if fault:
            out.append(_FAULT)
        return out

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, Any]]) -> None:
        self.trailing = tuple(trailing_metadata)
        self._inner.set_trailing_metadata(self._trailers(False))

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code_set = _status_code(code)
        self._inner.set_code(code)

    def code(self) -> Any:
        return self._inner.code()

    def _mark_fault(self, code: int | None) -> None:
        if code not in (None, OK) and not self.marked and self._inbound.fault_note.injected:
            self.marked = True
            self._inner.set_trailing_metadata(self._trailers(True))

    def abort(self, code: grpc.StatusCode, details: str) -> Any:
        self.code_set = _status_code(code)
        self._mark_fault(self.code_set)
        return self._inner.abort(code, details)

    def abort_with_status(self, status: Any) -> Any:
        self.code_set = _status_code(status.code)
        self._mark_fault(self.code_set)
        return self._inner.abort_with_status(status)


class _AioContext(_Context):
    """The asyncio twin: ``abort`` is a coroutine, and ``read``/``write`` count messages."""

    __slots__ = ()

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> Any:
        self.code_set = _status_code(code)
        if trailing_metadata:
            self.trailing = tuple(trailing_metadata)
        fault = self.code_set not in (None, OK) and self._inbound.fault_note.injected
        self.marked = True
        return await self._inner.abort(code, details, tuple(self._trailers(fault)))

    async def read(self) -> Any:
        message = await self._inner.read()
        if message is not grpc.aio.EOF:
            self.received += 1
            self.received_bytes += _size(message)
        return message

    async def write(self, message: Any) -> None:
        self.sent += 1
        self.sent_bytes += _size(message)
        await self._inner.write(message)


class _Base:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        side = ServerSide(mesh)
        self._side = side
        self._answer = side.answer
        self._trailers = side.trailers
        self._begin = side.begin
        self._end = side.end
        self._wrapped: dict[int, tuple[Any, Any]] = {}

    def _cached(self, handler: Any, method: str, wrap: Callable[[Any, str], Any]) -> Any:
        entry = self._wrapped.get(id(handler))
        if entry is not None and entry[0] is handler:
            return entry[1]
        wrapped = wrap(handler, method)
        if len(self._wrapped) >= 4096:
            self._wrapped.clear()
        self._wrapped[id(handler)] = (handler, wrapped)
        return wrapped


class ServerInterceptor(_Base, grpc.ServerInterceptor):
    """A :class:`grpc.ServerInterceptor` serving every method inside the mesh::

        server = grpc.server(ThreadPoolExecutor(8), interceptors=[ServerInterceptor(mesh)])

    While a call is served, the calls the servicer makes through mesh channels and transports carry its
    trace context, ``baggage``, ``x-request-id``, the headers MeshConfig ``propagateHeaders`` lists and the
    remaining deadline; the call is recorded with ``reporter="destination"``, ``request_protocol="grpc"``,
    its final ``grpc_response_status`` and its message counts.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        wrapped: grpc.RpcMethodHandler[Any, Any] = self._cached(
            handler, handler_call_details.method, self._wrap
        )
        return wrapped

    def _wrap(self, handler: Any, method: str) -> Any:
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, method, True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler.unary_unary, method, False),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _unary(
        self, inner: Callable[[Any, Any], Any], method: str, streaming: bool
    ) -> Callable[[Any, Any], Any]:
        # A compiled callable: this runs on every call, and interpreted it cost the call a frame of its own.
        return UnaryBehavior(self._side, inner, method, streaming, _Context, _count)

    def _streaming(
        self, inner: Callable[[Any, Any], Iterator[Any]], method: str, streaming: bool
    ) -> Callable[[Any, Any], Iterator[Any]]:
        span_name = method[1:]
        answer, trailers = self._answer, self._trailers
        begin, end = self._begin, self._end

        def behavior(request: Any, context: Any) -> Iterator[Any]:
            inbound = begin(context, method, span_name)
            peer = answer(inbound)
            ctx = _Context(context, inbound, peer)
            if peer is not None:
                context.set_trailing_metadata(trailers)
            if streaming:
                request = _count(request, ctx)
            else:
                ctx.received = 1
                ctx.received_bytes = _size(request)
            try:
                for message in inner(request, ctx):
                    ctx.sent += 1
                    ctx.sent_bytes += _size(message)
                    yield message
            except BaseException as e:
                end(inbound, ctx, e)
                raise
            end(inbound, ctx, None)

        return behavior


_size = message_size


def _count(requests: Iterator[Any], ctx: _Context) -> Iterator[Any]:
    for message in requests:
        ctx.received += 1
        ctx.received_bytes += _size(message)
        yield message


async def _acount(requests: AsyncIterator[Any], ctx: _Context) -> AsyncIterator[Any]:
    async for message in requests:
        ctx.received += 1
        ctx.received_bytes += _size(message)
        yield message


class AioServerInterceptor(_Base, grpc.aio.ServerInterceptor):
    """The asyncio twin of :class:`ServerInterceptor`, for ``grpc.aio.server(interceptors=[...])``.
    Servicer methods may be coroutines or async generators; streaming ones may also use
    ``context.read()``/``context.write()``."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped: grpc.RpcMethodHandler[Any, Any] = self._cached(
            handler, handler_call_details.method, self._wrap
        )
        return wrapped

    def _wrap(self, handler: Any, method: str) -> Any:
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, method, True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler.unary_unary, method, False),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _unary(self, inner: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Any]:
        span_name = method[1:]
        answer, trailers = self._answer, self._trailers
        begin, end = self._begin, self._end

        async def behavior(request: Any, context: Any) -> Any:
            inbound = begin(context, method, span_name)
            peer = answer(inbound)
            ctx = _AioContext(context, inbound, peer)
            if peer is not None:
                context.set_trailing_metadata(trailers)
            if streaming:
                if request is not None:
                    request = _acount(request, ctx)
            else:
                ctx.received = 1
                ctx.received_bytes = _size(request)
            try:
                response = await inner(request, ctx)
            except BaseException as e:
                end(inbound, ctx, e)
                raise
            if (ctx.code_set is None or ctx.code_set == OK) and response is not None:
                ctx.sent = 1
                ctx.sent_bytes = _size(response)
            end(inbound, ctx, None)
            return response

        return behavior

    def _streaming(self, inner: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Any]:
        span_name = method[1:]
        answer, trailers = self._answer, self._trailers
        begin, end = self._begin, self._end
        if inspect.isasyncgenfunction(inner):

            async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
                inbound = begin(context, method, span_name)
                peer = answer(inbound)
                ctx = _AioContext(context, inbound, peer)
                if peer is not None:
                    context.set_trailing_metadata(trailers)
                if streaming:
                    if request is not None:
                        request = _acount(request, ctx)
                else:
                    ctx.received = 1
                    ctx.received_bytes = _size(request)
                try:
                    async for message in inner(request, ctx):
                        ctx.sent += 1
                        ctx.sent_bytes += _size(message)
                        yield message
                except BaseException as e:
                    end(inbound, ctx, e)
                    raise
                end(inbound, ctx, None)

            return generator

        async def writer(request: Any, context: Any) -> Any:
            # A servicer that streams with context.write() and returns nothing.
            inbound = begin(context, method, span_name)
            peer = answer(inbound)
            ctx = _AioContext(context, inbound, peer)
            if peer is not None:
                context.set_trailing_metadata(trailers)
            if streaming:
                if request is not None:
                    request = _acount(request, ctx)
            else:
                ctx.received = 1
                ctx.received_bytes = _size(request)
            try:
                result = await inner(request, ctx)
            except BaseException as e:
                end(inbound, ctx, e)
                raise
            end(inbound, ctx, None)
            return result

        return writer
