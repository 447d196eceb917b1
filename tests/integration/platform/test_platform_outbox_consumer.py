"""Outbox relay → JetStream → idempotent durable consumer, against real servers.

Events travel as EventEnvelopes on `fintech.events.<event_type>` in the real
FINTECH stream; each test uses its own event type (see `event_class_for_run`)
and purges its subjects afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from google.protobuf import message, wrappers_pb2
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.app import close_nats
from services.platform.consumer import ConsumerSettings, DurableConsumer, Event, event_from_msg
from services.platform.db import Database
from services.platform.events import EventEnvelope, event_type_of, events_subject
from services.platform.logs import request_id_var
from services.platform.outbox import (
    EVENT_TYPE_HEADER,
    MSG_ID_HEADER,
    OutboxRelay,
    RelayConfig,
    RelayPublishError,
    add_event,
    ensure_stream,
)
from tests.integration.platform.platform_it_support import (
    ServiceSchema,
    event_class_for_run,
    provision,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def schema(infra) -> Iterator[ServiceSchema]:  # type: ignore[no-untyped-def]
    svc = provision(infra.pg_admin_url, "ptevt")
    yield svc
    svc.drop()


@dataclass
class Env:
    db: Database
    js: JetStreamContext
    config: RelayConfig
    thing: type[message.Message]  # ThingHappened, with this run's event type
    durables: list[str] = field(default_factory=list)

    @property
    def event_type(self) -> str:
        return event_type_of(self.thing())

    @property
    def subject(self) -> str:
        return events_subject(self.event_type)

    def event(self, thing: str) -> message.Message:
        return self.thing(thing=thing)

    def consumer(self, handler: Any) -> DurableConsumer:
        settings = ConsumerSettings(
            stream=self.config.stream,
            durable=f"pt_{secrets.token_hex(3)}",
            filter_subject=self.subject,
            batch_size=5,
            ack_wait_seconds=1,
            fetch_timeout_seconds=0.5,
            nak_base_delay_seconds=0.1,
        )
        self.durables.append(settings.durable)
        return DurableConsumer(self.db, self.js, settings, handler)


@pytest.fixture
async def env(infra, schema: ServiceSchema) -> AsyncIterator[Env]:  # type: ignore[no-untyped-def]
    # The production stream configuration: identical to what every relay
    # ensures, so creating it here never changes a running stack's stream.
    config = RelayConfig(batch_size=10, poll_interval_seconds=0.1)
    db = Database(schema.url, pool_size=4)
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    await ensure_stream(js, config.stream, config.stream_subjects, config.duplicate_window_seconds)
    e = Env(db, js, config, event_class_for_run(secrets.token_hex(4)))
    yield e
    for durable in e.durables:
        await js.delete_consumer(config.stream, durable)
    await js.purge_stream(config.stream, subject=e.subject)
    await nc.close()
    await db.close()


async def stored_count(e: Env) -> int:
    info = await e.js.stream_info(e.config.stream, subjects_filter=e.subject)
    return sum((info.state.subjects or {}).values())


async def stream_messages(e: Env) -> list[Any]:
    """Every message on this run's subject, oldest first."""
    count = await stored_count(e)
    sub = await e.js.subscribe(e.subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    try:
        return [await sub.next_msg(timeout=2) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def unpublished(db: Database) -> int:
    return int(
        await db.scalar(text("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"))
    )


async def test_relay_publishes_committed_events_once_as_envelopes(
    env: Env, schema: ServiceSchema
) -> None:
    relay = OutboxRelay(env.db, env.js, "unused", env.config)
    token = request_id_var.set("req-outbox-1")
    try:
        async with env.db.transaction() as conn:
            event_id = await add_event(conn, event=env.event("u1"), aggregate="things/1")
        with pytest.raises(RuntimeError):
            async with env.db.transaction() as conn:
                await add_event(conn, event=env.event("rolled-back"), aggregate="things/2")
                raise RuntimeError("caller failed: the event must vanish with it")
    finally:
        request_id_var.reset(token)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert await unpublished(env.db) == 0

    (msg,) = await stream_messages(env)
    assert (
        msg.subject == f"fintech.events.platformtest.{env.event_type.split('.')[1]}.thing_happened"
    )
    assert msg.headers[MSG_ID_HEADER] == str(event_id)
    assert msg.headers[EVENT_TYPE_HEADER] == env.event_type
    assert msg.headers["x-request-id"] == "req-outbox-1"
    envelope = EventEnvelope.FromString(msg.data)
    assert envelope.event_id == msg.headers[MSG_ID_HEADER]
    assert envelope.event_type == env.event_type  # from the message's option
    assert envelope.source == schema.name  # the connection's schema
    assert envelope.subject == "things/1"
    assert envelope.request_id == "req-outbox-1"
    assert envelope.schema_version == 1
    occurred = envelope.occur_time.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - occurred) < timedelta(minutes=1)
    payload = env.thing()
    assert envelope.payload.Unpack(payload)
    assert payload == env.event("u1")


async def test_event_without_event_type_option_is_refused(env: Env) -> None:
    with pytest.raises(AssertionError, match="event_type"):
        async with env.db.transaction() as conn:
            await add_event(conn, event=wrappers_pb2.StringValue(value="x"), aggregate="things/1")
    assert await unpublished(env.db) == 0
    assert await env.db.scalar(text("SELECT count(*) FROM outbox_events WHERE type = ''")) == 0


class CrashBeforeMark(OutboxRelay):
    """A relay that dies after JetStream acknowledged, before the rows are marked."""

    async def mark_published(self, conn: AsyncConnection, ids: list[uuid.UUID]) -> None:
        raise ConnectionError("relay crashed")


async def test_crash_after_publish_is_deduplicated(env: Env) -> None:
    async with env.db.transaction() as conn:
        for i in range(3):
            await add_event(conn, event=env.event(str(i)), aggregate=f"things/{i}")
    with pytest.raises(ConnectionError):
        await CrashBeforeMark(env.db, env.js, "unused", env.config).relay_once()
    assert await unpublished(env.db) == 3  # the claim rolled back
    assert await stored_count(env) == 3
    assert await OutboxRelay(env.db, env.js, "unused", env.config).relay_once() == 3
    assert await stored_count(env) == 3  # duplicates dropped (Nats-Msg-Id)
    assert await unpublished(env.db) == 0
    envelopes = [EventEnvelope.FromString(m.data) for m in await stream_messages(env)]
    assert [e.subject for e in envelopes] == ["things/0", "things/1", "things/2"]


async def test_a_failure_inside_a_pipelined_batch_keeps_the_rest_in_line(env: Env) -> None:
    """The relay writes a whole batch before awaiting the acknowledgements. An
    event JetStream refuses (here: a subject no stream binds, so no responder)
    must stop the marking at it: the events before it are marked, it records
    the error, and the ones after it, though stored, stay unpublished until
    it goes out; republishing them stores nothing twice."""
    async with env.db.transaction() as conn:
        for i in range(5):
            await add_event(conn, event=env.event(str(i)), aggregate=f"things/{i}")
    third = await env.db.scalar(
        text(
            "SELECT id FROM outbox_events WHERE published_at IS NULL"
            " ORDER BY created_at, id OFFSET 2 LIMIT 1"
        )
    )
    async with env.db.transaction() as conn:
        await conn.execute(
            text("UPDATE outbox_events SET subject = 'nowhere.bound' WHERE id = :id"),
            {"id": third},
        )
    relay = OutboxRelay(env.db, env.js, "unused", env.config)
    with pytest.raises(RelayPublishError):
        await relay.relay_once()
    assert await unpublished(env.db) == 3  # the refused event and the two after it
    refused = (
        await env.db.execute(
            text("SELECT attempts, last_error FROM outbox_events WHERE id = :id"), {"id": third}
        )
    ).one()
    assert refused.attempts == 1 and refused.last_error
    assert await stored_count(env) == 4  # 0, 1 and the pipelined 3, 4
    async with env.db.transaction() as conn:  # an operator fixes the event
        await conn.execute(
            text("UPDATE outbox_events SET subject = :s WHERE id = :id"),
            {"s": env.subject, "id": third},
        )
    assert await relay.relay_once() == 3
    assert await unpublished(env.db) == 0
    assert await stored_count(env) == 5  # 3 and 4 were not stored twice
    envelopes = [EventEnvelope.FromString(m.data) for m in await stream_messages(env)]
    assert sorted(e.subject for e in envelopes) == [f"things/{i}" for i in range(5)]


async def test_a_batch_is_written_without_yielding_between_its_events(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay writes a whole batch before the event loop runs anything
    else, so nats-py's flusher sends it in one write rather than one write per
    event. Publishing with `wait_stall` yielded on every event (nats-py waits
    for its semaphore through asyncio.wait_for), which made each event cost
    JetStream five times the CPU (bench/README.md)."""
    events = 50
    async with env.db.transaction() as conn:
        for i in range(events):
            await add_event(conn, event=env.event(str(i)), aggregate=f"things/{i}")
    turns = 0  # how often another task got the event loop

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    turns_at_publish: list[int] = []
    publish_async = env.js.publish_async

    async def counted(*args: Any, **kwargs: Any) -> Any:
        turns_at_publish.append(turns)
        return await publish_async(*args, **kwargs)

    monkeypatch.setattr(env.js, "publish_async", counted)
    ticker = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    try:
        relay = OutboxRelay(env.db, env.js, "unused", RelayConfig(batch_size=events))
        assert await relay.relay_once() == events
    finally:
        ticker.cancel()
    assert len(turns_at_publish) == events
    assert turns > turns_at_publish[-1]  # it ran while the acknowledgements were awaited
    assert turns_at_publish[-1] == turns_at_publish[0], "the loop ran between two publishes"
    assert await stored_count(env) == events
    assert await unpublished(env.db) == 0


async def test_background_relay_wakes_on_notify(env: Env, schema: ServiceSchema) -> None:
    slow_poll = RelayConfig(poll_interval_seconds=30)
    relay = OutboxRelay(env.db, env.js, schema.name, slow_poll)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # stream ensured, LISTEN established
        async with env.db.transaction() as conn:
            await add_event(conn, event=env.event("n"), aggregate="things/n")
        for _ in range(50):
            if await unpublished(env.db) == 0:
                break
            await asyncio.sleep(0.05)
        assert await unpublished(env.db) == 0  # far sooner than the 30 s poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def publish(env: Env, thing: str) -> str:
    """Through the real path: outbox row, then the relay."""
    async with env.db.transaction() as conn:
        event_id = await add_event(conn, event=env.event(thing), aggregate=f"things/{thing}")
    assert await OutboxRelay(env.db, env.js, "unused", env.config).relay_once() == 1
    return str(event_id)


async def test_consumer_skips_redelivered_event_and_retries_failures(env: Env) -> None:
    calls: list[str] = []
    fail_once = {"bad"}

    async def handler(conn: AsyncConnection, event: Event) -> None:
        value = event.unpack(env.thing).thing  # type: ignore[attr-defined]
        assert event.envelope.subject == f"things/{value}"
        calls.append(value)
        await conn.execute(
            text(
                "INSERT INTO audit_logs (entity, entity_id, action, performed_by)"
                " VALUES ('event', :id, 'consumed', 'consumer')"
            ),
            {"id": event.id},
        )
        if value in fail_once:
            fail_once.discard(value)
            raise RuntimeError("transient failure")

    consumer = env.consumer(handler)
    good_id = await publish(env, "good")
    sub = await consumer.subscribe()

    # Handled and committed, but the process "dies" before the ack.
    (msg,) = await sub.fetch(1, timeout=2)
    event = event_from_msg(msg)
    assert event is not None and event.id == good_id and await consumer.process(event)
    await asyncio.sleep(1.2)  # ack_wait passes: JetStream redelivers
    assert await consumer.consume_once() == 1
    assert calls == ["good"]  # the redelivery was skipped, and acknowledged

    bad_id = await publish(env, "bad")
    assert await consumer.consume_once() == 1  # fails → nak with a short delay
    for _ in range(20):
        if calls.count("bad") == 2:
            break
        await consumer.consume_once()
    assert calls == ["good", "bad", "bad"]
    rows = await env.db.fetch_all(
        text("SELECT event_id FROM processed_events WHERE consumer = :c ORDER BY event_id"),
        {"c": consumer.settings.durable},
    )
    assert sorted(r.event_id for r in rows) == sorted([good_id, bad_id])
    effects = await env.db.scalar(
        text("SELECT count(*) FROM audit_logs WHERE entity_id IN (:a, :b)"),
        {"a": good_id, "b": bad_id},
    )
    assert effects == 2  # the failed attempt's write rolled back
    assert await consumer.consume_once() == 0  # nothing pending: everything was acked


async def test_an_event_written_while_handling_another_names_it_as_its_cause(env: Env) -> None:
    written: list[uuid.UUID] = []

    async def handler(conn: AsyncConnection, event: Event) -> None:
        value = event.unpack(env.thing).thing  # type: ignore[attr-defined]
        if value == "cause":
            written.append(await add_event(conn, event=env.event("effect"), aggregate="things/e"))

    async def envelope_of(event_id: uuid.UUID) -> EventEnvelope:
        payload = await env.db.scalar(
            text("SELECT payload FROM outbox_events WHERE id = :id"), {"id": event_id}
        )
        return EventEnvelope.FromString(bytes(payload))

    consumer = env.consumer(handler)
    await consumer.subscribe()
    cause_id = await publish(env, "cause")
    assert await consumer.consume_once() == 1
    (effect_id,) = written
    assert (await envelope_of(effect_id)).causation_id == cause_id
    # Outside a handler an event has no cause.
    async with env.db.transaction() as conn:
        plain = await add_event(conn, event=env.event("plain"), aggregate="things/p")
    assert (await envelope_of(plain)).causation_id == ""
    # Leave the outbox empty for the next test.
    assert await OutboxRelay(env.db, env.js, "unused", env.config).relay_once() == 2


async def test_each_aggregate_numbers_its_events_and_a_rollback_gives_the_number_back(
    env: Env,
) -> None:
    a, b = f"things/a-{uuid.uuid4()}", f"things/b-{uuid.uuid4()}"

    async def write(aggregate: str) -> uuid.UUID:
        async with env.db.transaction() as conn:
            return await add_event(conn, event=env.event("n"), aggregate=aggregate)

    async def sequence(event_id: uuid.UUID) -> int:
        payload = await env.db.scalar(
            text("SELECT payload FROM outbox_events WHERE id = :id"), {"id": event_id}
        )
        return EventEnvelope.FromString(bytes(payload)).subject_sequence

    first_a = await write(a)
    first_b = await write(b)
    with pytest.raises(RuntimeError):
        async with env.db.transaction() as conn:
            await add_event(conn, event=env.event("lost"), aggregate=a)
            raise RuntimeError("the change fails after its event was written")
    second_a = await write(a)
    assert [await sequence(e) for e in (first_a, first_b, second_a)] == [1, 1, 2]
    assert await OutboxRelay(env.db, env.js, "unused", env.config).relay_once() == 3


async def test_consumer_terminates_messages_that_are_not_envelopes(env: Env) -> None:
    calls: list[str] = []

    async def handler(conn: AsyncConnection, event: Event) -> None:
        calls.append(event.unpack(env.thing).thing)  # type: ignore[attr-defined]

    consumer = env.consumer(handler)
    await consumer.subscribe()
    # A raw protobuf that is not an envelope, and bytes that are not protobuf.
    await env.js.publish(
        env.subject,
        wrappers_pb2.StringValue(value="raw").SerializeToString(),
        headers={MSG_ID_HEADER: str(uuid.uuid4())},
    )
    await env.js.publish(env.subject, b"\xff\xfe{}", headers={MSG_ID_HEADER: str(uuid.uuid4())})
    good_id = await publish(env, "good")

    assert await consumer.consume_once() == 3
    assert calls == ["good"]
    rows = await env.db.fetch_all(
        text("SELECT event_id FROM processed_events WHERE consumer = :c"),
        {"c": consumer.settings.durable},
    )
    assert [r.event_id for r in rows] == [good_id]
    await asyncio.sleep(1.2)  # past ack_wait: a nak'ed or unsettled message would be back
    assert await consumer.consume_once() == 0
    assert calls == ["good"]


async def test_shutdown_after_a_cancelled_fetch_neither_hangs_nor_loses_a_buffered_ack(
    infra,  # type: ignore[no-untyped-def]
) -> None:
    """A service closes NATS after cancelling its consumers. A pull request
    cancelled mid-fetch is still answered by the server, into a queue nobody
    reads: nats-py's drain() waited for it until its 30 s timeout at every
    shutdown. close_nats sends what is buffered (here an acknowledgement) and
    closes at once."""
    stream, durable = f"PT_CLOSE_{secrets.token_hex(3)}".upper(), "pt_close"
    subject = f"ptclose.{secrets.token_hex(3)}"
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[subject])
    try:
        await js.publish(subject, b"one")
        subscription = await js.pull_subscribe(subject, durable=durable, stream=stream)
        (msg,) = await subscription.fetch(1, timeout=5)

        async def fetch_more() -> None:
            await subscription.fetch(1, timeout=1)

        cancelled = asyncio.create_task(fetch_more())
        await asyncio.sleep(0.2)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await asyncio.sleep(1.5)  # the server's answer to the cancelled request arrives
        await msg.ack()  # buffered: only the flush sends it
        began = asyncio.get_running_loop().time()
        await close_nats(nc)
        assert asyncio.get_running_loop().time() - began < 10  # drain() took 30
        assert nc.is_closed
    finally:
        admin = await nats.connect(infra.nats_url)
        try:
            info = await admin.jetstream().consumer_info(stream, durable)
            await admin.jetstream().delete_stream(stream)
        finally:
            await admin.close()
    assert info.num_ack_pending == 0  # the acknowledgement reached the server
    assert info.delivered.consumer_seq == 1
