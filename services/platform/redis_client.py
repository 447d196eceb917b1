"""Redis client factory (sessions/revocation, rate-limit counters, caches)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from services.platform.settings import Settings, SettingsError

MAX_CONNECTIONS = 50
SOCKET_TIMEOUT_SECONDS = 2.0


def redis_from_url(url: str, *, max_connections: int = 20) -> Redis:
    assert 1 <= max_connections <= MAX_CONNECTIONS
    # A blocking pool: past `max_connections` a caller waits (up to the socket
    # timeout) for a free connection instead of failing at once, so a burst of
    # concurrent RPCs queues briefly rather than erroring with UNAVAILABLE.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def redis_from_settings(settings: Settings, *, max_connections: int = 20) -> Redis:
    if not settings.redis_url:
        raise SettingsError("FINTECH_REDIS_URL is not set")
    return redis_from_url(settings.redis_url, max_connections=max_connections)
