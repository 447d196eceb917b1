"""Loans follows its PIX payouts: payments' payment.settled / payment.failed.

Two durable JetStream consumers (platform consumer: each event handled once
per consumer, in the transaction that records it in processed_events). An
event about the payment a loan's payout recorded (`loans.payout_payment`, the
name CreateServicePayment returned) moves the loan's payout from REQUESTED to
SETTLED or FAILED and writes `loan.payout_settled` / `loan.payout_failed` in
its history, once: the state check under the loan's row lock also covers two
different events for one payment. Every other payment is not a loan's and is
ignored, unless its customer has a payout being requested right now (its name
not recorded yet): that event is retried (nak with backoff) until it is.

The money needs nothing here: a failed payout's reservation is voided by
payments, so the disbursed amount is in the wallet again; the loan stays FUNDED.
There is no loan event message for a payout's outcome (loans_events.proto), so
the history is where it is told. A settled payout the receiving bank returns
(payment.refunded, a devolução) adds `loan.payout_returned`: payments credited
the wallet, and the loan itself is unchanged (it was disbursed).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import payments_events_pb2
from fintech.payments.v1 import payments_pb2
from services.loans import events, store, wire
from services.platform import outbox
from services.platform.consumer import ConsumerSettings, Event
from services.platform.events import event_type_of, events_subject

SETTLED = event_type_of(payments_events_pb2.PaymentSettled.DESCRIPTOR)
FAILED = event_type_of(payments_events_pb2.PaymentFailed.DESCRIPTOR)
REFUNDED = event_type_of(payments_events_pb2.PaymentRefunded.DESCRIPTOR)
CONSUMERS = {
    SETTLED: "loans_payout_settled",
    FAILED: "loans_payout_failed",
    REFUNDED: "loans_payout_returned",
}


class PayoutNotRecordedError(Exception):
    """The customer's payout is being requested: the event may be about it."""


def consumer_settings() -> list[ConsumerSettings]:
    return [
        ConsumerSettings(
            stream=outbox.DEFAULT_STREAM, durable=durable, filter_subject=events_subject(kind)
        )
        for kind, durable in CONSUMERS.items()
    ]


def _payment(event: Event) -> payments_pb2.Payment | None:
    if event.type == SETTLED:
        return event.unpack(payments_events_pb2.PaymentSettled).payment
    if event.type == FAILED:
        return event.unpack(payments_events_pb2.PaymentFailed).payment
    if event.type == REFUNDED:
        return event.unpack(payments_events_pb2.PaymentRefunded).payment
    return None


async def apply_payment_event(conn: AsyncConnection, event: Event) -> None:
    payment = _payment(event)
    if payment is None or not payment.name:
        return
    loan = await store.loan_by_payout(conn, payment.name, for_update=True)
    if loan is None:
        user = payment.user.removeprefix(wire.USER_PREFIX)
        if user and await store.user_has_payout_requesting(conn, user):
            raise PayoutNotRecordedError(f"{payment.name}: a payout of {payment.user} in flight")
        return  # not a loan's payout
    if event.type == REFUNDED:
        await _returned(conn, loan, payment)
        return
    if loan.payout_state != "REQUESTED":
        return  # its outcome is recorded already
    settled = event.type == SETTLED
    loan = await store.update_loan(conn, loan.id, payout_state="SETTLED" if settled else "FAILED")
    if settled:
        detail = payment.name
    else:
        reason = payment.failure_reason or payments_pb2.PaymentState.Name(payment.state)
        detail = f"{reason}: {payment.name} failed; the money stays in the wallet"
    await events.history(
        conn,
        loan,
        "loan.payout_settled" if settled else "loan.payout_failed",
        actor=events.SYSTEM_ACTOR,
        detail=detail,
        amount_minor=payment.amount.minor_units,
    )


async def _returned(
    conn: AsyncConnection, loan: store.LoanRow, payment: payments_pb2.Payment
) -> None:
    """The receiving bank returned (part of) a settled payout (a devolução):
    payments has credited the wallet; the history says how much came back.
    Each refund event is its own entry (the consumer handles an event once);
    the amount is what has come back so far, as the payment reports it."""
    if loan.payout_state != "SETTLED":
        # The three consumers run apart: a return can overtake the settlement
        # it follows. Retried (nak with backoff) until that is recorded.
        raise PayoutNotRecordedError(f"{payment.name}: returned before its settlement is recorded")
    returned = payment.refunded_amount.minor_units
    await events.history(
        conn,
        loan,
        "loan.payout_returned",
        actor=events.SYSTEM_ACTOR,
        detail=f"{payment.name}: the receiving bank returned {returned} centavos so far;"
        " the money is in the wallet",
        amount_minor=returned,
    )
