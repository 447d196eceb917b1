"""Risk's read model of each customer's KYC status, from the kyc service's events.

The hard rule "KYC not approved" needs the status on every Score; reading it
from this table (in the same round trip as the statements' version) keeps
the loan path free of a synchronous call to identity. A durable JetStream
consumer (platform consumer: each event applied once, in the transaction that
records it) follows `fintech.events.kyc.>` with the mapping identity uses too
(services/projections/kyc_status.py). The projection lags the kyc service
by the event delivery time (milliseconds when healthy); a decision records
the status it used, so any decision can be audited against the kyc history.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.consumer import ConsumerSettings, Event
from services.projections import kyc_status

CONSUMER = "risk_kyc_status"

# A missing row is NOT_STARTED, which is in `only_from` for progress events:
# the insert path applies whenever the (absent) status would have allowed it.
_UPSERT = text(
    "INSERT INTO kyc_statuses AS k (user_id, status, event_id)"
    " SELECT :id, :s, :event_id"
    " WHERE cardinality(CAST(:only AS text[])) = 0 OR :not_started = ANY(CAST(:only AS text[]))"
    " ON CONFLICT (user_id) DO UPDATE"
    " SET status = EXCLUDED.status, event_id = EXCLUDED.event_id, updated_at = now()"
    " WHERE k.status <> EXCLUDED.status"
    " AND (cardinality(CAST(:only AS text[])) = 0 OR k.status = ANY(CAST(:only AS text[])))"
)


def consumer_settings() -> ConsumerSettings:
    return kyc_status.consumer_settings(CONSUMER)


async def apply_kyc_event(conn: AsyncConnection, event: Event) -> None:
    change = kyc_status.status_change(event)
    if change is None:
        return  # not about the status: acknowledged and ignored
    await conn.execute(
        _UPSERT,
        {
            "id": change.user_id,
            "s": change.status,
            "event_id": event.id[:64],
            "only": list(change.only_from),
            "not_started": kyc_status.NOT_STARTED,
        },
    )
