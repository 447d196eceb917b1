"""Transactional outbox and its JetStream relay.

`add_event(conn, ...)` writes the event, wrapped in the contract's
`fintech.events.v1.EventEnvelope` (see services.platform.events), in the
caller's transaction; the row's payload is the serialized envelope and its
subject `fintech.events.<event_type>`. The relay
claims unpublished rows (`FOR UPDATE SKIP LOCKED`, bounded batch), publishes
each with `Nats-Msg-Id` = event id and marks it published in the same
transaction. If the relay dies between publish and commit the rows stay
unpublished and are published again; JetStream drops the copy inside the
stream's duplicate window, so subscribers see each event once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from google.protobuf import message
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.events import (
    causation_id_var,
    event_type_of,
    events_subject,
    new_envelope,
)
from services.platform.logs import request_id_var
from services.platform.tracing import current_trace_id, current_traceparent

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
EVENT_TYPE_HEADER = "Fintech-Event-Type"
MAX_BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
MAX_HEADERS = 32
DEFAULT_STREAM = "FINTECH"
DEFAULT_STREAM_SUBJECTS = ("fintech.>",)
DEFAULT_DUPLICATE_WINDOW_SECONDS = 600.0

_INSERT = text(
    "INSERT INTO outbox_events (id, subject, type, payload, headers)"
    " VALUES (:id, :subject, :type, :payload, :headers)"
).bindparams(bindparam("headers", type_=JSONB))
_CLAIM = text(
    "SELECT id, subject, type, payload, headers FROM outbox_events"
    " WHERE published_at IS NULL ORDER BY created_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
# One round trip before the insert: the envelope's source and occur_time come
# from the transaction itself, its subject_sequence from the aggregate's
# counter (taken in this transaction: a rollback gives the number back), and
# the NOTIFY (delivered only at commit, so its place in the transaction does
# not matter) wakes the schema's relay.
_CONTEXT = text(
    "WITH seq AS (INSERT INTO event_sequences (subject, last) VALUES (:aggregate, 1)"
    " ON CONFLICT (subject) DO UPDATE SET last = event_sequences.last + 1 RETURNING last)"
    " SELECT current_schema() AS source, now() AS occur_time,"
    " pg_notify('outbox_' || current_schema(), '')::text AS notified,"
    " (SELECT last FROM seq) AS sequence"
)
_MARK = text(
    "UPDATE outbox_events SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(:ids)"
)
_FAILED = text(
    "UPDATE outbox_events SET attempts = attempts + 1, last_error = :error WHERE id = :id"
)


def notify_channel(schema: str) -> str:
    return f"outbox_{schema}"


async def add_event(
    conn: AsyncConnection,
    *,
    event: message.Message,
    aggregate: str,
    event_id: uuid.UUID | None = None,
    headers: Mapping[str, str] | None = None,
) -> uuid.UUID:
    """Record `event` for publication when the caller's transaction commits.

    `event` must carry the `(fintech.api.v1.event_type)` option (asserted);
    `aggregate` is the resource name it is about (envelope.subject, e.g.
    "users/123"). The envelope's `source` is the connection's schema: each
    service writes through its own role whose search_path is its schema, which
    is the service name (FINTECH_DB_SCHEMA defaults to it), so callers cannot
    misattribute an event and the relay of that schema is the one publishing
    it. `occur_time` is the transaction's time, like the `now()` defaults of
    the rows written with it.
    """
    # Refuse a non-event before touching the transaction.
    subject = events_subject(event_type_of(event))
    event_id = event_id or uuid.uuid4()
    context = (await conn.execute(_CONTEXT, {"aggregate": aggregate})).one()
    request_id = request_id_var.get() or ""
    envelope = new_envelope(
        event,
        event_id=event_id,
        source=context.source,
        aggregate=aggregate,
        occur_time=context.occur_time,
        trace_id=current_trace_id() or "",
        request_id=request_id,
        causation_id=causation_id_var.get(),
        subject_sequence=context.sequence,
    )
    all_headers: dict[str, str] = dict(headers or {})
    traceparent = current_traceparent()
    if traceparent:
        all_headers.setdefault("traceparent", traceparent)
    if request_id:
        all_headers.setdefault("x-request-id", request_id)
    assert len(all_headers) <= MAX_HEADERS
    await conn.execute(
        _INSERT,
        {
            "id": event_id,
            "subject": subject,
            "type": envelope.event_type,
            "payload": envelope.SerializeToString(deterministic=True),
            "headers": all_headers,
        },
    )
    return event_id


async def ensure_stream(
    js: JetStreamContext,
    name: str = DEFAULT_STREAM,
    subjects: Sequence[str] = DEFAULT_STREAM_SUBJECTS,
    duplicate_window_seconds: float = DEFAULT_DUPLICATE_WINDOW_SECONDS,
) -> None:
    """Create the stream, or update it when it exists with another configuration."""
    config = StreamConfig(
        name=name, subjects=list(subjects), duplicate_window=duplicate_window_seconds
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        # "stream name already in use with a different configuration"
        await js.update_stream(config)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    stream: str = DEFAULT_STREAM
    stream_subjects: tuple[str, ...] = DEFAULT_STREAM_SUBJECTS
    duplicate_window_seconds: float = DEFAULT_DUPLICATE_WINDOW_SECONDS
    # Large: a batch is one claim, one pipelined publish and one mark.
    batch_size: int = MAX_BATCH_SIZE
    poll_interval_seconds: float = 1.0
    publish_timeout_seconds: float = 5.0
    backoff_base_seconds: float = 0.2
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert 1 <= self.batch_size <= MAX_BATCH_SIZE
        assert 0.01 <= self.poll_interval_seconds <= 60
        assert 0 < self.publish_timeout_seconds <= 60
        assert self.duplicate_window_seconds >= 60, "the window must outlast a relay restart"


class RelayPublishError(Exception):
    """A batch's publish failed part-way; the unpublished events stay in line."""


