"""run_service's server: health, reflection, /metrics, auth with Redis revocation,
and graceful shutdown that drains an in-flight call on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.asyncio import Redis

from services.platform.app import ServiceContext, serve
from services.platform.errors import details_from_rpc_error
from services.platform.policy import MethodPolicy, static_policies
from services.platform.settings import Settings
from tests.integration.platform.platform_it_support import SERVICE, echo_handlers, stub
from tests.unit.platform.platform_unit_support import KeyPair, jwks

pytestmark = pytest.mark.integration

KEY = KeyPair("it-key")
POLICIES = static_policies({f"/{SERVICE}/Echo": MethodPolicy(public=True)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(
    tmp_path: Path, redis_url: str
) -> tuple[asyncio.Task[None], int, int, asyncio.Event]:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "jwks.json").write_text(json.dumps(jwks(KEY)))
    metrics_port = free_port()
    settings = Settings.from_env(
        "ptserve",
        {
            "FINTECH_GRPC_PORT": str(free_port()),
            "FINTECH_METRICS_PORT": str(metrics_port),
            "FINTECH_REDIS_URL": redis_url,
            "FINTECH_SECRETS_DIR": str(secrets_dir),
            "FINTECH_SHUTDOWN_GRACE_SECONDS": "5",
        },
    )

    async def echo(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value=request.value)

    async def slow(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        await asyncio.sleep(1.0)
        return wrappers_pb2.StringValue(value="drained")

    async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
        assert ctx.redis is not None
        server.add_generic_rpc_handlers([echo_handlers({"Echo": echo, "Slow": slow})])
        return [SERVICE]

    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(
            settings,
            setup,
            install_signal_handlers=True,
            stop=stop,
            policy_lookup=POLICIES,
            on_ready=ready.set_result,
        )
    )
    port = await asyncio.wait_for(ready, 10)
    return task, port, metrics_port, stop


async def test_serving_auth_metrics_and_graceful_drain(infra, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task, port, metrics_port, _ = await start(tmp_path, infra.redis_url)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    redis = Redis.from_url(infra.redis_url)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for r in responses for s in r.list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health"} <= names

        assert (await stub(channel, "Echo")(wrappers_pb2.StringValue(value="hi"))).value == "hi"

        # Slow needs a token; a revoked session is refused with the Redis list.
        session = f"it-{uuid.uuid4()}"
        token = KEY.token(sid=session)
        auth = (("authorization", f"Bearer {token}"),)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub(channel, "Slow")(wrappers_pb2.StringValue())
        assert details_from_rpc_error(missing.value).reason == "TOKEN_MISSING"
        await redis.set(f"revoked:sid:{session}", "1", ex=60)
        with pytest.raises(grpc.aio.AioRpcError) as revoked:
            await stub(channel, "Slow")(wrappers_pb2.StringValue(), metadata=auth)
        assert details_from_rpc_error(revoked.value).reason == "TOKEN_REVOKED"
        await redis.delete(f"revoked:sid:{session}")

        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert f'grpc_server_handled_total{{grpc_code="OK",grpc_method="/{SERVICE}/Echo"}}' in body
        assert f'grpc_code="UNAUTHENTICATED",grpc_method="/{SERVICE}/Slow"' in body

        # SIGTERM while a slow call is in flight: the call completes, new ones are refused.
        async def slow_call() -> wrappers_pb2.StringValue:
            return await stub(channel, "Slow")(wrappers_pb2.StringValue(), metadata=auth)

        in_flight = asyncio.create_task(slow_call())
        await asyncio.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (await in_flight).value == "drained"
        await asyncio.wait_for(task, 10)
        with pytest.raises(grpc.aio.AioRpcError) as after:
            await stub(channel, "Echo")(wrappers_pb2.StringValue(value="late"), timeout=1)
        assert after.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        # The pytest process keeps its own SIGTERM handling after serve() returns.
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await channel.close()
        await redis.aclose()


async def _reflected(channel: grpc.aio.Channel) -> set[str]:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    return {s.name async for r in responses for s in r.list_services_response.service}


@pytest.mark.parametrize("role", ["all", "api", "worker"])
async def test_process_roles_split_the_api_from_the_work(role: str) -> None:
    """FINTECH_PROCESS_ROLE: `api` serves the RPCs and runs add_background tasks;
    `worker` runs add_worker tasks and serves only health and reflection; `all`
    does both."""
    settings = Settings.from_env(
        "ptroles",
        {
            "FINTECH_GRPC_PORT": str(free_port()),
            "FINTECH_METRICS_PORT": "0",
            "FINTECH_PROCESS_ROLE": role,
            "FINTECH_SHUTDOWN_GRACE_SECONDS": "1",
        },
    )
    ran: set[str] = set()

    async def echo(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value=request.value)

    def task(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            ran.add(name)
            await asyncio.Event().wait()

        return run

    async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
        server.add_generic_rpc_handlers([echo_handlers({"Echo": echo})])
        ctx.add_background(task("background"))
        ctx.add_worker(task("worker"))
        return [SERVICE]

    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(settings, setup, stop=stop, policy_lookup=POLICIES, on_ready=ready.set_result)
    )
    port = await asyncio.wait_for(ready, 10)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        for _ in range(100):  # the tasks start right after the server
            if ran:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        expected = {"all": {"background", "worker"}, "api": {"background"}, "worker": {"worker"}}
        assert ran == expected[role]

        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        names = await _reflected(channel)
        assert "grpc.health.v1.Health" in names
        if role == "worker":
            assert SERVICE not in names
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub(channel, "Echo")(wrappers_pb2.StringValue(value="hi"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            assert SERVICE in names
            assert (await stub(channel, "Echo")(wrappers_pb2.StringValue(value="hi"))).value == "hi"
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
        await channel.close()
