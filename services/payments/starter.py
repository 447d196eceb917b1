"""Starts each payment's workflow once its payment has committed.

Why not inside CreatePayment's transaction: starting a workflow is a round
trip to Temporal, whose latency grows with its load; held inside the request
it made acceptance as slow as Temporal and kept a database connection busy
meanwhile (the pool ran dry at 100 payments/s). Now CreatePayment commits the
payment (`workflow_started = false`) and registers an after-commit callback;
this starter starts the workflow in the background and marks the payment.

Nothing is lost: if the process dies between the commit and the start, or
Temporal is down, the payment stays unmarked and the sweep (every
SWEEP_INTERVAL_S) starts it. Starting twice is harmless: the workflow id is
derived from the payment id and a second start is rejected as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from services.platform.db import Database

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000  # beyond it the sweep picks payments up (a burst, or Temporal down)
STARTERS = 8  # concurrent starts: Temporal's own latency, not our CPU, bounds a start
SWEEP_INTERVAL_S = 2.0
# A payment younger than this is left to the after-commit path.
SWEEP_MIN_AGE_S = 5.0
SWEEP_BATCH = 500
RETRY_PAUSE_S = 1.0  # after a failed start, so a Temporal outage is not hammered

StartFn = Callable[[uuid.UUID, str], Awaitable[None]]

_UNSTARTED = text(
    "SELECT id, method FROM payments WHERE NOT workflow_started"
    " AND created_at < now() - make_interval(secs => :age)"
    " ORDER BY created_at LIMIT :limit"
)
_MARK = text("UPDATE payments SET workflow_started = true WHERE id = :id AND NOT workflow_started")


class WorkflowStarter:
    def __init__(self, db: Database, start: StartFn) -> None:
        self._db = db
        self._start = start
        self._queue: asyncio.Queue[tuple[uuid.UUID, str]] = asyncio.Queue(MAX_QUEUED)
        self._queued: set[uuid.UUID] = set()  # queued or being started: not queued again

    def submit(self, payment_id: uuid.UUID, method: str) -> None:
        """Queue a start (from an after-commit callback: never blocks, never raises)."""
        if payment_id in self._queued:
            return
        try:
            self._queue.put_nowait((payment_id, method))
        except asyncio.QueueFull:
            log.warning("workflow start queue full; the sweep will start %s", payment_id)
            return
        self._queued.add(payment_id)

    async def run(self) -> None:
        """The starters and the sweep, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for i in range(STARTERS):
                group.create_task(self._starter(), name=f"payments-starter-{i}")
            group.create_task(self._sweeper(), name="payments-start-sweep")

    async def start_one(self, payment_id: uuid.UUID, method: str) -> None:
        await self._start(payment_id, method)
        async with self._db.separate_transaction() as conn:
            await conn.execute(_MARK, {"id": payment_id})

    async def sweep_once(self) -> int:
        """Queue every payment whose start is overdue; how many were found."""
        async with self._db.separate_transaction() as conn:
            rows = (
                await conn.execute(_UNSTARTED, {"age": SWEEP_MIN_AGE_S, "limit": SWEEP_BATCH})
            ).all()
        for row in rows:
            self.submit(row.id, row.method)
        return len(rows)

    async def _starter(self) -> None:
        while True:
            payment_id, method = await self._queue.get()
            try:
                await self.start_one(payment_id, method)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Left unmarked: the sweep retries it.
                log.warning("starting the workflow of %s failed", payment_id, exc_info=True)
                await asyncio.sleep(RETRY_PAUSE_S)
            finally:
                self._queued.discard(payment_id)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                found = await self.sweep_once()
                if found:
                    log.info("sweep queued %d payments whose workflow was not started", found)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workflow start sweep failed; retrying next interval")
