"""Loans' wire shapes: domain values and rows → protobuf messages (no rules)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from google.protobuf import timestamp_pb2

from fintech.loans.v1 import loans_pb2
from fintech.type.v1 import money_pb2
from services.loans import store, terms
from services.loans.domain import charges
from services.loans.domain.schedule import IofMode, QuoteTerms, System

CURRENCY = "BRL"
USER_PREFIX = "users/"
QUOTE_PREFIX = "quotes/"
LOAN_PREFIX = "loans/"

SYSTEM_TO_PROTO = {
    System.PRICE: loans_pb2.AMORTIZATION_SYSTEM_PRICE,
    System.SAC: loans_pb2.AMORTIZATION_SYSTEM_SAC,
}
SYSTEM_FROM_PROTO = {v: k for k, v in SYSTEM_TO_PROTO.items()}
IOF_TO_PROTO = {
    IofMode.FINANCED: loans_pb2.IOF_PAYMENT_FINANCED,
    IofMode.UPFRONT: loans_pb2.IOF_PAYMENT_UPFRONT,
}


def brl(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=CURRENCY, minor_units=minor)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _set_money(target: money_pb2.Money, minor: int) -> None:
    target.currency_code = CURRENCY
    target.minor_units = minor


def quote_message(
    t: QuoteTerms,
    *,
    name: str = "",
    user_id: str = "",
    band: str = "",
    created_at: datetime | None = None,
    expire_at: datetime | None = None,
) -> loans_pb2.Quote:
    msg = loans_pb2.Quote(
        name=name,
        user=f"{USER_PREFIX}{user_id}" if user_id else "",
        principal=brl(t.principal),
        term_months=t.term_months,
        amortization_system=SYSTEM_TO_PROTO[t.system],
        first_due_date=t.first_due_date.isoformat(),
        iof_payment=IOF_TO_PROTO[t.iof_mode],
        monthly_rate=str(t.monthly_rate),
        annual_rate=str(t.annual_rate),
        iof=brl(t.iof),
        fees=brl(t.fees),
        financed_amount=brl(t.financed_amount),
        disbursed_amount=brl(t.disbursed_amount),
        total_payable=brl(t.total_payable),
        cet_monthly=str(t.cet_monthly),
        cet_annual=str(t.cet_annual),
        risk_band=band,
    )
    # Field by field: about twice as fast as keyword construction for 48 rows
    # of five Money values each (SimulateLoan's hot path).
    for r in t.schedule:
        row = msg.schedule.add()
        row.number = r.number
        row.due_date = r.due_date.isoformat()
        _set_money(row.amount, r.amount)
        _set_money(row.interest, r.interest)
        _set_money(row.amortization, r.amortization)
        _set_money(row.balance, r.balance)
        _set_money(row.iof, r.iof)
    if created_at is not None:
        msg.create_time.CopyFrom(ts(created_at))
    if expire_at is not None:
        msg.expire_time.CopyFrom(ts(expire_at))
    return msg


def stored_quote_message(row: store.QuoteRow) -> loans_pb2.Quote:
    return quote_message(
        terms.from_json(row.terms),
        name=f"{QUOTE_PREFIX}{row.id}",
        user_id=row.user_id,
        band=row.risk_band,
        created_at=row.created_at,
        expire_at=row.expire_at,
    )


def installment_state(row: store.InstallmentRow, today: date) -> int:
    inst = row.domain()
    if inst.settled:
        return loans_pb2.INSTALLMENT_STATE_PAID
    if inst.days_past_due(today) > 0:
        return loans_pb2.INSTALLMENT_STATE_OVERDUE
    if row.paid_amount > 0:
        return loans_pb2.INSTALLMENT_STATE_PARTIALLY_PAID
    return loans_pb2.INSTALLMENT_STATE_UPCOMING


def installment_message(row: store.InstallmentRow, today: date) -> loans_pb2.Installment:
    inst = row.domain()
    msg = loans_pb2.Installment(
        number=row.number,
        due_date=row.due_date.isoformat(),
        amount=brl(row.amount),
        interest=brl(row.scheduled_interest),
        amortization=brl(row.scheduled_principal),
        fine=brl(row.fine_total),
        default_interest=brl(row.default_interest_total),
        paid_amount=brl(row.paid_amount),
        outstanding_amount=brl(inst.outstanding),
        state=installment_state(row, today),  # type: ignore[arg-type]
        days_past_due=inst.days_past_due(today),
    )
    if row.paid_at is not None:
        msg.paid_time.CopyFrom(ts(row.paid_at))
    return msg


BUCKET_TO_PROTO = {
    charges.Bucket.CURRENT: loans_pb2.DELINQUENCY_BUCKET_CURRENT,
    charges.Bucket.DPD_1_30: loans_pb2.DELINQUENCY_BUCKET_DPD_1_30,
    charges.Bucket.DPD_31_60: loans_pb2.DELINQUENCY_BUCKET_DPD_31_60,
    charges.Bucket.DPD_61_90: loans_pb2.DELINQUENCY_BUCKET_DPD_61_90,
    charges.Bucket.DPD_90_PLUS: loans_pb2.DELINQUENCY_BUCKET_DPD_90_PLUS,
}


def loan_message(
    row: store.LoanRow, insts: Sequence[store.InstallmentRow], today: date
) -> loans_pb2.Loan:
    contract = terms.from_json(row.terms)
    msg = loans_pb2.Loan(
        name=f"{LOAN_PREFIX}{row.id}",
        user=f"{USER_PREFIX}{row.user_id}",
        quote=f"{QUOTE_PREFIX}{row.quote_id}",
        state=loans_pb2.LoanState.Value(f"LOAN_STATE_{row.state}"),
        requested_principal=brl(row.requested_principal),
        approved_principal=brl(row.approved_principal),
        terms=quote_message(contract, user_id=row.user_id),
        decline_reasons=list(row.decline_reasons),
        risk_decision=row.risk_decision,
        receivable_account=row.receivable_account,
        create_time=ts(row.created_at),
        update_time=ts(row.updated_at),
    )
    # The PIX key is PII: it is encrypted at rest and never echoed back.
    msg.disbursement.SetInParent()
    if row.fund_time is not None:
        msg.fund_time.CopyFrom(ts(row.fund_time))
    if row.close_time is not None:
        msg.close_time.CopyFrom(ts(row.close_time))
    if insts:
        domain = [i.domain() for i in insts]
        dpd = charges.loan_days_past_due(domain, today)
        msg.installments.extend(installment_message(i, today) for i in insts)
        msg.outstanding_principal.CopyFrom(brl(sum(i.principal_due for i in domain)))
        open_ = [i for i in domain if not i.settled]
        msg.outstanding_total.CopyFrom(brl(charges.payoff(open_, today).amount if open_ else 0))
        msg.days_past_due = dpd
        msg.delinquency_bucket = BUCKET_TO_PROTO[charges.bucket_for(dpd)]  # type: ignore[assignment]
    else:
        msg.outstanding_principal.CopyFrom(brl(0))
        msg.outstanding_total.CopyFrom(brl(0))
        msg.delinquency_bucket = loans_pb2.DELINQUENCY_BUCKET_CURRENT
    return msg


def payment_message(row: store.PaymentRow, loan: loans_pb2.Loan | None) -> loans_pb2.LoanPayment:
    msg = loans_pb2.LoanPayment(
        name=f"{LOAN_PREFIX}{row.loan_id}/payments/{row.id}",
        amount=brl(row.amount),
        penalties=brl(row.penalties),
        interest=brl(row.interest),
        principal=brl(row.principal),
        interest_discount=brl(row.interest_discount),
        installment_numbers=list(row.installment_numbers),
        ledger_transfers=list(row.ledger_transfers),
        create_time=ts(row.created_at),
    )
    if loan is not None:
        msg.loan.CopyFrom(loan)
    return msg


def event_message(row: store.EventRow) -> loans_pb2.LoanEvent:
    msg = loans_pb2.LoanEvent(
        name=f"{LOAN_PREFIX}{row.loan_id}/events/{row.seq}",
        event_type=row.event_type,
        state=loans_pb2.LoanState.Value(f"LOAN_STATE_{row.state}"),
        actor=row.actor,
        detail=row.detail,
        ledger_transfers=list(row.ledger_transfers),
        occur_time=ts(row.occur_time),
    )
    if row.amount_minor is not None:
        msg.amount.CopyFrom(brl(row.amount_minor))
    return msg
