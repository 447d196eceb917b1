"""The single batching writer (group commit), see docs/LEDGER.md.

Every write — CreateTransfers from any number of concurrent callers and the
expiry of due reservations — goes through one bounded queue. One task takes
what is waiting (up to MAX_BATCH_TRANSFERS transfers), applies it in ONE
transaction with a fixed number of statements, commits, and only then
completes each caller's future: only acknowledged transfers exist.

CreateTransfers' RPC idempotency record (the platform's `idempotency_keys`
row) is stored here too, in the batch transaction that commits the transfers
it answers for (`Recorded`, services.platform.idempotency's `Claim`): a call
costs no transaction of its own, and the stored answer and the effect commit
or vanish together. Under the journal-head lock the batch reads the records
of its calls' keys: a stored key is answered from its record (or
ALREADY_EXISTS for a different request) and applies nothing; a key repeated
within the batch is ABORTED (in flight), as the platform answers concurrent
calls with one key.

The writer has its own connection (writer_connection.py: raw psycopg, no
pool), apart from the reads' Database.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf import message
from prometheus_client import Histogram

from services.ledger import events, store, wire
from services.ledger.domain import engine, journal
from services.ledger.domain.model import (
    MAX_BATCH_TRANSFERS,
    AccountState,
    Applied,
    Rejected,
    TransferResult,
    TransferSpec,
)
from services.ledger.writer_connection import WriterConnection
from services.platform import idempotency
from services.platform.errors import AppError
from services.platform.logs import request_id_var
from services.platform.tracing import current_trace_id, current_traceparent

log = logging.getLogger(__name__)

MAX_QUEUED_JOBS = 4_096
MAX_EXPIRED_PER_BATCH = 1_000
EXPIRY_INTERVAL_SECONDS = 1.0

Items = Sequence[TransferSpec | Rejected]
# What a job comes back with: results, the API's response (a recorded call),
# an expiry count, or the error its caller gets.
Outcome = list[TransferResult] | message.Message | int | AppError

BATCH_TRANSFERS = Histogram(
    "ledger_writer_batch_transfers",
    "Transfers per writer batch (group commit size).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8000),
)
BATCH_SECONDS = Histogram(
    "ledger_writer_batch_seconds",
    "Writer batch time by phase: load (locks + reads), apply (engine, journal,"
    " events in memory), write (bulk statements), commit.",
    ["phase"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A call that stores its RPC idempotency record with its transfers."""

    claim: idempotency.Claim
    # Builds the API's response from the results; runs in the writer, before
    # COMMIT, because the record holds the serialised response. The batch's
    # Transfer messages are shared with its events (wire.TransferMessages).
    respond: Callable[[list[TransferResult], wire.TransferMessages], message.Message]


@dataclass(slots=True)
class _Job:
    items: Items | None  # None: an expiry tick
    origin: events.Origin
    future: asyncio.Future[Outcome] = field(repr=False)
    recorded: Recorded | None = None

    @property
    def size(self) -> int:
        return len(self.items) if self.items is not None else 1


@dataclass(frozen=True, slots=True)
class BatchStats:
    jobs: int
    transfers: int
    applied: int
    seconds: float


