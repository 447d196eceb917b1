"""The writer's own connection: a lost connection is UNAVAILABLE (retryable),
rolls nothing half-way, and the next batch reconnects; an unreachable
database is UNAVAILABLE too; a failed statement leaves the connection usable."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from services.ledger.writer_connection import WriterConnection
from services.platform.errors import AppError
from services.platform.migrate import DEFAULT_DATABASE, database_url


async def _admin(infra) -> psycopg.AsyncConnection:  # type: ignore[no-untyped-def]
    return await psycopg.AsyncConnection.connect(
        database_url(infra.pg_admin_url, DEFAULT_DATABASE), autocommit=True
    )


async def test_a_killed_connection_is_unavailable_commits_nothing_and_the_next_batch_reconnects(
    infra,  # type: ignore[no-untyped-def]
) -> None:
    writer = WriterConnection(database_url(infra.pg_admin_url, DEFAULT_DATABASE))
    admin = await _admin(infra)
    try:
        await admin.execute("CREATE TABLE IF NOT EXISTS writer_connection_probe (n int)")
        await admin.execute("TRUNCATE writer_connection_probe")
        async with writer.transaction() as conn:
            backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
        with pytest.raises(AppError) as lost:
            async with writer.transaction() as conn:
                await conn.execute("INSERT INTO writer_connection_probe VALUES (1)")
                await admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
                await conn.execute("INSERT INTO writer_connection_probe VALUES (2)")
        assert lost.value.code is grpc.StatusCode.UNAVAILABLE
        assert lost.value.reason == "DATABASE_UNAVAILABLE"
        async with writer.transaction() as conn:  # a new connection
            await conn.execute("INSERT INTO writer_connection_probe VALUES (3)")
            again = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
        assert again != backend
        rows = await (
            await admin.execute("SELECT n FROM writer_connection_probe ORDER BY n")
        ).fetchall()
        assert rows == [(3,)], "the lost batch left nothing behind"
    finally:
        await admin.execute("DROP TABLE IF EXISTS writer_connection_probe")
        await admin.close()
        await writer.close()


async def test_a_failed_statement_rolls_back_and_keeps_the_connection(infra) -> None:  # type: ignore[no-untyped-def]
    writer = WriterConnection(database_url(infra.pg_admin_url, DEFAULT_DATABASE))
    try:
        async with writer.transaction() as conn:
            backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with writer.transaction() as conn:
                await conn.execute("SELECT 1 / 0")
        async with writer.transaction() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid(), 1")).fetchone()
        assert row == (backend, 1)
    finally:
        await writer.close()


async def test_an_unreachable_database_is_unavailable() -> None:
    writer = WriterConnection("postgresql://nobody:x@127.0.0.1:1/none")
    with pytest.raises(AppError) as exc:
        async with writer.transaction():
            pass
    assert exc.value.code is grpc.StatusCode.UNAVAILABLE
    assert exc.value.reason == "DATABASE_UNAVAILABLE"
