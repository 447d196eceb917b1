"""Publish another service's domain event exactly as its outbox would.

Tests stand in for a service that is not under test (identity registering a
user, kyc deciding) by publishing its real envelope to JetStream, so the
consumers under test run their real path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import nats
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

from fintech.events.v1 import envelope_pb2
from services.platform.events import event_type_of, events_subject


async def publish_events(
    nats_url: str, source: str, events: Sequence[tuple[str, Message]]
) -> list[str]:
    """Each (subject resource, message) as its own envelope; returns the event ids.

    A fresh event id each: publishing the same message twice is a redelivery
    JetStream does not deduplicate, as a consumer must handle.
    """
    nc = await nats.connect(nats_url)
    ids = []
    try:
        js = nc.jetstream()
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        for resource, message in events:
            event_type = event_type_of(message)
            payload = any_pb2.Any()
            payload.Pack(message)
            event_id = str(uuid.uuid4())
            envelope = envelope_pb2.EventEnvelope(
                event_id=event_id,
                event_type=event_type,
                source=source,
                subject=resource,
                occur_time=now,
                schema_version=1,
                payload=payload,
            )
            await js.publish(
                events_subject(event_type),
                envelope.SerializeToString(),
                headers={"Nats-Msg-Id": event_id, "Fintech-Event-Type": event_type},
            )
            ids.append(event_id)
    finally:
        await nc.close()
    return ids
