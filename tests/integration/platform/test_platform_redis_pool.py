"""A burst larger than the Redis pool waits for connections instead of failing."""

import asyncio
import uuid

from services.platform.redis_client import redis_from_url


async def test_burst_beyond_the_pool_queues_and_succeeds(infra) -> None:  # type: ignore[no-untyped-def]
    redis = redis_from_url(infra.redis_url, max_connections=2)
    key = f"pooltest:{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(*(redis.incr(key) for _ in range(64)))
        assert sorted(results) == list(range(1, 65))
    finally:
        await redis.delete(key)
        await redis.aclose()
