"""AroundInterceptor: each method's wrapper is built once and runs `around` on every call."""

from __future__ import annotations

from typing import Any

import grpc

from services.platform.handlers import AroundInterceptor, Next


class Counting(AroundInterceptor):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        self.calls.append(method)
        return await call_next(request)


def _handler(reply: str) -> grpc.RpcMethodHandler:
    async def behaviour(request: Any, context: Any) -> str:
        return f"{reply}:{request}"

    return grpc.unary_unary_rpc_method_handler(behaviour)


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def _intercept(
    interceptor: Counting, handler: grpc.RpcMethodHandler | None, method: str
) -> Any:
    async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return handler

    return await interceptor.intercept_service(continuation, _Details(method))  # type: ignore[arg-type]


async def test_a_methods_wrapper_is_built_once_and_runs_around_every_call() -> None:
    interceptor = Counting()
    inner = _handler("a")
    first = await _intercept(interceptor, inner, "/s/A")
    again = await _intercept(interceptor, inner, "/s/A")
    assert first is again
    assert await first.unary_unary("x", None) == "a:x"
    assert await again.unary_unary("y", None) == "a:y"
    assert interceptor.calls == ["/s/A", "/s/A"]


async def test_another_inner_handler_or_method_gets_its_own_wrapper() -> None:
    interceptor = Counting()
    a, b = _handler("a"), _handler("b")
    wrapped_a = await _intercept(interceptor, a, "/s/A")
    wrapped_b = await _intercept(interceptor, b, "/s/A")  # the inner handler changed
    other = await _intercept(interceptor, a, "/s/B")
    assert len({id(wrapped_a), id(wrapped_b), id(other)}) == 3
    assert await wrapped_b.unary_unary("x", None) == "b:x"
    assert await other.unary_unary("x", None) == "a:x"
    assert interceptor.calls == ["/s/A", "/s/B"]
    assert await _intercept(interceptor, None, "/s/Unknown") is None
