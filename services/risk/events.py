"""Risk's wire shapes: rows → protobuf messages, and the events written to the outbox.

The API and the events share these builders so that an event's payload is
exactly what a Get would return (features excepted: events never carry them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import risk_events_pb2
from fintech.risk.v1 import open_finance_pb2, risk_pb2
from fintech.type.v1 import money_pb2
from services.platform import outbox
from services.risk.store import ConsentRow, DecisionRow, HistoryRow, ImportRow

USER_PREFIX = "users/"
CONSENT_PREFIX = "consents/"
IMPORT_PREFIX = "imports/"
DECISION_PREFIX = "decisions/"
ENDED_STATES = frozenset({"REJECTED", "REVOKED", "EXPIRED"})


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def consent_message(row: ConsentRow, history: Sequence[HistoryRow]) -> open_finance_pb2.Consent:
    return open_finance_pb2.Consent(
        name=f"{CONSENT_PREFIX}{row.id}",
        user=f"{USER_PREFIX}{row.user_id}",
        data_holder=row.data_holder,
        permissions=list(row.permissions),
        expire_time=ts(row.expire_at),
        state=open_finance_pb2.ConsentState.Value(f"CONSENT_STATE_{row.state}"),
        consent_id=row.bank_consent_id,
        # The link only means something while the customer still has to act.
        authorisation_uri=row.authorisation_uri if row.state == "AWAITING_AUTHORISATION" else "",
        history=[
            open_finance_pb2.ConsentHistoryEntry(
                state=open_finance_pb2.ConsentState.Value(f"CONSENT_STATE_{h.state}"),
                time=ts(h.created_at),
                actor=h.actor,
                reason=h.reason,
            )
            for h in history
        ],
        create_time=ts(row.created_at),
        update_time=ts(row.updated_at),
    )


def import_message(row: ImportRow) -> open_finance_pb2.StatementImport:
    msg = open_finance_pb2.StatementImport(
        name=f"{IMPORT_PREFIX}{row.id}",
        consent=f"{CONSENT_PREFIX}{row.consent_id}",
        from_booking_date=row.from_date.isoformat(),
        to_booking_date=row.to_date.isoformat(),
        state=open_finance_pb2.ImportState.Value(f"IMPORT_STATE_{row.state}"),
        accounts_imported=row.accounts_imported,
        transactions_imported=row.transactions_imported,
        transactions_skipped=row.transactions_skipped,
        pages_fetched=row.pages_fetched,
        failure_reason=row.failure_reason,
        create_time=ts(row.created_at),
    )
    if row.completed_at is not None:
        msg.complete_time.CopyFrom(ts(row.completed_at))
    return msg


def money(currency: str, minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, minor_units=minor)


def reason_messages(reasons: Sequence[dict[str, object]]) -> list[risk_pb2.ReasonCode]:
    return [
        risk_pb2.ReasonCode(
            code=str(r["code"]),
            description=str(r["description"]),
            contribution=str(r.get("contribution") or ""),
            hard_rule=bool(r["hard_rule"]),
        )
        for r in reasons
    ]


def decision_message(row: DecisionRow, *, with_features: bool) -> risk_pb2.Decision:
    msg = risk_pb2.Decision(
        name=f"{DECISION_PREFIX}{row.id}",
        user=f"{USER_PREFIX}{row.user_id}",
        requested_amount=money(row.currency, row.requested_amount_minor),
        term_months=row.term_months,
        outcome=risk_pb2.Outcome.Value(f"OUTCOME_{row.outcome}"),
        probability_of_default=row.probability_of_default,
        score=row.score,
        band=row.band,
        max_amount=money(row.currency, row.max_amount_minor),
        monthly_rate=row.monthly_rate,
        reason_codes=reason_messages(row.reasons),
        model_version=row.model_version,
        create_time=ts(row.created_at),
        expire_time=ts(row.expire_at),
    )
    if with_features:
        msg.features.extend(risk_pb2.Feature(name=k, value=v) for k, v in row.features.items())
    return msg


async def consent_changed(
    conn: AsyncConnection, row: ConsentRow, history: Sequence[HistoryRow]
) -> None:
    """The event for the state the consent just entered."""
    consent = consent_message(row, history)
    aggregate = consent.name
    if row.state == "AWAITING_AUTHORISATION":
        await outbox.add_event(
            conn, event=risk_events_pb2.ConsentCreated(consent=consent), aggregate=aggregate
        )
    elif row.state == "AUTHORISED":
        await outbox.add_event(
            conn, event=risk_events_pb2.ConsentAuthorised(consent=consent), aggregate=aggregate
        )
    else:
        assert row.state in ENDED_STATES, row.state
        await outbox.add_event(
            conn, event=risk_events_pb2.ConsentEnded(consent=consent), aggregate=aggregate
        )


async def import_started(conn: AsyncConnection, row: ImportRow) -> None:
    msg = import_message(row)
    await outbox.add_event(
        conn, event=risk_events_pb2.StatementImportStarted(statement_import=msg), aggregate=msg.name
    )


async def import_completed(conn: AsyncConnection, row: ImportRow) -> None:
    msg = import_message(row)
    await outbox.add_event(
        conn,
        event=risk_events_pb2.StatementImportCompleted(statement_import=msg),
        aggregate=msg.name,
    )


async def decision_made(conn: AsyncConnection, row: DecisionRow) -> None:
    msg = decision_message(row, with_features=False)
    await outbox.add_event(
        conn, event=risk_events_pb2.RiskDecisionMade(decision=msg), aggregate=msg.name
    )
