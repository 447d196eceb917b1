"""Ledger events: ledger.transfer.* (written in bulk by the writer) and the
user.registered consumer that opens each user's BRL wallet exactly once."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf import message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import identity_events_pb2, ledger_events_pb2
from services.ledger import wire
from services.ledger.domain.chart import SYSTEM_CURRENCY, WALLET_DISPLAY_NAME, WALLET_LEDGER_CODE
from services.ledger.domain.model import Applied, TransferKind, TransferState
from services.ledger.views import AccountView
from services.platform import outbox
from services.platform.consumer import ConsumerSettings, Event
from services.platform.events import event_type_of, events_subject, new_envelope

WALLET_CONSUMER = "ledger-wallets"
USER_PREFIX = "users/"


@dataclass(frozen=True, slots=True)
class Origin:
    """The request context of a job, captured when it was submitted."""

    trace_id: str = ""
    request_id: str = ""
    traceparent: str = ""


def transfer_event(op: Applied, messages: wire.TransferMessages) -> message.Message:
    t = messages.of(op.transfer)
    if op.expiry:
        return ledger_events_pb2.TransferExpired(transfer=t)
    if op.transfer.kind == TransferKind.PENDING:
        return ledger_events_pb2.TransferPending(transfer=t)
    if op.transfer.state == TransferState.VOIDED:
        return ledger_events_pb2.TransferVoided(transfer=t)
    assert op.transfer.state == TransferState.POSTED
    return ledger_events_pb2.TransferPosted(transfer=t)


def outbox_rows(
    ops: Sequence[tuple[Applied, Origin]],
    *,
    source: str,
    occur_time: datetime,
    messages: wire.TransferMessages,
) -> list[tuple[uuid.UUID, str, str, bytes, str]]:
    """Outbox rows (the platform's envelope and headers) for a batch's operations."""
    rows = []
    # Per-batch work done once rather than per row: one urandom read for all
    # event ids (uuid4 reads 16 bytes per call), the subject per event class,
    # the headers JSON per origin (a 1,000-transfer request has one origin).
    random_bytes = os.urandom(16 * len(ops))
    subjects: dict[type[message.Message], str] = {}
    headers_of: dict[Origin, str] = {}
    for n, (op, origin) in enumerate(ops):
        event = transfer_event(op, messages)
        event_id = uuid.UUID(bytes=random_bytes[16 * n : 16 * n + 16], version=4)
        envelope = new_envelope(
            event,
            event_id=event_id,
            source=source,
            aggregate=f"transfers/{op.transfer.id}",
            occur_time=occur_time,
            trace_id=origin.trace_id,
            request_id=origin.request_id,
            # A transfer is immutable: its creation is its first event, and
            # only a pending transfer's expiry is a second one (a post or void
            # is a new transfer, with its own aggregate). Known without a
            # counter, which the writer's hot path would pay per transfer.
            subject_sequence=2 if op.expiry else 1,
        )
        subject = subjects.get(type(event))
        if subject is None:
            subject = subjects[type(event)] = events_subject(event_type_of(event))
        headers = headers_of.get(origin)
        if headers is None:
            headers = headers_of[origin] = _headers_json(origin)
        rows.append(
            (
                event_id,
                subject,
                envelope.event_type,
                envelope.SerializeToString(deterministic=True),
                headers,
            )
        )
    return rows


def _headers_json(origin: Origin) -> str:
    headers = {}
    if origin.traceparent:
        headers["traceparent"] = origin.traceparent
    if origin.request_id:
        headers["x-request-id"] = origin.request_id
    return json.dumps(headers)


def wallet_consumer_settings() -> ConsumerSettings:
    return ConsumerSettings(
        stream=outbox.DEFAULT_STREAM,
        durable=WALLET_CONSUMER,
        filter_subject=events_subject(event_type_of(identity_events_pb2.UserRegistered.DESCRIPTOR)),
    )


_INSERT_WALLET = text(
    "INSERT INTO accounts (id, owner, currency, kind, ledger_code, display_name,"
    " debits_must_not_exceed_credits) VALUES (:id, :owner, :currency, 'USER_WALLET',"
    " :code, :display, true) ON CONFLICT DO NOTHING RETURNING created_at"
)


async def open_wallet(conn: AsyncConnection, event: Event) -> None:
    """user.registered → the user's BRL wallet; a second delivery changes nothing.

    processed_events (the platform consumer) skips a redelivered event; the
    unique wallet index with ON CONFLICT covers two different events for one
    user.
    """
    registered = event.unpack(identity_events_pb2.UserRegistered)
    owner = registered.user
    if not owner.startswith(USER_PREFIX) or len(owner) > 128 or owner == USER_PREFIX:
        raise ValueError(f"user.registered {event.id} carries a malformed user {owner!r}")
    account_id = uuid.uuid4()
    created = (
        await conn.execute(
            _INSERT_WALLET,
            {
                "id": account_id,
                "owner": owner,
                "currency": SYSTEM_CURRENCY,
                "code": WALLET_LEDGER_CODE,
                "display": WALLET_DISPLAY_NAME,
            },
        )
    ).first()
    if created is None:
        return  # the wallet exists already
    view = AccountView.wallet(account_id, owner, created.created_at)
    await outbox.add_event(
        conn,
        event=ledger_events_pb2.AccountOpened(account=wire.account_message(view)),
        aggregate=f"accounts/{account_id}",
    )
