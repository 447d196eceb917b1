"""Uniform "around" wrapping of grpc.aio method handlers for server interceptors.

Every platform interceptor needs the same thing: run code before and after the
servicer method, with the request and the context. Response-streaming
behaviours (async generators) are driven through `context.write` so one
wrapper shape fits all four RPC kinds.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Next = Callable[[Any], Awaitable[Any]]
# Wrapped handlers kept per interceptor: far more than any service registers.
MAX_WRAPPED_METHODS = 1_024

# Response-streaming wrappers are async generators that yield nothing: the
# responses go out through context.write inside `around`, while the
# OpenTelemetry server interceptor (outside ours) insists on iterating them.
_NOTHING: tuple[Any, ...] = ()
Around = Callable[[Next, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def method_name(details: grpc.HandlerCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else method


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None


def wrap_handler(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    if not handler.request_streaming and not handler.response_streaming:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await around(lambda req: _maybe_await(inner_uu(req, context)), request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if not handler.request_streaming:
        inner_us = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            await around(
                lambda req: _drive_stream(inner_us(req, context), context), request, context
            )
            for item in _NOTHING:
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if not handler.response_streaming:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            return await around(lambda req: _maybe_await(inner_su(req, context)), requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    inner_ss = handler.stream_stream

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await around(lambda req: _drive_stream(inner_ss(req, context), context), requests, context)
        for item in _NOTHING:
            yield item

    return grpc.stream_stream_rpc_method_handler(
        stream_stream,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


async def _drive_stream(result: Any, context: grpc.aio.ServicerContext) -> None:
    if inspect.isasyncgen(result):
        async for item in result:
            await context.write(item)
        return None
    if inspect.isawaitable(result):
        await result
        return None
    for item in result:  # a plain iterator from a sync generator
        await context.write(item)
    return None


class AroundInterceptor(grpc.aio.ServerInterceptor):
    """Base class: subclasses implement `around(method, call_next, request, context)`."""

    def applies_to(self, method: str) -> bool:
        return True

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = method_name(handler_call_details)
        if handler is None or not self.applies_to(method):
            return handler
        # grpc.aio asks every interceptor on every call. The inner handler of a
        # method is the same object each time (the servicer's, or the next
        # interceptor's cached wrapper), so its wrapper is built once, not per
        # call; a different inner handler is wrapped anew.
        cache = self._wrapped
        cached = cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]

        async def bound(call_next: Next, request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self.around(method, handler, call_next, request, context)

        wrapped = wrap_handler(handler, bound)
        if len(cache) < MAX_WRAPPED_METHODS:  # only registered methods get a handler
            cache[method] = (handler, wrapped)
        return wrapped

    @functools.cached_property
    def _wrapped(self) -> dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]:
        # method -> (inner handler, its wrapper). Created on first use, so
        # subclasses need not call a base __init__.
        return {}

    @abc.abstractmethod
    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        """Run `await call_next(request)` with whatever comes before and after it."""
