"""An exhausted connection pool, and connections the server drops, answer
UNAVAILABLE (retryable), never INTERNAL."""

import grpc
import psycopg
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


async def _backends(infra, name: str) -> list[int]:  # type: ignore[no-untyped-def]
    async with await psycopg.AsyncConnection.connect(
        database_url(infra.pg_admin_url, DEFAULT_DATABASE), autocommit=True
    ) as admin:
        rows = await (
            await admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
        ).fetchall()
    return [int(r[0]) for r in rows]


async def _terminate(infra, pids: list[int]) -> None:  # type: ignore[no-untyped-def]
    async with await psycopg.AsyncConnection.connect(
        database_url(infra.pg_admin_url, DEFAULT_DATABASE), autocommit=True
    ) as admin:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_connections_lost_under_a_transaction_are_unavailable_and_replaced(
    infra,  # type: ignore[no-untyped-def]
) -> None:
    name = "db-lost-connection-test"
    db = Database(
        database_url(infra.pg_admin_url, DEFAULT_DATABASE), pool_size=2, application_name=name
    )
    try:
        async with db.separate_transaction() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS lost_connection_probe (n int)"))
            await conn.execute(text("TRUNCATE lost_connection_probe"))
        # Killed in the middle of a transaction: UNAVAILABLE, nothing committed.
        with pytest.raises(AppError) as lost:
            async with db.separate_transaction() as conn:
                await conn.execute(text("INSERT INTO lost_connection_probe VALUES (1)"))
                await _terminate(infra, await _backends(infra, name))
                await conn.execute(text("INSERT INTO lost_connection_probe VALUES (2)"))
        assert lost.value.code is grpc.StatusCode.UNAVAILABLE
        assert lost.value.reason == "DATABASE_UNAVAILABLE"
        # Every connection of the pool killed while idle (a server restart):
        # the callers after it are served on new connections.
        await _terminate(infra, await _backends(infra, name))
        for n in (3, 4, 5):
            async with db.separate_transaction() as conn:
                await conn.execute(text("INSERT INTO lost_connection_probe VALUES (:n)"), {"n": n})
        async with db.separate_transaction() as conn:
            found = await conn.execute(text("SELECT n FROM lost_connection_probe ORDER BY n"))
            rows = found.all()
            await conn.execute(text("DROP TABLE lost_connection_probe"))
        assert [r.n for r in rows] == [3, 4, 5], "the lost transaction left nothing behind"
    finally:
        await db.close()
