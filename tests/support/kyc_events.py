"""Stand in for the kyc service's decision by publishing its real event.

Identity (the profile's kyc_status) and risk (its own projection) both follow
`fintech.events.kyc.>`; publishing the event the kyc service would publish,
then waiting until both have applied it, exercises those consumers instead
of writing into another service's tables.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
from google.protobuf.message import Message

from devstack.stack import Stack
from fintech.events.v1 import kyc_events_pb2
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.support.events import publish_events

PROJECTION_DEADLINE_S = 30.0
_EVENTS: dict[str, tuple[str, type[Message]]] = {
    "APPROVED": ("kyc.approved", kyc_events_pb2.KycApproved),
    "DECLINED": ("kyc.declined", kyc_events_pb2.KycDeclined),
    "PENDING": ("kyc.requested", kyc_events_pb2.KycRequested),
    "IN_REVIEW": ("kyc.review_required", kyc_events_pb2.KycReviewRequired),
}


async def publish_kyc_event(nats_url: str, user_name: str, status: str) -> None:
    _, message_cls = _EVENTS[status]
    await publish_events(nats_url, "kyc", [(user_name, message_cls(user=user_name))])


def set_kyc_status(stack: Stack, user_name: str, status: str = "APPROVED") -> None:
    """Publish the kyc event for `status`; return once identity and risk show it."""
    asyncio.run(publish_kyc_event(stack.infra.nats_url, user_name, status))
    admin = database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE)
    user_id = uuid.UUID(user_name.removeprefix("users/"))
    deadline = time.monotonic() + PROJECTION_DEADLINE_S
    with psycopg.connect(admin, connect_timeout=10, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT (SELECT kyc_status FROM identity.users WHERE id = %(id)s),"
                " (SELECT status FROM risk.kyc_statuses WHERE user_id = %(id)s)",
                {"id": user_id},
            ).fetchone()
            if row == (status, status):
                return
            assert time.monotonic() < deadline, f"{status} not applied for {user_name}: {row}"
            time.sleep(0.1)


def approve_kyc(stack: Stack, user_name: str) -> None:
    set_kyc_status(stack, user_name, "APPROVED")
