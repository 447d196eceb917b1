"""Async SQLAlchemy 2 engine (psycopg 3) with a bounded pool and a re-entrant transaction.

`db.transaction()` joins the transaction already open in the current context
(the idempotency interceptor opens one around the handler), so the effect, the
outbox event, the audit row and the idempotency record commit together.
`db.after_commit(callback)` runs a callback once that outermost transaction has
committed (never after a rollback): for work that must see committed rows.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Executable, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.platform.errors import AppError, unavailable

log = logging.getLogger(__name__)

MAX_POOL_SIZE = 50
DEFAULT_POOL_SIZE = 10
DEFAULT_STATEMENT_TIMEOUT_MS = 5_000
MAX_STATEMENT_TIMEOUT_MS = 60_000
POOL_TIMEOUT_SECONDS = 5.0
MAX_AFTER_COMMIT_CALLBACKS = 1_000  # per transaction: a loop registering forever is a bug


def database_unavailable() -> AppError:
    """The retryable answer when the database cannot be reached (or a connection
    to it was lost): every service's, whatever its driver."""
    return unavailable("DATABASE_UNAVAILABLE", "the database is not reachable; retry shortly")


def sqlalchemy_url(url: str) -> str:
    """postgresql://… → postgresql+psycopg://… (the URL form in the environment)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def libpq_url(url: str) -> str:
    """The plain libpq form, for raw psycopg connections (LISTEN, migrations)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        application_name: str = "fintech",
        pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        assert 1 <= pool_size <= MAX_POOL_SIZE, pool_size
        assert 0 < pool_timeout_seconds <= 60, pool_timeout_seconds
        assert 1 <= statement_timeout_ms <= MAX_STATEMENT_TIMEOUT_MS, statement_timeout_ms
        self.url = libpq_url(url)
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=0,  # the pool size *is* the bound
            pool_timeout=pool_timeout_seconds,
            pool_pre_ping=True,
            connect_args={
                "options": f"-c statement_timeout={statement_timeout_ms}",
                "application_name": application_name,
            },
        )
        # One context variable per Database so two databases never join each other.
        self._current: contextvars.ContextVar[AsyncConnection | None] = contextvars.ContextVar(
            f"fintech_db_tx_{id(self)}", default=None
        )
        self._after_commit: contextvars.ContextVar[list[Callable[[], None]] | None] = (
            contextvars.ContextVar(f"fintech_db_after_commit_{id(self)}", default=None)
        )

    def current_connection(self) -> AsyncConnection | None:
        return self._current.get()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after the current (outermost) transaction commits.

        Not run at all if it rolls back. Callbacks run in registration order,
        synchronously, and must not raise (an error is logged, not re-raised:
        the transaction has already committed, so the caller has succeeded).
        """
        callbacks = self._after_commit.get()
        assert callbacks is not None, "after_commit outside a transaction"
        assert len(callbacks) < MAX_AFTER_COMMIT_CALLBACKS, "too many after-commit callbacks"
        callbacks.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Open a transaction, or join the one already open in this context."""
        outer = self._current.get()
        if outer is not None:
            yield outer
            return
        async with self.separate_transaction() as conn:
            yield conn

    @asynccontextmanager
    async def separate_transaction(self) -> AsyncIterator[AsyncConnection]:
        """Always a new transaction (e.g. a call log that must survive a rollback)."""
        try:
            conn = await self.engine.connect()  # the pool checkout happens here
        except sqlalchemy.exc.TimeoutError as exc:
            # Every connection is busy for longer than the pool timeout: an
            # overload, not a bug. Callers get a retryable status, not INTERNAL.
            raise unavailable("DATABASE_BUSY", "the service is busy; retry shortly") from exc
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            raise database_unavailable() from exc
        callbacks: list[Callable[[], None]] = []
        try:
            async with conn.begin():
                token = self._current.set(conn)
                pending = self._after_commit.set(callbacks)
                try:
                    yield conn
                finally:
                    self._after_commit.reset(pending)
                    self._current.reset(token)
        except sqlalchemy.exc.DBAPIError as exc:
            # The server went away under the transaction (a restart, a
            # failover, a killed backend): nothing of it committed, so the
            # caller may retry. SQLAlchemy has already invalidated the pool's
            # connections from before, so the retry gets a new one.
            if exc.connection_invalidated:
                raise database_unavailable() from exc
            raise
        finally:
            await conn.close()
        # Reached only when the body returned and COMMIT succeeded.
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        async with self.transaction() as conn:
            return await conn.execute(statement, params)

    async def fetch_one(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Any | None:
        """The first row (mapping-like `Row`) or None."""
        async with self.transaction() as conn:
            return (await conn.execute(statement, params)).first()

    async def fetch_all(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        async with self.transaction() as conn:
            return list((await conn.execute(statement, params)).all())

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        async with self.transaction() as conn:
            return await conn.scalar(statement, params)

    async def close(self) -> None:
        await self.engine.dispose()
