"""The writer's one dedicated Postgres connection: psycopg, no pool, no ORM.

Why not the platform's Database (SQLAlchemy over a pool): the writer is one
task running one transaction at a time, and under load its batches are short
of CPU, not of connections. Through SQLAlchemy each statement cost ~0.2 ms of
Python (compile cache, result wrapping, greenlet switches) and each batch two
more round trips (the pool's pre-ping and its reset-on-return ROLLBACK); every
round trip is also a full turn of a busy event loop. Here a batch is its
statements and one COMMIT, with the reads sent as one pipeline
(store.load_batch). psycopg prepares a statement on the server after its
fifth execution, so the fixed statements are parsed and planned once.

Failures are the platform's: a database that cannot be reached, or a
connection lost mid-batch, is UNAVAILABLE `DATABASE_UNAVAILABLE` (retryable:
every write is idempotent by transfer id and RPC key, so a retry after a lost
COMMIT answer applies nothing twice). A broken connection is dropped and the
next batch opens a new one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from services.platform.db import (
    DEFAULT_STATEMENT_TIMEOUT_MS,
    MAX_STATEMENT_TIMEOUT_MS,
    database_unavailable,
    libpq_url,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5

PgConnection = psycopg.AsyncConnection[tuple[Any, ...]]


class WriterConnection:
    """One connection, used by one task at a time (the writer loop)."""

    def __init__(
        self,
        url: str,
        *,
        application_name: str = "ledger-writer",
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    ) -> None:
        assert 1 <= statement_timeout_ms <= MAX_STATEMENT_TIMEOUT_MS, statement_timeout_ms
        self.url = libpq_url(url)
        self._application_name = application_name
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: PgConnection | None = None
        self._busy = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:
        """A transaction on the connection; COMMIT when the body returns."""
        assert not self._busy, "the writer's connection serves one transaction at a time"
        self._busy = True
        try:
            conn = await self._connection()
            try:
                yield conn
                await conn.commit()
            except BaseException as exc:
                await self._after_failure(conn)
                if isinstance(exc, psycopg.OperationalError):
                    raise database_unavailable() from exc
                raise
        finally:
            self._busy = False

    async def _connection(self) -> PgConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=False,  # the first statement opens the batch's transaction
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=self._application_name,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
            )
        except psycopg.OperationalError as exc:
            raise database_unavailable() from exc
        return self._conn

    async def _after_failure(self, conn: PgConnection) -> None:
        """Roll back; a connection that cannot even do that is dropped."""
        if conn.broken or conn.closed:
            await self._drop()
            return
        try:
            await conn.rollback()
        except psycopg.Error:
            log.warning("the writer's connection failed its rollback; reconnecting")
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    async def close(self) -> None:
        await self._drop()
