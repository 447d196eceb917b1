"""Idempotent durable JetStream pull consumer.

Each message's handler runs in a DB transaction together with an insert into
`processed_events (consumer, event_id)`; a redelivered event finds its row and
is acknowledged without running the handler again. The ack is sent only after
commit, so a crash in between means a redelivery that is then skipped.

Messages are `fintech.events.v1.EventEnvelope`s (services.platform.events);
one that is not is a poison message: it is terminated without reaching the
handler (see `DurableConsumer.handle`).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import message
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.events import EventEnvelope, causation_id_var
from services.platform.outbox import MSG_ID_HEADER

log = logging.getLogger(__name__)

MAX_BATCH = 100
MAX_DELIVER_LIMIT = 50
MAX_NAK_DELAY_SECONDS = 300.0

_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)"
    " ON CONFLICT DO NOTHING RETURNING 1"
)


M = TypeVar("M", bound=message.Message)


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # envelope.event_id (= Nats-Msg-Id)
    subject: str  # the NATS subject, fintech.events.<type>
    type: str  # envelope.event_type
    data: bytes  # the raw message: the serialized envelope
    headers: Mapping[str, str]
    delivery: int
    envelope: EventEnvelope

    # builtins.type: the field `type` shadows the builtin in the class body.
    def unpack(self, message_cls: builtins.type[M]) -> M:
        """The payload as `message_cls`; TypeError when it holds another message."""
        out = message_cls()
        # Unpack checks the Any's type URL against the class: a handler that
        # names the wrong class fails loudly instead of reading garbage.
        if not self.envelope.payload.Unpack(out):
            raise TypeError(
                f"event {self.id} ({self.type}) carries {self.envelope.payload.type_url},"
                f" not {message_cls.DESCRIPTOR.full_name}"
            )
        return out


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
            # Poison: not an envelope (or one without its ids). No redelivery can
            # fix its bytes, and a nak would hold a max_ack_pending slot for
            # max_deliver rounds while the handler could only fail or misread
            # it; term stops redelivery and JetStream publishes a
            # MSG_TERMINATED advisory that operators can alert on.
            log.error(
                "message on %s (seq %s) is not a valid event envelope: terminated",
                msg.subject,
                msg.metadata.sequence.stream,
            )
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
            cause = causation_id_var.set(event.id)  # events the handler writes name it
            try:
                await self.handler(conn, event)
            finally:
                causation_id_var.reset(cause)
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
    """The event in `msg`, or None when it is not a valid envelope (poison)."""
    headers = dict(msg.headers or {})
    try:
        envelope = EventEnvelope.FromString(msg.data)
    except DecodeError:
        return None
    # Arbitrary protobuf bytes often parse as *some* envelope (field 1 is a
    # string in many messages), so the fields every producer sets are checked.
    if not (envelope.event_id and envelope.event_type and envelope.HasField("payload")):
        return None
    # Both are the dedup key (JetStream's and processed_events'): a message
    # where they differ was not written by the outbox and cannot be deduplicated.
    msg_id = headers.get(MSG_ID_HEADER)
    if msg_id is not None and msg_id != envelope.event_id:
        return None
    return Event(
        id=envelope.event_id,
        subject=msg.subject,
        type=envelope.event_type,
        data=msg.data,
        headers=headers,
        delivery=msg.metadata.num_delivered,
        envelope=envelope,
    )
