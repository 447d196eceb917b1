"""identity mirrors the kyc service's state into `users.kyc_status` from its events.

A durable JetStream consumer of `fintech.events.kyc.>` (platform consumer:
each event handled once per consumer, in the transaction that records it).
The mapping from events to statuses is shared with risk
(services/projections/kyc_status.py).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.consumer import ConsumerSettings, Event
from services.projections import kyc_status

CONSUMER = "identity_kyc_status"

_SET = text(
    "UPDATE users SET kyc_status = :s, updated_at = now(), version = version + 1"
    " WHERE id = :id AND kyc_status <> :s"
    " AND (cardinality(CAST(:only AS text[])) = 0"
    "      OR kyc_status = ANY(CAST(:only AS text[])))"
)


def consumer_settings() -> ConsumerSettings:
    return kyc_status.consumer_settings(CONSUMER)


async def apply_kyc_event(conn: AsyncConnection, event: Event) -> None:
    change = kyc_status.status_change(event)
    if change is None:
        return  # not about the profile: acknowledged and ignored
    await conn.execute(
        _SET, {"id": change.user_id, "s": change.status, "only": list(change.only_from)}
    )
