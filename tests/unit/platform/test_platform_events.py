"""The event wire format (EventEnvelope) and the consumer's handling of poison."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import timestamp_pb2, wrappers_pb2

from fintech.events.v1 import identity_events_pb2
from services.platform.consumer import ConsumerSettings, DurableConsumer, Event, event_from_msg
from services.platform.events import (
    EventEnvelope,
    event_type_of,
    events_subject,
    new_envelope,
)
from services.platform.outbox import MSG_ID_HEADER

OCCURRED = datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC)


def registered(user: str = "users/42") -> identity_events_pb2.UserRegistered:
    return identity_events_pb2.UserRegistered(
        user=user, create_time=timestamp_pb2.Timestamp(seconds=1_714_566_615)
    )


def envelope_for(event: Any, event_id: uuid.UUID | None = None) -> EventEnvelope:
    return new_envelope(
        event,
        event_id=event_id or uuid.uuid4(),
        source="identity",
        aggregate=getattr(event, "user", "things/1"),
        occur_time=OCCURRED,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        request_id="req-1",
    )


class FakeMsg:
    """What event_from_msg and DurableConsumer.handle read from a nats Msg."""

    def __init__(self, data: bytes, headers: dict[str, str] | None, delivery: int = 1) -> None:
        self.subject = "fintech.events.user.registered"
        self.data = data
        self.headers = headers
        self.metadata = SimpleNamespace(num_delivered=delivery, sequence=SimpleNamespace(stream=7))
        self.outcomes: list[str] = []

    async def ack(self) -> None:
        self.outcomes.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.outcomes.append("nak")

    async def term(self) -> None:
        self.outcomes.append("term")


def msg_for(envelope: EventEnvelope, msg_id: str | None = None) -> Any:
    return FakeMsg(envelope.SerializeToString(), {MSG_ID_HEADER: msg_id or envelope.event_id})


def test_event_type_comes_from_the_message_option() -> None:
    assert event_type_of(registered()) == "user.registered"
    assert (
        event_type_of(identity_events_pb2.UserProfileUpdated.DESCRIPTOR) == "user.profile_updated"
    )
    assert events_subject("user.registered") == "fintech.events.user.registered"


def test_a_message_without_the_event_type_option_is_refused() -> None:
    with pytest.raises(AssertionError, match="event_type"):
        event_type_of(wrappers_pb2.StringValue(value="x"))
    with pytest.raises(AssertionError, match="event_type"):
        envelope_for(wrappers_pb2.StringValue(value="x"))


@pytest.mark.parametrize("bad", ["", "user..registered", "user.*", "user.>", "user registered"])
def test_event_types_that_would_break_the_subject_are_refused(bad: str) -> None:
    with pytest.raises(AssertionError):
        events_subject(bad)


def test_envelope_round_trips_through_its_bytes() -> None:
    event_id = uuid.uuid4()
    event = registered("users/42")
    wire = envelope_for(event, event_id).SerializeToString()

    envelope = EventEnvelope.FromString(wire)
    assert envelope.event_id == str(event_id)
    assert envelope.event_type == "user.registered"
    assert envelope.source == "identity"
    assert envelope.subject == "users/42"
    assert envelope.occur_time.ToDatetime(tzinfo=UTC) == OCCURRED
    assert envelope.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert envelope.request_id == "req-1"
    assert envelope.schema_version == 1
    unpacked = identity_events_pb2.UserRegistered()
    assert envelope.payload.Unpack(unpacked)
    assert unpacked == event


def test_event_from_msg_exposes_the_envelope_and_unpacks_the_payload() -> None:
    envelope = envelope_for(registered("users/7"))
    event = event_from_msg(msg_for(envelope))
    assert event is not None
    assert event.id == envelope.event_id
    assert event.type == "user.registered"
    assert event.envelope == envelope
    assert event.unpack(identity_events_pb2.UserRegistered) == registered("users/7")
    with pytest.raises(TypeError, match="UserProfileUpdated"):
        event.unpack(identity_events_pb2.UserProfileUpdated)


def test_event_from_msg_accepts_an_envelope_without_the_dedup_header() -> None:
    envelope = envelope_for(registered())
    msg: Any = FakeMsg(envelope.SerializeToString(), None)
    event = event_from_msg(msg)
    assert event is not None and event.id == envelope.event_id


@pytest.mark.parametrize(
    "case",
    ["corrupt bytes", "another message's bytes", "empty", "header disagrees", "no payload"],
)
def test_event_from_msg_rejects_what_is_not_a_valid_envelope(case: str) -> None:
    envelope = envelope_for(registered())
    msg: Any
    if case == "corrupt bytes":
        msg = FakeMsg(b"\xff\xfe not protobuf", {MSG_ID_HEADER: str(uuid.uuid4())})
    elif case == "another message's bytes":
        # Parses as an envelope whose event_id is "good" and nothing else.
        data = wrappers_pb2.StringValue(value="good").SerializeToString()
        msg = FakeMsg(data, {MSG_ID_HEADER: "good"})
    elif case == "empty":
        msg = FakeMsg(b"", {MSG_ID_HEADER: str(uuid.uuid4())})
    elif case == "header disagrees":
        msg = msg_for(envelope, msg_id=str(uuid.uuid4()))
    else:
        envelope.ClearField("payload")
        msg = msg_for(envelope)
    assert event_from_msg(msg) is None


class NoDatabase:
    """A poison message must be settled before any transaction is opened."""

    def separate_transaction(self) -> Any:
        raise AssertionError("the database was used for a poison message")


async def test_consumer_terminates_a_poison_message_without_calling_the_handler() -> None:
    calls: list[Event] = []

    async def handler(conn: Any, event: Event) -> None:
        calls.append(event)

    settings = ConsumerSettings(stream="S", durable="unit_test", filter_subject="fintech.events.>")
    consumer = DurableConsumer(NoDatabase(), None, settings, handler)  # type: ignore[arg-type]
    poison = FakeMsg(b"\xff\xfe not protobuf", {MSG_ID_HEADER: str(uuid.uuid4())})

    assert await consumer.handle(poison) is False  # type: ignore[arg-type]
    assert poison.outcomes == ["term"]  # never nak: no redelivery can fix the bytes
    assert calls == []