class OutboxRelay:
    def __init__(
        self, db: Database, js: JetStreamContext, schema: str, config: RelayConfig | None = None
    ) -> None:
        self.db = db
        self.js = js
        self.schema = schema
        self.config = config or RelayConfig()
        self._wake = asyncio.Event()

    @property
    def channel(self) -> str:
        return notify_channel(self.schema)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were published and marked.

        The batch's publishes are pipelined: every message is written to the
        connection in claim order, then all acknowledgements are awaited
        together (one round trip per batch instead of one per event; the
        relay was the ledger's bottleneck under batched load). Only the
        prefix before the first failed acknowledgement is marked published:
        the failing event and everything after it stay in line and go out
        again, and JetStream drops the ones it already stored (same
        Nats-Msg-Id inside the duplicate window).
        """
        async with self.db.separate_transaction() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self.config.batch_size})).all()
            if not rows:
                return 0
            outcomes = await self._publish_all(rows)
            failure = next(
                ((i, o) for i, o in enumerate(outcomes) if isinstance(o, BaseException)), None
            )
            ok = len(rows) if failure is None else failure[0]
            if ok:
                await self.mark_published(conn, [row.id for row in rows[:ok]])
            if failure is not None:
                index, exc = failure
                await conn.execute(
                    _FAILED,
                    {"id": rows[index].id, "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
        if failure is not None:
            raise RelayPublishError(str(failure[1])) from failure[1]
        return ok

    async def mark_published(self, conn: AsyncConnection, ids: list[uuid.UUID]) -> None:
        await conn.execute(_MARK, {"ids": ids})

    async def _publish_all(self, rows: Sequence[Any]) -> list[object]:
        """Each row's PubAck, or the exception that stands for it, in row order."""
        futures: list[asyncio.Future[Any]] = []
        outcomes: list[object] = []
        try:
            # One deadline for writing the whole batch, not nats-py's
            # `wait_stall`: given one, nats-py acquires its pending-publish
            # semaphore through asyncio.wait_for, which yields to the event
            # loop on every call, so the connection's flusher wrote each
            # message on its own (JetStream's CPU per event 12.5 us written
            # together, 64.5 us alone; the publisher's 33 and 99.5:
            # bench/README.md). This arms one timer, and yields only when a
            # publish really has to wait for the semaphore.
            async with asyncio.timeout(self.config.publish_timeout_seconds):
                for row in rows:
                    futures.append(
                        await self.js.publish_async(
                            row.subject,
                            bytes(row.payload),
                            stream=self.config.stream,
                            headers=self._headers(row),
                        )
                    )
        except Exception as exc:  # not written: it and what follows wait for the next round
            outcomes.append(exc)
        try:
            acks = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True),
                self.config.publish_timeout_seconds,
            )
        except TimeoutError as exc:
            # wait_for cancelled the acknowledgements still missing.
            acks = [
                f.result() if f.done() and not f.cancelled() and f.exception() is None else exc
                for f in futures
            ]
        for row, ack in zip(rows, acks, strict=False):
            if not isinstance(ack, BaseException) and ack.duplicate:
                log.info("event %s was already in the stream (duplicate dropped)", row.id)
        return [*acks, *outcomes]

    def _headers(self, row: Any) -> dict[str, str]:
        headers = dict(row.headers or {})
        headers.update(self.config.extra_headers)
        headers[MSG_ID_HEADER] = str(row.id)
        headers[EVENT_TYPE_HEADER] = row.type
        return headers

    async def run(self) -> None:
        """Relay forever: wake on NOTIFY or poll, drain, back off on failure."""
        await ensure_stream(
            self.js,
            self.config.stream,
            self.config.stream_subjects,
            self.config.duplicate_window_seconds,
        )
        listener = asyncio.create_task(self._listen(), name=f"outbox-listen-{self.schema}")
        failures = 0
        try:
            while True:
                try:
                    while await self.relay_once() == self.config.batch_size:
                        pass  # a full batch: more may be waiting
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = min(
                        MAX_BACKOFF_SECONDS,
                        self.config.backoff_base_seconds * 2 ** min(failures, 16),
                    )
                    log.warning("outbox relay failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_seconds)
                except TimeoutError:
                    pass
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self) -> None:
        """LISTEN on the schema's channel; a lost connection degrades to polling."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.db.url, autocommit=True
                ) as conn:
                    await conn.execute(
                        psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel))
                    )
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox LISTEN lost (%s); polling until it reconnects", exc)
                await asyncio.sleep(self.config.poll_interval_seconds * 5)