class LedgerWriter:
    def __init__(self, db: WriterConnection, *, max_batch: int = MAX_BATCH_TRANSFERS) -> None:
        assert 1 <= max_batch <= MAX_BATCH_TRANSFERS
        self.db = db
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=MAX_QUEUED_JOBS)
        self._carry: _Job | None = None
        self._expiry_queued = False
        self.last_batch: BatchStats | None = None

    async def submit(self, items: Items) -> list[TransferResult]:
        """Apply one request's transfers; returns after COMMIT (or raises)."""
        assert 0 < len(items) <= self.max_batch, len(items)
        result = await self._enqueue(items)
        assert isinstance(result, list)
        return result

    async def submit_recorded(self, items: Items, recorded: Recorded) -> message.Message:
        """As `submit`, storing the call's idempotency record; returns the response."""
        assert 0 < len(items) <= self.max_batch, len(items)
        result = await self._enqueue(items, recorded)
        assert isinstance(result, message.Message), type(result)
        return result

    async def expire_due(self) -> int:
        """Expire due reservations (at most MAX_EXPIRED_PER_BATCH); returns how many."""
        result = await self._enqueue(None)
        assert isinstance(result, int)
        return result

    async def _enqueue(self, items: Items | None, recorded: Recorded | None = None) -> Outcome:
        loop = asyncio.get_running_loop()
        origin = events.Origin(
            trace_id=current_trace_id() or "",
            request_id=request_id_var.get() or "",
            traceparent=current_traceparent() or "",
        )
        job = _Job(items, origin, loop.create_future(), recorded)
        await self._queue.put(job)  # bounded: a full queue pushes back on callers
        return await job.future

    async def run(self) -> None:
        """The writer loop: forever take a batch, apply it, complete its futures.
        Its connection closes when the loop ends (shutdown cancels it once the
        server has drained; a crash restarts it with a new connection)."""
        try:
            while True:
                jobs = await self._take()
                await self._process(jobs)
        finally:
            await self.db.close()

    async def run_expiry_ticker(self, interval: float = EXPIRY_INTERVAL_SECONDS) -> None:
        """Background: queue an expiry job every `interval` (one at a time)."""
        assert 0.01 <= interval <= 60
        while True:
            await asyncio.sleep(interval)
            try:
                while await self.expire_due() == MAX_EXPIRED_PER_BATCH:
                    pass  # a full round: more may be due
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry round failed; retrying next tick")

    async def _take(self) -> list[_Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        jobs, total = [first], first.size
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if total + job.size > self.max_batch:
                self._carry = job  # first of the next batch: arrival order is kept
                break
            jobs.append(job)
            total += job.size
        return jobs

    async def _process(self, jobs: list[_Job]) -> None:
        try:
            outcomes = await self._apply(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                log.exception("ledger batch failed")
                _fail(jobs[0], exc)
                return
            # Nothing was committed: run each job alone so a job that breaks the
            # batch (a bug caught by a CHECK) fails only its own caller.
            log.warning("ledger batch of %d jobs failed (%s); retrying one by one", len(jobs), exc)
            for job in jobs:
                try:
                    outcome = (await self._apply([job]))[0]
                except Exception as job_exc:
                    log.exception("ledger job failed")
                    _fail(job, job_exc)
                else:
                    _complete(job, outcome)
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            _complete(job, outcome)

    async def _apply(self, jobs: list[_Job]) -> list[Outcome]:
        started = time.perf_counter()
        due_limit = MAX_EXPIRED_PER_BATCH if any(job.items is None for job in jobs) else 0
        claims = {n: job.recorded.claim for n, job in enumerate(jobs) if job.recorded is not None}
        # Every job's transfers are read, in the same pipeline as the stored
        # records; a job those records answer then applies nothing (`specs`).
        named = [i for job in jobs if job.items for i in job.items if isinstance(i, TransferSpec)]
        wanted: set[uuid.UUID] = {s.id for s in named}
        wanted.update(s.pending_id for s in named if s.pending_id is not None)
        # Locked in the same round trip; a job answered by its record below
        # locks its accounts for nothing, which is harmless.
        named_accounts = {a for s in named for a in (s.debit_account, s.credit_account) if a}
        async with self.db.transaction() as conn:
            loaded = await store.load_batch(
                conn,
                [c.scope for c in claims.values()],
                wanted,
                named_accounts,
                due_limit=due_limit,
            )
            head, transfers, accounts = loaded.head, loaded.transfers, loaded.accounts
            answered = _answer_from_records(claims, loaded.records)
            specs = [
                i
                for n, job in enumerate(jobs)
                if job.items and n not in answered
                for i in job.items
                if isinstance(i, TransferSpec)
            ]
            # The accounts of the reservations the batch posts, voids or
            # expires, when its transfers did not name them: one more round trip.
            more = {
                a
                for t in transfers.values()
                for a in (t.debit_account, t.credit_account)
                if a not in named_accounts
            }
            if more:
                accounts.update(await store.lock_accounts(conn, more))
            loaded_at = time.perf_counter()
            ws = engine.WorkingSet(accounts, transfers, now=head.now, next_seq=head.seq + 1)
            messages = wire.TransferMessages()
            outcomes: list[Outcome] = []
            origins: list[events.Origin] = []
            records: list[idempotency.Record] = []
            due = [t.id for t in transfers.values() if t.expires_at and t.expires_at <= head.now]
            for n, job in enumerate(jobs):
                before = len(ws.applied)
                if n in answered:
                    outcomes.append(answered[n])
                elif job.items is None:
                    outcomes.append(len(engine.expire(ws, sorted(due))))
                elif job.recorded is None:
                    outcomes.append(engine.apply_batch(ws, job.items))
                else:
                    results = engine.apply_batch(ws, job.items)
                    response = job.recorded.respond(results, messages)
                    records.append(job.recorded.claim.row(response))
                    outcomes.append(response)
                origins.extend([job.origin] * (len(ws.applied) - before))
            prepared = (
                self._prepare(head, ws, origins, messages) if ws.applied else _NOTHING_APPLIED
            )
            applied_at = time.perf_counter()
            await store.write_batch(
                conn,
                prepared.applied,
                prepared.accounts,
                prepared.journal,
                prepared.outbox,
                records,
            )
            written = time.perf_counter()
        done = time.perf_counter()
        BATCH_TRANSFERS.observe(len(specs))
        for phase, seconds in (
            ("load", loaded_at - started),
            ("apply", applied_at - loaded_at),
            ("write", written - applied_at),
            ("commit", done - written),
        ):
            BATCH_SECONDS.labels(phase).observe(seconds)
        self.last_batch = BatchStats(len(jobs), len(specs), len(ws.applied), done - started)
        return outcomes

    @staticmethod
    def _prepare(
        head: store.Head,
        ws: engine.WorkingSet,
        origins: list[events.Origin],
        messages: wire.TransferMessages,
    ) -> _Prepared:
        """Everything the bulk statements need, computed in memory."""
        applied: list[Applied] = ws.applied
        assert applied[0].journal_seq == head.seq + 1
        # Sorted by the uuid's integer: the same order as sorting the UUIDs,
        # without a Python-level comparison per step.
        touched = sorted({e.account_id for op in applied for e in op.entries}, key=_uuid_int)
        return _Prepared(
            applied=applied,
            accounts=[ws.accounts[a] for a in touched],
            journal=journal.journal_records(applied, head.hash),
            outbox=events.outbox_rows(
                list(zip(applied, origins, strict=True)),
                source=head.schema,
                occur_time=head.now,
                messages=messages,
            ),
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    applied: list[Applied]
    accounts: list[AccountState]
    journal: list[journal.JournalRecord]
    outbox: list[tuple[uuid.UUID, str, str, bytes, str]]


_NOTHING_APPLIED = _Prepared([], [], [], [])


def _uuid_int(value: uuid.UUID) -> int:
    return value.int


def _answer_from_records(
    claims: dict[int, idempotency.Claim], stored: store.StoredRecords
) -> dict[int, Outcome]:
    """Recorded jobs answered without applying anything, by position in the
    batch: a stored key replays its record (or ALREADY_EXISTS), a key repeated
    within the batch is in flight (ABORTED). `stored` was read under the
    journal-head lock."""
    answered: dict[int, Outcome] = {}
    first: set[store.Scope] = set()
    for n, claim in claims.items():
        record = stored.get(claim.scope)
        if record is not None:
            try:
                answered[n] = claim.replay(*record)
            except AppError as exc:
                answered[n] = exc
        elif claim.scope in first:
            answered[n] = idempotency.in_flight_error()
        else:
            first.add(claim.scope)
    return answered


def _complete(job: _Job, outcome: Outcome) -> None:
    if isinstance(outcome, AppError):
        _fail(job, outcome)
        return
    if job.recorded is not None:
        job.recorded.claim.recorded = True  # committed with the batch, or replayed
    if not job.future.done():  # a caller that gave up (deadline) was cancelled
        job.future.set_result(outcome)


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
