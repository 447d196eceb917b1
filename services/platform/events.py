"""The wire format of domain events: `fintech.events.v1.EventEnvelope`.

Every event on JetStream is a serialized envelope (binary protobuf) published
to `fintech.events.<event_type>` with `Nats-Msg-Id: <event_id>`. The
event_type comes from the payload message's `(fintech.api.v1.event_type)`
option, so the contract is the one place that maps type <-> message: the
outbox (producer side) and consumers both read it from the descriptor.
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from datetime import datetime

from google.protobuf import any_pb2, descriptor, message, timestamp_pb2

from fintech.api.v1 import options_pb2
from fintech.events.v1 import envelope_pb2

EVENTS_SUBJECT_PREFIX = "fintech.events."
# EventEnvelope.schema_version: "Starts at 1"; bump per event type on
# compatible payload additions consumers may want to branch on.
SCHEMA_VERSION = 1
MAX_EVENT_TYPE_LENGTH = 128

EventEnvelope = envelope_pb2.EventEnvelope

# The event_id of the event being handled, set by the durable consumer around
# its handler: an event written by the handler names it as its cause.
causation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "fintech_causation_id", default=""
)


def event_type_of(event: message.Message | descriptor.Descriptor) -> str:
    """The `(fintech.api.v1.event_type)` option of an event message (or its descriptor).

    A message without it is not an event: publishing or subscribing to it is a
    programming error, so this asserts instead of returning "".
    """
    desc = event if isinstance(event, descriptor.Descriptor) else event.DESCRIPTOR
    return _event_type_of_descriptor(desc)


@functools.lru_cache(maxsize=1024)
def _event_type_of_descriptor(desc: descriptor.Descriptor) -> str:
    # Cached: descriptors are immutable and few, and the ledger's writer asks
    # once per event (the options lookup and checks were ~10 µs each time).
    event_type: str = desc.GetOptions().Extensions[options_pb2.event_type]
    assert event_type, f"{desc.full_name} has no (fintech.api.v1.event_type) option"
    check_event_type(event_type)
    return event_type


def check_event_type(event_type: str) -> None:
    # The type becomes NATS subject tokens: no empty tokens, spaces or wildcards,
    # or one event type could land on (or subscribe to) another's subject.
    assert 0 < len(event_type) <= MAX_EVENT_TYPE_LENGTH, event_type
    assert all(token for token in event_type.split(".")), event_type
    assert not any(c in event_type for c in " \t\r\n*>"), event_type


def events_subject(event_type: str) -> str:
    """`fintech.events.<event_type>`: where events of that type are published."""
    check_event_type(event_type)
    return EVENTS_SUBJECT_PREFIX + event_type


@functools.lru_cache(maxsize=256)
def _timestamp_fields(moment: datetime) -> dict[str, int]:
    # A writer batch stamps all its events with one time: FromDatetime (pure
    # Python) runs once per distinct value, not once per event.
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return {"seconds": stamp.seconds, "nanos": stamp.nanos}


def new_envelope(
    event: message.Message,
    *,
    event_id: uuid.UUID,
    source: str,
    aggregate: str,
    occur_time: datetime,
    trace_id: str = "",
    request_id: str = "",
    causation_id: str = "",
    subject_sequence: int = 0,
) -> envelope_pb2.EventEnvelope:
    """Wrap `event` as the contract's envelope; `aggregate` is its resource name."""
    assert source, "source (the producing service) is required"
    assert aggregate and not aggregate.startswith("/"), aggregate
    assert occur_time.tzinfo is not None, "occur_time must be timezone-aware"
    assert subject_sequence >= 0, subject_sequence
    occurred = timestamp_pb2.Timestamp(**_timestamp_fields(occur_time))
    payload = any_pb2.Any()
    # Deterministic so the stored bytes of one event never vary between runs.
    payload.Pack(event, deterministic=True)
    return envelope_pb2.EventEnvelope(
        event_id=str(event_id),
        event_type=event_type_of(event),
        source=source,
        subject=aggregate,
        occur_time=occurred,
        trace_id=trace_id,
        request_id=request_id,
        schema_version=SCHEMA_VERSION,
        payload=payload,
        causation_id=causation_id,
        subject_sequence=subject_sequence,
    )
