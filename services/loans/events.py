"""Loans' events: one per transition, payment and notification, each written to
the outbox (published on JetStream) and to the loan's own history table
(ListLoanEvents, the backoffice view) in the transaction of the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from google.protobuf import message
from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import loans_events_pb2
from fintech.loans.v1 import loans_pb2
from services.loans import store, wire
from services.platform import outbox
from services.platform.events import event_type_of

SYSTEM_ACTOR = "system"

_TRANSITION_EVENTS: dict[str, type[message.Message]] = {
    "APPLIED": loans_events_pb2.LoanApplied,
    "APPROVED": loans_events_pb2.LoanApproved,
    "OFFERED": loans_events_pb2.LoanApproved,
    "DECLINED": loans_events_pb2.LoanDeclined,
    "FUNDED": loans_events_pb2.LoanFunded,
    "PAID": loans_events_pb2.LoanPaidOff,
    "DEFAULTED": loans_events_pb2.LoanDefaulted,
}
FUNDING_STARTED = "loan.funding_started"


async def history(
    conn: AsyncConnection,
    loan: store.LoanRow,
    event_type: str,
    *,
    actor: str,
    detail: str = "",
    amount_minor: int | None = None,
    transfers: Sequence[str] = (),
) -> None:
    await store.insert_event(
        conn,
        loan_id=loan.id,
        event_type=event_type,
        state=loan.state,
        actor=actor,
        detail=detail,
        amount_minor=amount_minor,
        ledger_transfers=transfers,
    )


async def transition(
    conn: AsyncConnection,
    loan: store.LoanRow,
    today: date,
    *,
    actor: str,
    detail: str = "",
    reason: str = "",
    amount_minor: int | None = None,
    transfers: Sequence[str] = (),
) -> None:
    """The loan just entered `loan.state`: its event and its history entry."""
    insts = await store.installments(conn, loan.id)
    msg = wire.loan_message(loan, insts, today)
    event: message.Message
    if loan.state == "CANCELLED":
        event = loans_events_pb2.LoanCancelled(loan=msg, reason=reason or "CUSTOMER_CANCELLED")
    elif loan.state == "FUNDING":
        event = None  # type: ignore[assignment]
    else:
        event = _TRANSITION_EVENTS[loan.state](loan=msg)  # type: ignore[call-arg]
    event_type = FUNDING_STARTED if event is None else event_type_of(event)
    if event is not None:
        await outbox.add_event(conn, event=event, aggregate=msg.name)
    text = detail or reason
    await history(
        conn,
        loan,
        event_type,
        actor=actor,
        detail=text,
        amount_minor=amount_minor,
        transfers=transfers,
    )


async def payment_received(
    conn: AsyncConnection, loan: store.LoanRow, payment: loans_pb2.LoanPayment, actor: str
) -> None:
    await outbox.add_event(
        conn,
        event=loans_events_pb2.LoanPaymentReceived(loan_payment=payment),
        aggregate=f"{wire.LOAN_PREFIX}{loan.id}",
    )
    detail = (
        f"penalties {payment.penalties.minor_units}, interest {payment.interest.minor_units},"
        f" principal {payment.principal.minor_units},"
        f" discount {payment.interest_discount.minor_units}"
    )
    await history(
        conn,
        loan,
        "loan.payment_received",
        actor=actor,
        detail=detail,
        amount_minor=payment.amount.minor_units,
        transfers=list(payment.ledger_transfers),
    )


async def charges_accrued(
    conn: AsyncConnection,
    loan: store.LoanRow,
    day: date,
    fine: int,
    default_interest: int,
    transfers: Sequence[str],
) -> None:
    await outbox.add_event(
        conn,
        event=loans_events_pb2.LoanChargesAccrued(
            loan=f"{wire.LOAN_PREFIX}{loan.id}",
            accrual_date=day.isoformat(),
            fine=wire.brl(fine),
            default_interest=wire.brl(default_interest),
        ),
        aggregate=f"{wire.LOAN_PREFIX}{loan.id}",
    )
    await history(
        conn,
        loan,
        "loan.charges_accrued",
        actor=SYSTEM_ACTOR,
        detail=f"{day.isoformat()}: fine {fine}, default interest {default_interest}",
        amount_minor=fine + default_interest,
        transfers=transfers,
    )


async def installment_notice(
    conn: AsyncConnection,
    loan: store.LoanRow,
    inst: store.InstallmentRow,
    today: date,
    *,
    overdue: bool,
    bucket: int = 0,
) -> None:
    name = f"{wire.LOAN_PREFIX}{loan.id}"
    msg = wire.installment_message(inst, today)
    event: message.Message
    if overdue:
        event = loans_events_pb2.LoanInstallmentOverdue(
            loan=name,
            installment=msg,
            delinquency_bucket=bucket,  # type: ignore[arg-type]
        )
    else:
        event = loans_events_pb2.LoanInstallmentDueSoon(loan=name, installment=msg)
    await outbox.add_event(conn, event=event, aggregate=name)
    await history(
        conn,
        loan,
        event_type_of(event),
        actor=SYSTEM_ACTOR,
        detail=f"installment {inst.number} due {inst.due_date.isoformat()}",
        amount_minor=msg.outstanding_amount.minor_units,
    )
