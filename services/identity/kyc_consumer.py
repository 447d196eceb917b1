"""identity mirrors the kyc service's state into `users.kyc_status` from its events.

A durable JetStream consumer of `fintech.events.kyc.>` (platform consumer:
each event handled once per consumer, in the transaction that records it).
The event → status mapping is shared with risk's projection
(services/projections/kyc_status.py): kyc.requested → PENDING,
kyc.review_required → IN_REVIEW, kyc.approved → APPROVED, kyc.declined →
DECLINED, kyc.status_changed → WAITING_PROVIDER / PENDING only while the
process is still running, so a late progress event never overwrites a decision.
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
        return  # not about the status: acknowledged and ignored
    await conn.execute(
        _SET, {"id": change.user_id, "s": change.status, "only": list(change.only_from)}
    )
