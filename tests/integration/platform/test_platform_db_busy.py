"""An exhausted connection pool answers UNAVAILABLE (retryable), never INTERNAL."""

import grpc
import pytest
from sqlalchemy import text

from services.platform.db import Database
from services.platform.errors import AppError
from services.platform.migrate import DEFAULT_DATABASE, database_url


async def test_pool_exhaustion_is_unavailable_and_recovers(infra) -> None:  # type: ignore[no-untyped-def]
    db = Database(
        database_url(infra.pg_admin_url, DEFAULT_DATABASE), pool_size=1, pool_timeout_seconds=0.2
    )
    try:
        async with db.separate_transaction():
            with pytest.raises(AppError) as exc:
                async with db.separate_transaction():
                    pass
        assert exc.value.code is grpc.StatusCode.UNAVAILABLE
        assert exc.value.reason == "DATABASE_BUSY"
        # The held connection went back to the pool: the next caller gets it.
        async with db.separate_transaction() as conn:
            assert (await conn.scalar(text("SELECT 1"))) == 1
    finally:
        await db.close()


async def test_unreachable_database_is_unavailable() -> None:
    db = Database("postgresql://nobody:x@127.0.0.1:1/none", pool_size=1)
    try:
        with pytest.raises(AppError) as exc:
            async with db.separate_transaction():
                pass
        assert exc.value.code is grpc.StatusCode.UNAVAILABLE
        assert exc.value.reason == "DATABASE_UNAVAILABLE"
    finally:
        await db.close()
