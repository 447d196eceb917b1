"""Idempotent durable JetStream pull consumer.

Each message's handler runs in a DB transaction together with an insert into
`processed_events (consumer, event_id)`; a redelivered event finds its row and
is acknowledged without running the handler again. The ack is sent only after
commit, so a crash in between means a redelivery that is then skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.outbox import EVENT_TYPE_HEADER, MSG_ID_HEADER

log = logging.getLogger(__name__)

MAX_BATCH = 100
MAX_DELIVER_LIMIT = 50
MAX_NAK_DELAY_SECONDS = 300.0

_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)"
    " ON CONFLICT DO NOTHING RETURNING 1"
)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    subject: str
    type: str
    data: bytes
    headers: Mapping[str, str]
    delivery: int


Handler = Callable[[AsyncConnection, Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    stream: str
    durable: str
    filter_subject: str
    batch_size: int = 10
    max_deliver: int = 10
    ack_wait_seconds: float = 30.0
    fetch_timeout_seconds: float = 2.0
    nak_base_delay_seconds: float = 1.0

    def __post_init__(self) -> None:
        assert 1 <= self.batch_size <= MAX_BATCH
        assert 1 <= self.max_deliver <= MAX_DELIVER_LIMIT
        assert 1 <= self.ack_wait_seconds <= 600
        assert 0 < self.fetch_timeout_seconds <= 30
        assert self.durable.replace("-", "_").isidentifier(), self.durable

    def nak_delay(self, delivery: int) -> float:
        return min(MAX_NAK_DELAY_SECONDS, self.nak_base_delay_seconds * 2 ** max(0, delivery - 1))


class DurableConsumer:
    def __init__(
        self, db: Database, js: JetStreamContext, settings: ConsumerSettings, handler: Handler
    ) -> None:
        self.db = db
        self.js = js
        self.settings = settings
        self.handler = handler
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        if self._subscription is None:
            s = self.settings
            self._subscription = await self.js.pull_subscribe(
                s.filter_subject,
                durable=s.durable,
                stream=s.stream,
                config=ConsumerConfig(
                    durable_name=s.durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    max_deliver=s.max_deliver,
                    ack_wait=s.ack_wait_seconds,
                    # In-flight bound: at most one batch unacknowledged.
                    max_ack_pending=s.batch_size,
                    filter_subject=s.filter_subject,
                ),
            )
        return self._subscription

    async def consume_once(self) -> int:
        """Fetch and handle one batch; returns how many messages were fetched."""
        subscription = await self.subscribe()
        try:
            messages = await subscription.fetch(
                self.settings.batch_size, timeout=self.settings.fetch_timeout_seconds
            )
        except TimeoutError:
            return 0
        for msg in messages:
            await self.handle(msg)
        return len(messages)

    async def handle(self, msg: Msg) -> bool:
        """Process one message; True when the handler ran (False: duplicate or failure)."""
        event = event_from_msg(msg)
        if event is None:
            log.error("message on %s without %s: terminated", msg.subject, MSG_ID_HEADER)
            await msg.term()
            return False
        event_id, delivery = event.id, event.delivery
        try:
            ran = await self.process(event)
        except Exception:
            if delivery >= self.settings.max_deliver:
                log.exception(
                    "event %s failed on its last delivery (%d); giving up", event_id, delivery
                )
                await msg.term()
            else:
                log.exception("event %s failed (delivery %d); will retry", event_id, delivery)
                await msg.nak(delay=self.settings.nak_delay(delivery))
            return False
        await msg.ack()
        return ran

    async def process(self, event: Event) -> bool:
        """Run the handler once per (consumer, event id); False when already processed."""
        async with self.db.separate_transaction() as conn:
            first = (
                await conn.execute(
                    _CLAIM, {"consumer": self.settings.durable, "event_id": event.id}
                )
            ).first()
            if first is None:
                log.info("event %s already processed by %s", event.id, self.settings.durable)
                return False
            await self.handler(conn, event)
            return True

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self.consume_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning(
                    "consumer %s failed (%s); retrying in %.1fs", self.settings.durable, exc, delay
                )
                await asyncio.sleep(delay)


def event_from_msg(msg: Msg) -> Event | None:
    headers = dict(msg.headers or {})
    event_id = headers.get(MSG_ID_HEADER)
    if not event_id:
        return None
    return Event(
        id=event_id,
        subject=msg.subject,
        type=headers.get(EVENT_TYPE_HEADER, ""),
        data=msg.data,
        headers=headers,
        delivery=msg.metadata.num_delivered,
    )
