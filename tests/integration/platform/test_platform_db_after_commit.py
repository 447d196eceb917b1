"""Database.after_commit: callbacks run once the outermost transaction has
committed, never after a rollback, and see the committed rows."""

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from services.platform.db import Database
from services.platform.migrate import DEFAULT_DATABASE, database_url

# Rows are told apart by a token per test, so runs never see each other's.
_CREATE = text("CREATE TABLE IF NOT EXISTS platform_after_commit_probe (token uuid NOT NULL)")
_INSERT = text("INSERT INTO platform_after_commit_probe (token) VALUES (:token)")
_COUNT = text("SELECT count(*) FROM platform_after_commit_probe WHERE token = :token")


@pytest.fixture
async def db(infra) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    database = Database(database_url(infra.pg_admin_url, DEFAULT_DATABASE), pool_size=2)
    async with database.separate_transaction() as conn:
        await conn.execute(_CREATE)
    try:
        yield database
    finally:
        await database.close()


async def _count(db: Database, token: uuid.UUID) -> int:
    async with db.separate_transaction() as conn:
        return int(await conn.scalar(_COUNT, {"token": token}))


async def test_callbacks_run_after_the_outermost_commit_in_order(db: Database) -> None:
    token = uuid.uuid4()
    seen: list[int] = []
    async with db.transaction() as conn:
        await conn.execute(_INSERT, {"token": token})
        db.after_commit(lambda: seen.append(1))
        async with db.transaction():  # joins the outer one
            db.after_commit(lambda: seen.append(2))
        assert seen == []  # nothing before the commit, not even at the inner exit
    assert seen == [1, 2]
    assert await _count(db, token) == 1


async def test_no_callback_after_a_rollback(db: Database) -> None:
    token = uuid.uuid4()
    seen: list[int] = []
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(_INSERT, {"token": token})
            db.after_commit(lambda: seen.append(1))
            raise RuntimeError("the handler failed")
    assert seen == []
    assert await _count(db, token) == 0


async def test_a_failing_callback_neither_undoes_the_commit_nor_stops_the_others(
    db: Database,
) -> None:
    token = uuid.uuid4()
    seen: list[int] = []

    def broken() -> None:
        raise ValueError("a bug in a callback")

    async with db.transaction() as conn:
        await conn.execute(_INSERT, {"token": token})
        db.after_commit(broken)
        db.after_commit(lambda: seen.append(2))
    assert seen == [2]
    assert await _count(db, token) == 1


async def test_after_commit_outside_a_transaction_is_a_bug(db: Database) -> None:
    with pytest.raises(AssertionError):
        db.after_commit(lambda: None)
