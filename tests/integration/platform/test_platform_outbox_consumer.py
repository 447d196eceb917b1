"""Outbox relay → JetStream → idempotent durable consumer, against real servers."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from google.protobuf import wrappers_pb2
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.consumer import ConsumerSettings, DurableConsumer, Event, event_from_msg
from services.platform.db import Database
from services.platform.outbox import MSG_ID_HEADER, OutboxRelay, RelayConfig, add_event
from tests.integration.platform.platform_it_support import ServiceSchema, provision

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def schema(infra) -> Iterator[ServiceSchema]:  # type: ignore[no-untyped-def]
    svc = provision(infra.pg_admin_url, "ptevt")
    yield svc
    svc.drop()


@pytest.fixture
async def env(
    infra, schema: ServiceSchema
) -> AsyncIterator[tuple[Database, JetStreamContext, RelayConfig]]:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(4)
    # Subjects outside fintech.> so the test stream never overlaps the real one.
    config = RelayConfig(
        stream=f"PLATFORMTEST_{run.upper()}",
        stream_subjects=(f"platformtest.{run}.>",),
        batch_size=10,
        poll_interval_seconds=0.1,
    )
    db = Database(schema.url, pool_size=4)
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    yield db, js, config
    await js.delete_stream(config.stream)
    await nc.close()
    await db.close()


def subject(config: RelayConfig, name: str) -> str:
    return config.stream_subjects[0].replace(">", name)


async def stream_messages(js: JetStreamContext, config: RelayConfig) -> list[Any]:
    info = await js.stream_info(config.stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages:
            out.append(await js.get_msg(config.stream, seq))
    return out


async def unpublished(db: Database) -> int:
    return int(
        await db.scalar(text("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"))
    )


async def test_relay_publishes_committed_events_once(env) -> None:  # type: ignore[no-untyped-def]
    db, js, config = env
    relay = OutboxRelay(db, js, "unused", config)
    from services.platform.outbox import ensure_stream

    await ensure_stream(js, config.stream, config.stream_subjects, config.duplicate_window_seconds)
    async with db.transaction() as conn:
        event_id = await add_event(
            conn,
            subject=subject(config, "user.registered"),
            event=wrappers_pb2.StringValue(value="u1"),
        )
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await add_event(
                conn,
                subject=subject(config, "user.registered"),
                event=wrappers_pb2.StringValue(value="rolled-back"),
            )
            raise RuntimeError("caller failed: the event must vanish with it")
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    (msg,) = await stream_messages(js, config)
    assert msg.headers[MSG_ID_HEADER] == str(event_id)
    assert msg.headers["Fintech-Event-Type"] == "google.protobuf.StringValue"
    assert wrappers_pb2.StringValue.FromString(msg.data).value == "u1"
    assert await unpublished(db) == 0


class CrashBeforeMark(OutboxRelay):
    """A relay that dies after JetStream acknowledged, before the rows are marked."""

    async def mark_published(self, conn: AsyncConnection, ids: list[uuid.UUID]) -> None:
        raise ConnectionError("relay crashed")


async def test_crash_after_publish_is_deduplicated(env) -> None:  # type: ignore[no-untyped-def]
    db, js, config = env
    from services.platform.outbox import ensure_stream

    await ensure_stream(js, config.stream, config.stream_subjects, config.duplicate_window_seconds)
    async with db.transaction() as conn:
        for i in range(3):
            await add_event(
                conn,
                subject=subject(config, "payment.settled"),
                event=wrappers_pb2.StringValue(value=str(i)),
            )
    with pytest.raises(ConnectionError):
        await CrashBeforeMark(db, js, "unused", config).relay_once()
    assert await unpublished(db) == 3  # the claim rolled back
    assert (await js.stream_info(config.stream)).state.messages == 3
    assert await OutboxRelay(db, js, "unused", config).relay_once() == 3
    assert (await js.stream_info(config.stream)).state.messages == 3  # duplicates dropped
    assert await unpublished(db) == 0


async def test_background_relay_wakes_on_notify(env, schema: ServiceSchema) -> None:  # type: ignore[no-untyped-def]
    db, js, config = env
    slow_poll = RelayConfig(
        stream=config.stream, stream_subjects=config.stream_subjects, poll_interval_seconds=30
    )
    relay = OutboxRelay(db, js, schema.name, slow_poll)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # stream created, LISTEN established
        async with db.transaction() as conn:
            await add_event(
                conn, subject=subject(config, "x.y"), event=wrappers_pb2.StringValue(value="n")
            )
        for _ in range(50):
            if await unpublished(db) == 0:
                break
            await asyncio.sleep(0.05)
        assert await unpublished(db) == 0  # far sooner than the 30 s poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_consumer_skips_redelivered_event_and_retries_failures(env) -> None:  # type: ignore[no-untyped-def]
    db, js, config = env
    from services.platform.outbox import ensure_stream

    await ensure_stream(js, config.stream, config.stream_subjects, config.duplicate_window_seconds)
    calls: list[str] = []
    fail_once = {"bad"}

    async def handler(conn: AsyncConnection, event: Event) -> None:
        value = wrappers_pb2.StringValue.FromString(event.data).value
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

    settings = ConsumerSettings(
        stream=config.stream,
        durable=f"pt_{secrets.token_hex(3)}",
        filter_subject=config.stream_subjects[0],
        batch_size=5,
        ack_wait_seconds=1,
        fetch_timeout_seconds=0.5,
        nak_base_delay_seconds=0.1,
    )
    consumer = DurableConsumer(db, js, settings, handler)
    good_id, bad_id = str(uuid.uuid4()), str(uuid.uuid4())
    await js.publish(
        subject(config, "a"),
        wrappers_pb2.StringValue(value="good").SerializeToString(),
        headers={MSG_ID_HEADER: good_id},
    )
    sub = await consumer.subscribe()

    # Handled and committed, but the process "dies" before the ack.
    (msg,) = await sub.fetch(1, timeout=2)
    event = event_from_msg(msg)
    assert event is not None and await consumer.process(event)
    await asyncio.sleep(1.2)  # ack_wait passes: JetStream redelivers
    assert await consumer.consume_once() == 1
    assert calls == ["good"]  # the redelivery was skipped, and acknowledged

    await js.publish(
        subject(config, "b"),
        wrappers_pb2.StringValue(value="bad").SerializeToString(),
        headers={MSG_ID_HEADER: bad_id},
    )
    assert await consumer.consume_once() == 1  # fails → nak with a short delay
    for _ in range(20):
        if calls.count("bad") == 2:
            break
        await consumer.consume_once()
    assert calls == ["good", "bad", "bad"]
    rows = await db.fetch_all(
        text("SELECT event_id FROM processed_events WHERE consumer = :c ORDER BY event_id"),
        {"c": settings.durable},
    )
    assert sorted(r.event_id for r in rows) == sorted([good_id, bad_id])
    effects = await db.scalar(
        text("SELECT count(*) FROM audit_logs WHERE entity_id IN (:a, :b)"),
        {"a": good_id, "b": bad_id},
    )
    assert effects == 2  # the failed attempt's write rolled back
    assert await consumer.consume_once() == 0  # nothing pending: everything was acked
