"""The rate limiter's gRPC server: RateLimitService + health + reflection.

It does not go through the platform's `run_service`: its only caller is Envoy,
which sends no access token and no idempotency key, so the platform's auth and
idempotency interceptors would reject every call; it has no database either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis

from services.platform.gctune import tune_gc
from services.platform.logs import configure_logging
from services.platform.metrics import MetricsServer
from services.platform.settings import Settings, SettingsError
from services.ratelimit import domain
from services.ratelimit.api import SERVICE_NAME, RateLimitServicer
from services.ratelimit.store import Counters, connect

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path(__file__).with_name("limits.yaml")
# A limits file is a few dozen lines; anything far larger is the wrong file.
MAX_CONFIG_BYTES = 256 * 1024
# Envoy opens a handful of HTTP/2 connections and multiplexes; this bounds the
# calls being served at once so a stuck Redis cannot pile up unbounded work.
MAX_CONCURRENT_RPCS = 1_000


def load_config(path: Path) -> domain.Config:
    with path.open("rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise domain.ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    return domain.parse_config(yaml.safe_load(raw))


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    servicer: RateLimitServicer
    health: health.aio.HealthServicer
    redis: Redis

    async def stop(self, grace: float | None) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.redis.aclose()


async def start_server(
    config: domain.Config, redis_url: str, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start serving on host:port (0 = any free port) and return the handle."""
    redis = connect(redis_url)
    servicer = RateLimitServicer(config, Counters(redis))
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, bound, servicer, health_servicer, redis)


async def serve() -> None:
    settings = Settings.from_env("ratelimit")
    configure_logging("ratelimit", settings.log_level)
    if settings.redis_url is None:
        raise SettingsError("FINTECH_REDIS_URL is required")
    config_path = Path(os.environ.get("FINTECH_RATELIMIT_CONFIG") or DEFAULT_CONFIG_PATH)
    config = load_config(config_path)
    running = await start_server(config, settings.redis_url, settings.grpc_host, settings.grpc_port)
    metrics = (
        MetricsServer(settings.grpc_host, settings.metrics_port) if settings.metrics_port else None
    )
    tune_gc()
    log.info("ratelimit serving on %s:%d with %s", settings.grpc_host, running.port, config_path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("ratelimit draining (grace %.0f s)", settings.shutdown_grace_seconds)
    with contextlib.suppress(asyncio.CancelledError):
        await running.stop(settings.shutdown_grace_seconds)
    if metrics is not None:
        metrics.close()
