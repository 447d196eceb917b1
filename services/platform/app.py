"""Service entrypoint: `run_service(service, setup)` and the `ServiceContext`.

Builds the grpc.aio server with the platform interceptors (errors →
metrics/logging/tracing → auth → idempotency), health, reflection, /metrics,
the outbox relay, and drains in-flight calls on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import nats
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from services.platform.auth import Jwks, RedisRevocationList, TokenVerifier
from services.platform.db import Database
from services.platform.gctune import tune_gc
from services.platform.idempotency import IdempotencyInterceptor
from services.platform.logs import configure_logging
from services.platform.metrics import MetricsServer
from services.platform.outbox import OutboxRelay, RelayConfig
from services.platform.policy import PolicyLookup, policy_for
from services.platform.redis_client import redis_from_url
from services.platform.server_interceptors import ErrorInterceptor, ObservabilityInterceptor
from services.platform.service_token import ServiceTokenSigner, service_channel
from services.platform.settings import Settings, SettingsError
from services.platform.tracing import configure_tracing

log = logging.getLogger(__name__)

MAX_BACKGROUND_TASKS = 32
MAX_CONCURRENT_RPCS = 1000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
JWKS_FILE = "jwks.json"
SIGNING_KEY_FILE = "jwt_signing_key.pem"
WORKER_NICENESS = 10  # of a `worker` process (settings.PROCESS_ROLES), see run_service
NATS_FLUSH_TIMEOUT_SECONDS = 2  # at shutdown: what is buffered goes out, or is given up


class NotConfiguredError(SettingsError):
    pass


@dataclass
class ServiceContext:
    settings: Settings
    _db: Database | None = None
    _redis: Redis | None = None
    _nats: NatsClient | None = None
    _outbox: OutboxRelay | None = None
    _signer: ServiceTokenSigner | None = None
    _background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _workers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def db(self) -> Database:
        if self._db is None:
            raise NotConfiguredError("FINTECH_DATABASE_URL is not set")
        return self._db

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise NotConfiguredError("FINTECH_REDIS_URL is not set")
        return self._redis

    @property
    def nats(self) -> NatsClient:
        if self._nats is None:
            raise NotConfiguredError("FINTECH_NATS_URL is not set")
        return self._nats

    @property
    def outbox(self) -> OutboxRelay:
        if self._outbox is None:
            raise NotConfiguredError("the outbox needs FINTECH_DATABASE_URL and FINTECH_NATS_URL")
        return self._outbox

    def add_background(self, coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `coro_factory()` as a task beside the API once the server is up
        (work the RPCs hand over in memory, like the ledger's batching writer);
        cancelled on shutdown. Not run by a `worker` process."""
        assert len(self._background) + len(self._workers) < MAX_BACKGROUND_TASKS, "too many"
        self._background.append(coro_factory)

    def add_worker(self, coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `coro_factory()` as a task once the server is up, in the process
        that does the service's work (Temporal workers, event consumers): it
        needs nothing from the API's memory, so a split service runs it in its
        `worker` process (settings.PROCESS_ROLES). Not run by an `api` process."""
        assert len(self._background) + len(self._workers) < MAX_BACKGROUND_TASKS, "too many"
        self._workers.append(coro_factory)

    def service_channel(self, target: str) -> grpc.aio.Channel:
        """A channel to another service whose calls carry this service's token."""
        if self._signer is None:
            raise NotConfiguredError("FINTECH_SECRETS_DIR with jwt_signing_key.pem is required")
        channel = service_channel(target, self._signer)
        self._channels.append(channel)
        return channel


Setup = Callable[[ServiceContext, grpc.aio.Server], Awaitable[list[str]]]


def run_service(service: str, setup: Setup, *, own_record: Iterable[str] = ()) -> None:
    """Process entrypoint: settings from env, serve until SIGTERM/SIGINT.

    `own_record`: mutating methods whose handlers store their idempotency
    record in their own transaction (services.platform.idempotency).
    """
    settings = Settings.from_env(service)
    if not settings.serves_api:
        # A worker's work is throughput (workflows, consumers, the relay), an
        # API's is latency: on a shared host the worker yields the CPU. Measured
        # with payments (bench/README.md): settled/s unchanged; with 200 ms PSP
        # latency, acceptance p50/p99 at 40/s 318/1,067 ms -> 71/423 ms.
        os.nice(WORKER_NICENESS)
    # uvloop: the event loop's own work (callbacks, socket readiness for
    # Postgres, Redis and NATS, timers) in C. Measured on the ledger under one
    # transfer per request: ~25 % more requests/s for the same CPU (bench/README).
    uvloop.run(serve(settings, setup, install_signal_handlers=True, own_record=own_record))


def build_interceptors(
    settings: Settings,
    verifier: TokenVerifier | None,
    db: Database | None,
    policy_lookup: PolicyLookup = policy_for,
    own_record: Iterable[str] = (),
) -> list[grpc.aio.ServerInterceptor]:
    from services.platform.auth import AuthInterceptor

    chain: list[grpc.aio.ServerInterceptor] = [
        ErrorInterceptor(settings.error_domain),
        ObservabilityInterceptor(),
        AuthInterceptor(verifier, policy_lookup),
    ]
    if db is not None:
        chain.append(IdempotencyInterceptor(db, settings.db_schema, policy_lookup, own_record))
    else:
        chain.append(_NoIdempotencyStore(policy_lookup))
    return chain


class _NoIdempotencyStore(grpc.aio.ServerInterceptor):
    """Without a database a mutating RPC cannot be made idempotent: refuse at start."""

    def __init__(self, policy_lookup: PolicyLookup) -> None:
        self.policy_lookup = policy_lookup

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        method = handler_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        assert not self.policy_lookup(method).mutating, f"{method} is mutating but no database"
        return await continuation(handler_call_details)


async def serve(
    settings: Settings,
    setup: Setup,
    *,
    install_signal_handlers: bool = False,
    stop: asyncio.Event | None = None,
    policy_lookup: PolicyLookup = policy_for,
    on_ready: Callable[[int], None] | None = None,
    relay_config: RelayConfig | None = None,
    own_record: Iterable[str] = (),
) -> None:
    """Serve until `stop` is set (or a signal arrives), then drain and close."""
    configure_logging(settings.service, settings.log_level)
    configure_tracing(settings.service, settings.otel_exporter)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    previous_handlers = {}
    if install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous_handlers[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, stop.set)

    ctx = ServiceContext(settings)
    metrics: MetricsServer | None = None
    server: grpc.aio.Server | None = None
    tasks: list[asyncio.Task[None]] = []
    health_servicer = health.aio.HealthServicer()
    try:
        if settings.database_url:
            ctx._db = Database(
                settings.database_url,
                pool_size=settings.db_pool_size,
                application_name=settings.service,
            )
        if settings.redis_url:
            ctx._redis = redis_from_url(settings.redis_url)
        verifier = _verifier(settings, ctx._redis)
        ctx._signer = _signer(settings)
        if settings.nats_url:
            ctx._nats = await nats.connect(settings.nats_url, name=settings.service)
            if ctx._db is not None:
                ctx._outbox = OutboxRelay(
                    ctx._db, ctx._nats.jetstream(), settings.db_schema, relay_config
                )

        server = grpc.aio.server(
            interceptors=build_interceptors(settings, verifier, ctx._db, policy_lookup, own_record),
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        # A worker process serves health and reflection only: the service's
        # servicers go to a server that is never started, so setup stays the
        # same for every role and nothing can reach an API whose in-process
        # parts (add_background) do not run here.
        api_server = server if settings.serves_api else grpc.aio.server()
        names = list(await setup(ctx, api_server))
        if not settings.serves_api:
            names = []
        tune_gc()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        port = server.add_insecure_port(settings.grpc_address)
        if port == 0:
            raise RuntimeError(f"cannot bind {settings.grpc_address}")
        if settings.metrics_port:
            metrics = MetricsServer(settings.grpc_host, settings.metrics_port)
        await server.start()

        if ctx._outbox is not None and settings.runs_work:
            tasks.append(asyncio.create_task(ctx._outbox.run(), name="outbox-relay"))
        factories = [
            *(ctx._background if settings.serves_api else []),
            *(ctx._workers if settings.runs_work else []),
        ]
        for factory in factories:
            tasks.append(
                asyncio.create_task(_supervised(factory), name=getattr(factory, "__name__", "bg"))
            )
        for name in ["", *names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "%s (%s) serving on %s:%d",
            settings.service,
            settings.process_role,
            settings.grpc_host,
            port,
        )
        if on_ready:
            on_ready(port)
        await stop.wait()
        log.info("%s draining (grace %.0fs)", settings.service, settings.shutdown_grace_seconds)
    finally:
        # NOT_SERVING first so load balancers stop routing, then drain.
        await health_servicer.enter_graceful_shutdown()
        if server is not None:
            await server.stop(settings.shutdown_grace_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close(ctx)
        if metrics is not None:
            metrics.close()
        for sig, previous in previous_handlers.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
        log.info("%s stopped", settings.service)


async def _supervised(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """A background task that crashes is logged and restarted with backoff."""
    delay = 0.5
    while True:
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task failed; restarting in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)


def _verifier(settings: Settings, redis: Redis | None) -> TokenVerifier | None:
    if settings.secrets_dir is None or not (settings.secrets_dir / JWKS_FILE).exists():
        log.warning("no JWKS: every authenticated RPC will be rejected")
        return None
    return TokenVerifier(
        Jwks(settings.secrets_dir / JWKS_FILE),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=RedisRevocationList(redis) if redis is not None else None,
    )


def _signer(settings: Settings) -> ServiceTokenSigner | None:
    if settings.secrets_dir is None:
        return None
    key, jwks = settings.secrets_dir / SIGNING_KEY_FILE, settings.secrets_dir / JWKS_FILE
    if not key.exists() or not jwks.exists():
        return None
    return ServiceTokenSigner.from_files(
        key,
        jwks,
        service=settings.service,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


async def _close(ctx: ServiceContext) -> None:
    for channel in ctx._channels:
        await channel.close()
    if ctx._nats is not None:
        await close_nats(ctx._nats)
    if ctx._redis is not None:
        await ctx._redis.aclose()
    if ctx._db is not None:
        await ctx._db.close()


async def close_nats(nc: NatsClient) -> None:
    """Send what is still buffered (acknowledgements, publishes), then close.

    Not `drain()`: by now the consumers' tasks are cancelled, and a pull
    request cancelled mid-fetch still gets its answer from the server, which
    waits in the subscription's queue with nobody to take it; drain waits for
    that queue to empty until its 30 s timeout (a DrainTimeoutError at every
    shutdown of a service with consumers, and `make run` took ~90 s to stop).
    Nothing is lost by closing: a message fetched but not acknowledged is
    redelivered after its ack wait, and the consumers are idempotent.
    """
    try:
        await nc.flush(timeout=NATS_FLUSH_TIMEOUT_SECONDS)
    except Exception as exc:  # a closed or broken connection has nothing left to send
        log.warning("nats flush before close failed: %s", exc)
    await nc.close()
