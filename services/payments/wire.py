"""Rows -> protobuf (payments.proto) and the payment events through the outbox."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import payments_events_pb2 as ev
from fintech.payments.v1 import payments_pb2 as P
from fintech.type.v1 import money_pb2
from services.payments.store import ChargeRow, PaymentRow, StepRow
from services.platform.outbox import add_event

PAYMENT_PREFIX = "payments/"
CHARGE_PREFIX = "charges/"


def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def money(amount: int, currency: str = "BRL") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, minor_units=amount)


def payment_message(row: PaymentRow, steps: list[StepRow] | None = None) -> P.Payment:
    msg = P.Payment(
        name=f"{PAYMENT_PREFIX}{row.id}",
        user=f"users/{row.user_id}",
        method=P.PaymentMethod.Value(f"PAYMENT_METHOD_{row.method}"),
        direction=P.PaymentDirection.Value(f"PAYMENT_DIRECTION_{row.direction}"),
        amount=money(row.amount, row.currency),
        fee=money(row.fee, row.currency),
        description=row.description,
        state=P.PaymentState.Value(f"PAYMENT_STATE_{row.state}"),
        failure_reason=row.failure_reason,
        failure_message=row.failure_message,
        on_us=row.on_us,
        psp_reference=row.psp_reference,
        end_to_end_id=row.end_to_end_id,
        refunded_amount=money(row.refunded, row.currency),
        pix_charge=f"{CHARGE_PREFIX}{row.pix_charge_id}" if row.pix_charge_id else "",
    )
    pub = row.instrument_public
    if row.method == "PIX" and row.direction == "OUTBOUND":
        msg.pix.CopyFrom(
            P.PixDestination(
                key_type=P.PixKeyType.Value(f"PIX_KEY_TYPE_{pub.get('key_type', 'UNSPECIFIED')}"),
                key=str(pub.get("key_masked", "")),
                recipient_name=str(pub.get("recipient_name", "")),
                recipient_ispb=str(pub.get("recipient_ispb", "")),
            )
        )
    elif row.method == "TED":
        msg.bank_account.CopyFrom(
            P.BankAccountDestination(
                bank_code=str(pub.get("bank_code", "")),
                branch=str(pub.get("branch", "")),
                account_number=str(pub.get("account_number", "")),
                account_type=P.BankAccountType.Value(
                    f"BANK_ACCOUNT_TYPE_{pub.get('account_type', 'UNSPECIFIED')}"
                ),
                holder_name=str(pub.get("holder_name", "")),
                holder_document_masked=str(pub.get("holder_document_masked", "")),
            )
        )
    elif row.method == "CARD":
        msg.card.CopyFrom(
            P.CardSource(
                brand=str(pub.get("brand", "")),
                last4=str(pub.get("last4", "")),
                installments=int(pub.get("installments", 1)),
            )
        )
    for name, value in (
        ("create_time", row.created_at),
        ("update_time", row.updated_at),
        ("settle_time", row.settled_at),
    ):
        stamp = ts(value)
        if stamp is not None:
            getattr(msg, name).CopyFrom(stamp)
    for s in steps or []:
        step = msg.steps.add(
            step=s.step,
            state=P.StepState.Value(f"STEP_STATE_{s.state}"),
            attempts=s.attempts,
            last_error=s.last_error,
        )
        step.start_time.FromDatetime(s.started_at)
        if s.ended_at is not None:
            step.end_time.FromDatetime(s.ended_at)
    return msg


def charge_message(row: ChargeRow) -> P.PixCharge:
    msg = P.PixCharge(
        name=f"{CHARGE_PREFIX}{row.id}",
        user=f"users/{row.user_id}",
        amount=money(row.amount, row.currency),
        description=row.description,
        txid=row.txid,
        br_code=row.br_code,
        state=P.PixChargeState.Value(f"PIX_CHARGE_STATE_{row.state}"),
        payment=f"{PAYMENT_PREFIX}{row.payment_id}" if row.payment_id else "",
    )
    msg.expiration_seconds = int((row.expires_at - row.created_at).total_seconds())
    for name, value in (
        ("create_time", row.created_at),
        ("expire_time", row.expires_at),
        ("pay_time", row.paid_at),
    ):
        stamp = ts(value)
        if stamp is not None:
            getattr(msg, name).CopyFrom(stamp)
    return msg


async def payment_event(conn: AsyncConnection, row: PaymentRow) -> None:
    """The event of the state the payment just entered (outbox, same transaction)."""
    msg = payment_message(row)
    aggregate = f"{PAYMENT_PREFIX}{row.id}"
    if row.state in ("PENDING", "PROCESSING", "REQUIRES_ACTION"):
        await add_event(conn, event=ev.PaymentCreated(payment=msg), aggregate=aggregate)
    elif row.state == "SETTLED":
        await add_event(conn, event=ev.PaymentSettled(payment=msg), aggregate=aggregate)
    elif row.state in ("FAILED", "CANCELLED"):
        await add_event(conn, event=ev.PaymentFailed(payment=msg), aggregate=aggregate)
    else:
        await add_event(conn, event=ev.PaymentRefunded(payment=msg), aggregate=aggregate)


async def charge_paid_event(conn: AsyncConnection, row: ChargeRow) -> None:
    await add_event(
        conn,
        event=ev.PixChargePaid(pix_charge=charge_message(row)),
        aggregate=f"{CHARGE_PREFIX}{row.id}",
    )
