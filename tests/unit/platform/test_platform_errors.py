"""Error model: AppError ↔ google.rpc.Status, and the error interceptor on a real server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import wrappers_pb2

from services.platform import errors
from services.platform.errors import AppError, details_from_rpc_error, details_from_status
from services.platform.server_interceptors import ErrorInterceptor, ObservabilityInterceptor
from tests.unit.platform.platform_unit_support import SERVICE, start_server, stub

DOMAIN = "unit.fintech.local"


def test_status_round_trip_carries_error_info_and_violations() -> None:
    err = errors.invalid_argument(
        "INVALID_CPF", "cpf is invalid", violations=[("cpf", "check digits"), ("email", "format")]
    )
    status = err.to_status(DOMAIN)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    decoded = details_from_status(status)
    assert decoded.code is grpc.StatusCode.INVALID_ARGUMENT
    assert decoded.reason == "INVALID_CPF"
    assert decoded.domain == DOMAIN
    assert decoded.message == "cpf is invalid"
    assert decoded.violations == (("cpf", "check digits"), ("email", "format"))


def test_status_without_violations_has_no_bad_request() -> None:
    status = errors.not_found("USER_NOT_FOUND", "no such user").to_status(DOMAIN)
    assert len(status.details) == 1
    assert details_from_status(status).violations == ()


def test_app_error_rejects_ok_and_lowercase_reason() -> None:
    with pytest.raises(AssertionError):
        AppError(grpc.StatusCode.OK, "FINE", "no")
    with pytest.raises(AssertionError):
        AppError(grpc.StatusCode.INTERNAL, "lower", "no")


async def test_interceptor_sends_rich_status_and_hides_internal_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext) -> None:
        raise errors.already_exists("EMAIL_TAKEN", "email already registered")

    async def crash(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext) -> None:
        raise RuntimeError("duplicate key (cpf)=(12345678909) SELECT * FROM users")

    async def echo(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value=request.value.upper())

    server, channel = await start_server(
        [ErrorInterceptor(DOMAIN), ObservabilityInterceptor()],
        {"Fail": fail, "Crash": crash, "Echo": echo},
    )
    try:
        assert (await stub(channel, "Echo")(wrappers_pb2.StringValue(value="hi"))).value == "HI"

        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub(channel, "Fail")(wrappers_pb2.StringValue())
        details = details_from_rpc_error(failed.value)
        assert details.code is grpc.StatusCode.ALREADY_EXISTS
        assert (details.reason, details.domain) == ("EMAIL_TAKEN", DOMAIN)

        with caplog.at_level(logging.ERROR, logger="services.platform.rpc"):
            with pytest.raises(grpc.aio.AioRpcError) as crashed:
                await stub(channel, "Crash")(wrappers_pb2.StringValue())
        details = details_from_rpc_error(crashed.value)
        assert details.code is grpc.StatusCode.INTERNAL
        assert (details.reason, details.message) == ("INTERNAL", "internal error")
        assert "SELECT" not in str(crashed.value) and "12345678909" not in str(crashed.value)
        assert any(r.exc_info and "duplicate key" in str(r.exc_info[1]) for r in caplog.records)
    finally:
        await channel.close()
        await server.stop(None)


async def test_streaming_responses_pass_through_and_fail_with_rich_status() -> None:
    async def stream(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[wrappers_pb2.StringValue]:
        for i in range(2):
            yield wrappers_pb2.StringValue(value=f"{request.value}{i}")
        if request.value == "fail":
            raise errors.not_found("GONE", "stream source vanished")

    server, channel = await start_server(
        [ErrorInterceptor(DOMAIN), ObservabilityInterceptor()], {"Stream": stream}
    )
    method = channel.unary_stream(
        f"/{SERVICE}/Stream",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    try:
        assert [r.value async for r in method(wrappers_pb2.StringValue(value="s"))] == ["s0", "s1"]
        received: list[str] = []
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for reply in method(wrappers_pb2.StringValue(value="fail")):
                received.append(reply.value)
        assert received == ["fail0", "fail1"]
        assert details_from_rpc_error(exc.value).reason == "GONE"
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_transient_downstream_failure_is_unavailable_and_any_other_internal() -> None:
    def downstream(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "ledger said")

    async def dependency_down(request: wrappers_pb2.StringValue, context: object) -> None:
        raise downstream(grpc.StatusCode.UNAVAILABLE)

    async def dependency_slow(request: wrappers_pb2.StringValue, context: object) -> None:
        raise downstream(grpc.StatusCode.DEADLINE_EXCEEDED)

    async def dependency_refused(request: wrappers_pb2.StringValue, context: object) -> None:
        raise downstream(grpc.StatusCode.PERMISSION_DENIED)  # our bug: not retryable

    server, channel = await start_server(
        [ErrorInterceptor(DOMAIN), ObservabilityInterceptor()],
        {"Echo": dependency_down, "Fail": dependency_slow, "Crash": dependency_refused},
    )
    try:
        for method in ("Echo", "Fail"):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub(channel, method)(wrappers_pb2.StringValue())
            details = details_from_rpc_error(failed.value)
            assert details.code is grpc.StatusCode.UNAVAILABLE, method
            assert (details.reason, details.domain) == ("DEPENDENCY_UNAVAILABLE", DOMAIN)
            assert "ledger said" not in str(failed.value)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub(channel, "Crash")(wrappers_pb2.StringValue())
        assert details_from_rpc_error(refused.value).code is grpc.StatusCode.INTERNAL
    finally:
        await channel.close()
        await server.stop(None)
