"""Window counters in Redis: one atomic script per request, whatever its descriptor count."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis

from services.ratelimit.domain import MAX_DESCRIPTORS, MAX_HITS, Window

# INCRBY then EXPIRE inside one script: Redis runs it atomically, so concurrent
# requests see distinct counts and a counter can never be left without expiry
# (which a client dying between two separate commands could cause). The TTL
# check (instead of EXPIRE ... NX) keeps Redis 6.2 — the dev stack's — working.
_INCREMENT = """
local hits = tonumber(ARGV[1])
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCRBY', key, hits)
  if redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[i + 1])
  end
end
return counts
"""

# Envoy waits for the limiter only briefly (0.25 s in envoy/envoy.template.yaml)
# before letting the request through (failure_mode_deny is false): a slow Redis
# gives up first, so the answer is our logged fail-open rather than a timeout.
REDIS_TIMEOUT_S = 0.2

# A counter outlives its window by this margin so that a replica whose clock
# lags slightly still finds it; the window index in the key keeps windows apart.
EXPIRY_SLACK_S = 1


class Counters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_INCREMENT)

    async def increment(self, windows: Sequence[Window], hits: int) -> list[int]:
        """Add `hits` to each window's counter; the counts after the increment, in order."""
        assert 0 < len(windows) <= MAX_DESCRIPTORS and 0 < hits <= MAX_HITS
        keys = [w.key for w in windows]
        args = [hits, *(w.reset_after + EXPIRY_SLACK_S for w in windows)]
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            counts = await self._script(keys=keys, args=args)
        return [int(c) for c in cast(list[Any], counts)]


def connect(url: str) -> Redis:
    """A client whose every socket step is bounded by REDIS_TIMEOUT_S."""
    pool = BlockingConnectionPool.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        # Connections are shared by all in-flight calls: the cap bounds what a
        # burst opens against Redis, and a call beyond it waits for a free
        # connection (up to the timeout) instead of failing open at once.
        max_connections=64,
        timeout=REDIS_TIMEOUT_S,
    )
    return Redis(connection_pool=pool)
